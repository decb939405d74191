"""Returns and advantages for one stream of experience (unbatched; vmap at the call site)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    r_t: jax.Array,
    v_t: jax.Array,
    v_tp1: jax.Array,
    terminated_t: jax.Array,
    truncated_t: jax.Array,
    gamma: float,
    lambda_: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation (Schulman et al. 2016) with episode boundaries.

    ``delta_t = r_t + gamma * (1 - terminated_t) * v_tp1[t] - v_t``;
    ``A_t = delta_t + gamma * lambda * (1 - terminated_t) * (1 - truncated_t) * A_{t+1}``.
    A terminated step does not bootstrap; a truncated one bootstraps from ``v_tp1[t]`` (the value
    of the observation it was cut at) but does not carry the advantage of the next episode.

    Args:
        r_t: Rewards ``[T]``.
        v_t: Values of the observations the actions were taken in ``[T]``.
        v_tp1: Values of the *true* next observations ``[T]`` (pre-reset at episode ends).
        terminated_t: ``[T]`` bool.
        truncated_t: ``[T]`` bool.
        gamma: Discount.
        lambda_: GAE mixing parameter.

    Returns:
        Advantages ``[T]`` and value targets ``A + v_t`` ``[T]``.
    """
    not_term = 1.0 - terminated_t.astype(r_t.dtype)
    not_done = not_term * (1.0 - truncated_t.astype(r_t.dtype))
    delta_t = r_t + gamma * not_term * v_tp1 - v_t

    def body(a_tp1, inputs):
        delta, cont = inputs
        a = delta + gamma * lambda_ * cont * a_tp1
        return a, a

    _, adv = jax.lax.scan(body, jnp.zeros((), r_t.dtype), (delta_t, not_done), reverse=True)
    return adv, adv + v_t


def discounted_returns(
    r_t: jax.Array, done_t: jax.Array, gamma: float, bootstrap: jax.Array | float = 0.0
) -> jax.Array:
    """Discounted reward-to-go ``G_t = r_t + gamma * (1 - done_t) * G_{t+1}``, shape ``[T]``."""

    def body(g_tp1, inputs):
        r, d = inputs
        g = r + gamma * (1.0 - d.astype(r.dtype)) * g_tp1
        return g, g

    _, g = jax.lax.scan(body, jnp.asarray(bootstrap, r_t.dtype), (r_t, done_t), reverse=True)
    return g
