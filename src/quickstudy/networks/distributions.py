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


Distribution = Categorical | DiagGaussian
