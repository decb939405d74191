"""Soft actor-critic losses (Haarnoja et al. 2018, the twin-Q version with a learned temperature).

Pure functions of arrays, batch axis first; the learner (:mod:`quickstudy.learners.sac`) takes
their gradients. Actions live in ``[-1, 1]`` through a ``tanh`` squashing of a Gaussian sample.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
"""Bounds of the actor's log standard deviation (as in the SAC and PEARL code)."""


def squashed_gaussian_sample(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A reparameterised sample ``tanh(mean + std * eps)`` and its log-density.

    Args:
        key: PRNG key.
        mean: Gaussian means ``[..., A]``.
        log_std: Log standard deviations ``[..., A]`` (clipped to the SAC bounds).

    Returns:
        The action in ``(-1, 1)`` ``[..., A]`` and ``log pi(action)`` ``[...]``.
    """
    log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(pre_tanh), squashed_gaussian_log_prob(mean, log_std, pre_tanh)


def squashed_gaussian_log_prob(
    mean: jax.Array, log_std: jax.Array, pre_tanh: jax.Array
) -> jax.Array:
    """``log pi(tanh(u))`` for ``u ~ N(mean, std²)``: the Gaussian density and the tanh Jacobian.

    ``log(1 - tanh(u)²)`` is computed as ``2 (log 2 - u - softplus(-2u))``, which stays finite
    where ``tanh(u)`` rounds to ±1.

    Args:
        mean: Means ``[..., A]``.
        log_std: Log standard deviations ``[..., A]``.
        pre_tanh: The Gaussian sample ``u`` ``[..., A]``.

    Returns:
        Log-density summed over the action dimensions ``[...]``.
    """
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gaussian - log_det, axis=-1)


def soft_q_target(
    reward: jax.Array,
    done: jax.Array,
    next_q1: jax.Array,
    next_q2: jax.Array,
    next_log_prob: jax.Array,
    alpha: jax.Array | float,
    gamma: float,
    reward_scale: float = 1.0,
) -> jax.Array:
    """The soft Bellman target ``scale·r + γ (1 - done) (min(Q1', Q2') - α log pi(a'|s'))``.

    Args:
        reward: Rewards ``[B]``.
        done: 1 where the transition ended the episode by termination (not by a time limit)
            ``[B]``.
        next_q1: Target network 1 at the next state and a fresh action ``[B]``.
        next_q2: Target network 2 there ``[B]``.
        next_log_prob: ``log pi(a'|s')`` of that action ``[B]``.
        alpha: Entropy temperature.
        gamma: Discount.
        reward_scale: Multiplies the reward (PEARL's reward scale; with a fixed α it sets the
            balance of return and entropy).

    Returns:
        The targets ``[B]``, without gradient.
    """
    soft_value = jnp.minimum(next_q1, next_q2) - alpha * next_log_prob
    target = reward_scale * reward + gamma * (1.0 - done) * soft_value
    return jax.lax.stop_gradient(target)


def critic_loss(q1: jax.Array, q2: jax.Array, target: jax.Array) -> jax.Array:
    """``mean((Q1 - y)²) + mean((Q2 - y)²)`` over the batch (twin critics, one target)."""
    return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)


def actor_loss(
    q1: jax.Array, q2: jax.Array, log_prob: jax.Array, alpha: jax.Array | float
) -> jax.Array:
    """``mean(α log pi(a|s) - min(Q1, Q2)(s, a))`` for reparameterised actions ``a``."""
    return jnp.mean(alpha * log_prob - jnp.minimum(q1, q2))


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """``-mean(log α · (log pi + target_entropy))``: raises α while the entropy is below target.

    The log-probabilities are treated as constants (only ``log_alpha`` learns from this loss).
    """
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def polyak(target: jax.Array, online: jax.Array, tau: float) -> jax.Array:
    """``(1 - tau) target + tau online``: the target networks' slow update (map over a pytree)."""
    return (1.0 - tau) * target + tau * online
