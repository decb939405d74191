"""Batches of independent single episodes on one task (for policy-gradient learners such as MAML).

Every episode starts from ``reset`` and runs for the environment's horizon in a ``lax.scan``; steps
after an episode terminated are padding (``valid`` false, zero reward), so batches keep a fixed
shape ``[N, T]`` under ``jit`` and ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.rollout.host import numpy_rng
from quickstudy.tasks.trial import tree_rows

PyTree = Any


class Episodes(NamedTuple):
    """``N`` episodes of one task, padded to the horizon ``T``.

    Attributes:
        obs: Observations the actions were taken in ``[N, T, D]``.
        actions: Actions as sampled by the policy (before any clipping by the env) ``[N, T, A]``.
        rewards: Rewards ``[N, T]`` (0 on padding).
        valid: Whether the step belongs to the episode ``[N, T]``.
        success: The env's ``info["success"]`` per step ``[N, T]`` (0 on padding).
    """

    obs: jax.Array
    actions: jax.Array
    rewards: jax.Array
    valid: jax.Array
    success: jax.Array

    @property
    def returns(self) -> jax.Array:
        """Undiscounted return of each episode ``[..., N]`` (the sum over the last axis, time)."""
        return self.rewards.sum(axis=-1)


def sample_episodes(
    key: jax.Array,
    env: Any,
    task: PyTree,
    act: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
    num_episodes: int,
) -> Episodes:
    """Runs ``num_episodes`` independent episodes of ``env`` on one task.

    Args:
        key: PRNG key.
        env: A pure-JAX environment with a static ``horizon``.
        task: The task's params (unbatched).
        act: ``act(key, obs [N, D]) -> (actions [N, A], env_actions [N, A])``: the actions to
            record (e.g. in the policy's normalised units) and what the env receives.
        num_episodes: ``N``.

    Returns:
        The padded batch.
    """
    k_reset, k_run = jax.random.split(key)
    state, ts = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_reset, num_episodes), task
    )
    alive = jnp.ones((num_episodes,), bool)

    def step(carry, k):
        state, obs, alive = carry
        k_act, k_env = jax.random.split(k)
        action, env_action = act(k_act, obs)
        next_state, ts = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, num_episodes), state, env_action, task
        )
        reward = jnp.where(alive, ts.reward, 0.0)
        success = jnp.where(alive, ts.info.get("success", jnp.zeros_like(reward)), 0.0)
        out = (obs, action, reward, alive, success.astype(jnp.float32))
        return (next_state, ts.obs, alive & ~ts.terminated), out

    keys = jax.random.split(k_run, env.horizon)
    _, (obs, actions, rewards, valid, success) = jax.lax.scan(step, (state, ts.obs, alive), keys)
    swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    return Episodes(swap(obs), swap(actions), swap(rewards), swap(valid), swap(success))


def host_sample_episodes(
    key: jax.Array,
    env: Any,
    tasks: PyTree,
    act: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
    num_episodes: int,
) -> Episodes:
    """:func:`sample_episodes` for a host-stepped environment, every task of a batch at once.

    The ``M`` tasks' ``N`` episodes run as one batch of ``M·N`` host environments for the
    horizon; the policy is called once per step on all of them.

    Args:
        key: PRNG key (the environments' NumPy generator and the policy's keys come from it).
        env: A :class:`~quickstudy.envs.base.HostEnvironment`.
        tasks: The tasks' params, leaves ``[M, ...]``.
        act: ``act(key, obs [M, N, D]) -> (actions [M, N, A], env_actions [M, N, A])``.
        num_episodes: ``N`` per task.

    Returns:
        Episodes with leaves ``[M, N, T, ...]`` as device arrays.
    """
    tasks = jax.device_get(tasks)
    m = jax.tree.leaves(tasks)[0].shape[0]
    n, horizon = num_episodes, env.horizon
    params = tree_rows(tasks, np.repeat(np.arange(m), n))
    k_env, k_run = jax.random.split(key)
    rng = numpy_rng(jax.random.key_data(k_env))
    state, ts = env.reset(rng, params)
    obs, alive = np.asarray(ts.obs), np.ones((m * n,), bool)
    keys = jax.random.split(k_run, horizon)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in Episodes._fields}
    for t in range(horizon):
        action, env_action = jax.device_get(act(keys[t], obs.reshape(m, n, -1)))
        state, ts = env.step(rng, state, np.asarray(env_action).reshape(m * n, -1), params)
        success = ts.info.get("success", np.zeros_like(ts.reward))
        rows["obs"].append(obs)
        rows["actions"].append(np.asarray(action).reshape(m * n, -1))
        rows["rewards"].append(np.where(alive, ts.reward, 0.0).astype(np.float32))
        rows["valid"].append(alive)
        rows["success"].append(np.where(alive, success, 0.0).astype(np.float32))
        alive = alive & ~np.asarray(ts.terminated)
        obs = np.asarray(ts.obs)
    out = {
        k: np.stack(v, axis=1).reshape(m, n, horizon, *np.shape(v[0])[1:]) for k, v in rows.items()
    }
    return Episodes(**{k: jnp.asarray(v) for k, v in out.items()})
