"""Action distributions as pure functions of their parameters."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Categorical:
    """Categorical over ``n`` actions, parameterised by logits ``[..., n]``."""

    n: int

    def sample(self, key: jax.Array, logits: jax.Array) -> jax.Array:
        """Samples actions ``[...]`` (int32)."""
        return jax.random.categorical(key, logits).astype(jnp.int32)

    def mode(self, logits: jax.Array) -> jax.Array:
        """Most likely actions ``[...]``."""
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def log_prob(self, logits: jax.Array, action: jax.Array) -> jax.Array:
        """``log pi(a)``, shape ``[...]``."""
        logp = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self, logits: jax.Array) -> jax.Array:
        """Entropy, shape ``[...]``."""
        logp = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def kl(self, p: jax.Array, q: jax.Array) -> jax.Array:
        """``KL(p || q)`` of the distributions with logits ``p`` and ``q``, shape ``[...]``."""
        logp, logq = jax.nn.log_softmax(p), jax.nn.log_softmax(q)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

    def fisher_product(self, logits: jax.Array, u: jax.Array) -> jax.Array:
        """Fisher information of the logits times ``u``: ``(diag(pi) - pi pi^T) u``, ``[..., n]``.

        It is the Hessian of ``KL(pi_logits || pi_x)`` in ``x`` at ``x = logits``, the metric
        of a trust-region step (Schulman et al. 2015).
        """
        prob = jax.nn.softmax(logits)
        return prob * u - prob * jnp.sum(prob * u, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class DiagGaussian:
    """Diagonal Gaussian over ``dim`` actions; parameters are ``concat([mean, log_std], -1)``."""

    dim: int

    def _split(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        return params[..., : self.dim], params[..., self.dim :]

    def sample(self, key: jax.Array, params: jax.Array) -> jax.Array:
        """Samples actions ``[..., dim]``."""
        mean, log_std = self._split(params)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)

    def mode(self, params: jax.Array) -> jax.Array:
        """The mean ``[..., dim]``."""
        return self._split(params)[0]

    def log_prob(self, params: jax.Array, action: jax.Array) -> jax.Array:
        """``log pi(a)``, shape ``[...]``."""
        mean, log_std = self._split(params)
        z = (action - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def entropy(self, params: jax.Array) -> jax.Array:
        """Entropy, shape ``[...]``."""
        _, log_std = self._split(params)
        return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)

    def kl(self, p: jax.Array, q: jax.Array) -> jax.Array:
        """``KL(p || q)`` of two diagonal Gaussians, shape ``[...]``."""
        mp, lp = self._split(p)
        mq, lq = self._split(q)
        var_p, var_q = jnp.exp(2 * lp), jnp.exp(2 * lq)
        return jnp.sum(lq - lp + (var_p + (mp - mq) ** 2) / (2 * var_q) - 0.5, axis=-1)

    def fisher_product(self, params: jax.Array, u: jax.Array) -> jax.Array:
        """Fisher information of ``(mean, log_std)`` times ``u``: ``diag(1 / sigma^2, 2) u``.

        It is the Hessian of ``KL(N_params || N_x)`` in ``x`` at ``x = params``.
        """
        _, log_std = self._split(params)
        inv_var = jnp.exp(-2.0 * log_std)
        scale = jnp.concatenate([inv_var, jnp.full_like(inv_var, 2.0)], axis=-1)
        return u * scale


Distribution = Categorical | DiagGaussian
