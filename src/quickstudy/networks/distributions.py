"""Action distributions as pure functions of their parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.objectives.sac import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    squashed_gaussian_log_prob,
    squashed_gaussian_sample,
)


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


@dataclasses.dataclass(frozen=True)
class TanhGaussian:
    """SAC's squashed Gaussian over ``dim`` actions, rescaled from ``(-1, 1)`` to ``[low, high]``.

    Parameters are ``concat([mean, log_std], -1)`` of the Gaussian before the ``tanh``; the log
    standard deviation is clipped to SAC's bounds, as the learner's own sampler does
    (:func:`~quickstudy.objectives.sac.squashed_gaussian_sample`).

    Attributes:
        dim: Action dimension.
        low: Lower bound of every action dimension.
        high: Upper bound of every action dimension.
    """

    dim: int
    low: float = -1.0
    high: float = 1.0

    def _split(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        log_std = jnp.clip(params[..., self.dim :], LOG_STD_MIN, LOG_STD_MAX)
        return params[..., : self.dim], log_std

    def scale(self, unit: jax.Array) -> jax.Array:
        """An action of ``[-1, 1]`` mapped to ``[low, high]`` ``[..., dim]``."""
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)

    def unit(self, action: jax.Array) -> jax.Array:
        """An action of ``[low, high]`` mapped back to ``[-1, 1]`` ``[..., dim]``."""
        return 2.0 * (action - self.low) / (self.high - self.low) - 1.0

    def sample(self, key: jax.Array, params: jax.Array) -> jax.Array:
        """Samples actions ``[..., dim]`` in ``(low, high)``."""
        mean, log_std = self._split(params)
        return self.scale(squashed_gaussian_sample(key, mean, log_std)[0])

    def mode(self, params: jax.Array) -> jax.Array:
        """The squashed mean ``[..., dim]`` (what SAC acts with deterministically)."""
        return self.scale(jnp.tanh(self._split(params)[0]))

    def log_prob(self, params: jax.Array, action: jax.Array) -> jax.Array:
        """``log pi(a)`` with the Jacobians of the ``tanh`` and of the rescaling, ``[...]``."""
        mean, log_std = self._split(params)
        y = jnp.clip(self.unit(action), -1.0 + 1e-6, 1.0 - 1e-6)
        log_scale = self.dim * jnp.log(0.5 * (self.high - self.low))
        return squashed_gaussian_log_prob(mean, log_std, jnp.arctanh(y)) - log_scale


Distribution = Categorical | DiagGaussian | TanhGaussian


def action_head(
    module: Any, y: jax.Array, action_dim: int, discrete: bool, init_log_std: float, prefix=""
) -> jax.Array:
    """An actor-critic's action head, built inside ``module``'s compact ``__call__``.

    A linear layer ``{prefix}policy`` (orthogonal init, scale 0.01) gives logits, or Gaussian
    means followed by a state-independent log standard deviation ``{prefix}log_std``.

    Returns:
        The :class:`Categorical` or :class:`DiagGaussian` parameters ``[..., P]``.
    """
    small = nn.initializers.orthogonal(0.01)
    out = nn.Dense(action_dim, kernel_init=small, name=f"{prefix}policy")(y)
    if not discrete:
        log_std = module.param(
            f"{prefix}log_std", nn.initializers.constant(init_log_std), (action_dim,)
        )
        out = jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], -1)
    return out
