"""What both collectors share: the state carried between unrolls and meta-test trial results."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any


class RolloutState(NamedTuple):
    """What carries over between unrolls; every leaf has a leading batch axis ``[B, ...]``.

    The JAX collector keeps every leaf on the device; the host collector keeps the environment's
    leaves as NumPy arrays and only the policy's carry on the device.

    Attributes:
        env_state: Environment states.
        task: Task params of each environment.
        obs: Current observations ``[B, D]``.
        start: ``[B]`` bool, true when ``obs`` is the first of a trial (memory is reset).
        carry: The policy's memory before processing ``obs`` (any pytree).
        episode_return: Reward accumulated in the current episode of the collected env (for a
            :class:`~quickstudy.tasks.Trial`, the current trial) ``[B]``.
    """

    env_state: PyTree
    task: PyTree
    obs: jax.Array
    start: jax.Array
    carry: PyTree
    episode_return: jax.Array


class TrialResults(NamedTuple):
    """Per-task, per-episode results of meta-test trials.

    Attributes:
        returns: Undiscounted return of each episode ``[N, K]``.
        success: Whether the episode succeeded ``[N, K]``; ``None`` when the task defines none.
        lengths: Steps in each episode ``[N, K]``.
    """

    returns: jax.Array
    success: jax.Array | None
    lengths: jax.Array


def batch_select(mask: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Per-row ``where``: ``mask`` ``[B]`` selects rows of leaves ``[B, ...]``."""

    def sel(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(sel, on_true, on_false)
