"""Policy-gradient surrogates and the linear feature baseline (unbatched over tasks).

The surrogates are written for one task's batch of episodes ``[N, T]`` with a validity mask (steps
after an episode ended are padding); their gradients are the policy gradient estimators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` over the entries where ``mask`` is true (any matching shapes)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def vpg_surrogate(logp: jax.Array, adv: jax.Array, mask: jax.Array) -> jax.Array:
    """REINFORCE surrogate loss ``-E[log pi(a|s) A]``; its gradient is minus the policy gradient.

    Args:
        logp: ``log pi(a_t | s_t)`` under the parameters being differentiated ``[N, T]``.
        adv: Advantages (constants) ``[N, T]``.
        mask: Valid steps ``[N, T]``.

    Returns:
        The scalar loss (mean over valid steps, as in ``maml_rl``).
    """
    return -masked_mean(logp * jax.lax.stop_gradient(adv), mask)


def ratio_surrogate(
    logp: jax.Array, logp_old: jax.Array, adv: jax.Array, mask: jax.Array
) -> jax.Array:
    """Importance-weighted surrogate loss ``-E[pi(a|s) / pi_old(a|s) A]`` (TRPO's objective).

    Args:
        logp: ``log pi(a_t | s_t)`` under the new parameters ``[N, T]``.
        logp_old: Under the parameters that sampled the data (constants) ``[N, T]``.
        adv: Advantages (constants) ``[N, T]``.
        mask: Valid steps ``[N, T]``.
    """
    ratio = jnp.exp(logp - jax.lax.stop_gradient(logp_old))
    return -masked_mean(ratio * jax.lax.stop_gradient(adv), mask)


def clipped_surrogate(
    logp: jax.Array, logp_old: jax.Array, adv: jax.Array, mask: jax.Array, clip_eps: float
) -> jax.Array:
    """PPO's clipped surrogate ``-E[min(r A, clip(r, 1-eps, 1+eps) A)]`` (ProMP's outer loss)."""
    ratio = jnp.exp(logp - jax.lax.stop_gradient(logp_old))
    adv = jax.lax.stop_gradient(adv)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -masked_mean(jnp.minimum(ratio * adv, clipped * adv), mask)


def linear_features(obs_t: jax.Array, horizon: int) -> jax.Array:
    """Duan et al. (2016, rllab)'s baseline features of one episode's observations.

    ``[clip(o, -10, 10), clip(o, -10, 10)^2, t/H, (t/H)^2, (t/H)^3, 1]`` with ``H = horizon``
    (rllab uses 100 for any horizon; MAML's tasks have H = 100).

    Args:
        obs_t: Observations ``[T, D]``.
        horizon: The time normaliser ``H``.

    Returns:
        Features ``[T, 2 D + 4]``.
    """
    o = jnp.clip(obs_t, -10.0, 10.0)
    t = (jnp.arange(obs_t.shape[0], dtype=obs_t.dtype) / horizon)[:, None]
    return jnp.concatenate([o, o**2, t, t**2, t**3, jnp.ones_like(t)], axis=-1)


def fit_linear_baseline(
    features: jax.Array, targets: jax.Array, mask: jax.Array, reg: float = 1e-5
) -> jax.Array:
    """Ridge regression of returns on features, over the valid steps.

    Solves ``(F^T F / n + reg I) w = F^T y / n`` (rllab's ``LinearFeatureBaseline`` with the
    normal equations scaled by the sample count, which keeps float32 well conditioned).

    Args:
        features: ``[..., F]``.
        targets: ``[...]`` (discounted returns).
        mask: ``[...]`` valid entries.
        reg: Ridge coefficient.

    Returns:
        Weights ``[F]``.
    """
    f = features.reshape(-1, features.shape[-1])
    m = mask.reshape(-1).astype(f.dtype)
    y = targets.reshape(-1)
    n = jnp.maximum(m.sum(), 1.0)
    a = (f * m[:, None]).T @ f / n + reg * jnp.eye(f.shape[-1], dtype=f.dtype)
    b = (f * m[:, None]).T @ y / n
    return jnp.linalg.solve(a, b)
