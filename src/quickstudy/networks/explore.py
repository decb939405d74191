"""Separate exploration and task policies over one memory (E-RL², Stadie et al. 2018).

The first ``explore_episodes`` episodes of a trial are acted by an exploration head, the rest by
the task head; both read the same memory of the trial (RL²'s recurrent state or SNAIL's cache).
The learner trains the exploration head only for the return of the episodes after it by zeroing
the rewards of the exploration episodes in its objective (see
:func:`quickstudy.algorithms.rl2.make_trial_learner`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from quickstudy.types import Policy, PolicyOutput


def episode_index(episode0: jax.Array, start: jax.Array, done: jax.Array) -> jax.Array:
    """The index of the trial's episode each step belongs to.

    Args:
        episode0: Episode of the trial in flight before the sequence ``[B]`` (int32).
        start: ``[T, B]`` bool, true at the first step of a trial.
        done: ``[T, B]`` bool, the trial observation's flag that the previous step ended an
            episode.

    Returns:
        ``[T, B]`` int32.
    """
    count = jnp.cumsum(done.astype(jnp.int32), axis=0)
    t = jnp.arange(start.shape[0], dtype=jnp.int32)[:, None]
    last_start = jax.lax.cummax(jnp.where(start, t, -1), axis=0)
    at_start = jnp.take_along_axis(count, jnp.maximum(last_start, 0), axis=0)
    return jnp.where(last_start < 0, episode0[None, :] + count, count - at_start)


def two_phase_policy(policy: Policy, explore_episodes: int, done_index: int) -> Policy:
    """Acts with the exploration head for the first ``explore_episodes`` episodes of a trial.

    Args:
        policy: A memory-based policy whose outputs hold ``aux["explore_dist"]``, a second
            action head on the same memory.
        explore_episodes: Episodes acted by the exploration head.
        done_index: Position of the done flag in the trial observation.

    Returns:
        The policy; its carry is ``{"memory": policy's carry, "episode": [B]}`` and its
        ``aux`` holds ``exploring`` ``[T, B]``.
    """

    def init_carry(batch: int) -> dict:
        return {"memory": policy.init_carry(batch), "episode": jnp.zeros((batch,), jnp.int32)}

    def apply(params, carry, obs, start):
        episode = episode_index(carry["episode"], start, obs[..., done_index] > 0.5)
        memory, out = policy.apply(params, carry["memory"], obs, start)
        exploring = episode < explore_episodes
        dist = jnp.where(exploring[..., None], out.aux["explore_dist"], out.dist)
        aux = {k: v for k, v in out.aux.items() if k != "explore_dist"}
        aux["exploring"] = exploring
        new = {"memory": memory, "episode": episode[-1]}
        return new, PolicyOutput(dist, out.value, aux)

    return Policy(policy.init, init_carry, apply, policy.distribution, policy.param_groups)
