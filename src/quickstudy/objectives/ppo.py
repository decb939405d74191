"""Proximal policy optimisation losses (Schulman et al. 2017); elementwise over any shape."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, clip_eps: float
) -> jax.Array:
    """Per-sample PPO policy loss ``-min(rho A, clip(rho, 1 - eps, 1 + eps) A)``."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.minimum(ratio * advantage, clipped * advantage)


def clipped_value_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float
) -> jax.Array:
    """Per-sample value loss ``0.5 max((v - G)^2, (v_clipped - G)^2)``; no clipping if eps <= 0."""
    unclipped = (value - target) ** 2
    if clip_eps <= 0:
        return 0.5 * unclipped
    v_clip = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum(unclipped, (v_clip - target) ** 2)


def approx_kl(log_prob: jax.Array, old_log_prob: jax.Array) -> jax.Array:
    """Per-sample estimate of ``KL(old || new)``: ``(rho - 1) - log rho`` (Schulman's k3)."""
    log_ratio = log_prob - old_log_prob
    return jnp.expm1(log_ratio) - log_ratio


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Standardises ``x`` to zero mean and unit variance over all its elements."""
    return (x - x.mean()) / (x.std() + eps)
