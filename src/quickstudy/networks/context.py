"""PEARL's context encoder: per-transition Gaussian factors multiplied into one posterior over z.

Each transition ``c_n = (s, a, r[, s'])`` of a task's context is mapped by an MLP to a Gaussian
factor ``N(mu_n, var_n)``; the posterior ``q(z | c)`` is their product, which does not depend on
the order of the transitions (Rakelly et al. 2019, §4.1). The KL divergence to the prior
``N(0, I)`` is the information bottleneck. Padded transitions are masked out, so one array shape
serves contexts of any length, and an empty context gives back the prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.networks.mlp import MLP

MIN_VARIANCE = 1e-7
"""Floor of each factor's variance (as in PEARL's code)."""


def product_of_gaussians(
    mean: jax.Array, variance: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """The normalised product of Gaussian factors along the context axis.

    ``var = 1 / sum_n(1 / var_n)``, ``mean = var * sum_n(mean_n / var_n)`` over the unmasked
    factors; with none, the prior ``N(0, 1)``.

    Args:
        mean: Factor means ``[..., N, Z]``.
        variance: Factor variances ``[..., N, Z]`` (positive).
        mask: 1 for real transitions, 0 for padding ``[..., N]`` (``None``: all real).

    Returns:
        The posterior's mean and variance ``[..., Z]``.
    """
    precision = 1.0 / jnp.maximum(variance, MIN_VARIANCE)
    if mask is not None:
        precision = precision * mask[..., None]
    total = precision.sum(axis=-2)
    empty = total <= 0.0
    var = jnp.where(empty, 1.0, 1.0 / jnp.where(empty, 1.0, total))
    mu = jnp.where(empty, 0.0, var * (precision * mean).sum(axis=-2))
    return mu, var


def kl_to_standard_normal(mean: jax.Array, variance: jax.Array) -> jax.Array:
    """``KL(N(mean, variance) || N(0, I))`` summed over the last axis ``[...]``."""
    return 0.5 * jnp.sum(variance + mean**2 - 1.0 - jnp.log(variance), axis=-1)


def sample_z(key: jax.Array, mean: jax.Array, variance: jax.Array) -> jax.Array:
    """A reparameterised sample ``mean + sqrt(variance) * eps`` ``[..., Z]``."""
    return mean + jnp.sqrt(variance) * jax.random.normal(key, mean.shape, mean.dtype)


class ContextEncoder(nn.Module):
    """Transitions ``[..., N, C]`` -> posterior mean and variance over z ``[..., Z]``.

    Attributes:
        hidden_sizes: Hidden widths of the per-transition MLP (PEARL: 200, 200, 200).
        latent_dim: Size of z (PEARL: 5).
    """

    hidden_sizes: Sequence[int]
    latent_dim: int

    def factors(self, context: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Each transition's factor ``(mean, variance)`` ``[..., N, Z]``."""
        out = MLP(tuple(self.hidden_sizes), 2 * self.latent_dim, name="mlp")(context)
        mean, raw = out[..., : self.latent_dim], out[..., self.latent_dim :]
        return mean, jnp.maximum(jax.nn.softplus(raw), MIN_VARIANCE)

    @nn.compact
    def __call__(
        self, context: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """The posterior ``(mean, variance)`` of z given the (masked) context."""
        mean, variance = self.factors(context)
        return product_of_gaussians(mean, variance, mask)
