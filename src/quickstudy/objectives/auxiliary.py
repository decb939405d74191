"""Auxiliary losses that learners add to their objective (elementwise math, then a mean)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def predicted_reward(head: jax.Array, action: jax.Array, discrete: bool) -> jax.Array:
    """The reward a reward head predicts for the actions taken.

    Args:
        head: ``[..., A]`` (discrete: one prediction per action) or ``[..., 1 + 2A]``
            (continuous: coefficients ``c`` of ``c_0 + c_1 . a + c_2 . a^2``).
        action: Actions taken, ``[...]`` (discrete) or ``[..., A]``.
        discrete: Which of the two.

    Returns:
        Predicted rewards ``[...]``.
    """
    if discrete:
        idx = action[..., None].astype(jnp.int32)
        return jnp.take_along_axis(head, idx, -1)[..., 0]
    features = jnp.concatenate([jnp.ones_like(action[..., :1]), action, action**2], -1)
    return jnp.sum(head * features, -1)


def reward_prediction_loss(
    head: jax.Array, action: jax.Array, reward: jax.Array, discrete: bool
) -> jax.Array:
    """Mean squared error of a reward head's prediction for the actions taken.

    From a recurrent policy's features, the best prediction of ``r_t`` given the history and
    ``a_t`` is the posterior mean reward of that action: the loss pushes the memory towards the
    task's reward estimates (an auxiliary task in the manner of Jaderberg et al. 2017).

    Args:
        head: The head's output (see :func:`predicted_reward`) ``[T, B, ...]``.
        action: Actions taken ``[T, B]`` or ``[T, B, A]``.
        reward: Rewards received ``[T, B]``.
        discrete: Whether the actions are discrete.

    Returns:
        The scalar mean over all steps.
    """
    return jnp.square(predicted_reward(head, action, discrete) - reward).mean()
