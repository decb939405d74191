"""PEARL's episodes on host-stepped tasks (native MuJoCo), one jitted policy call per step.

One batch of environments is stepped in NumPy while the policy runs in JAX.
:func:`host_episodes` returns exactly what the pure-JAX path of
:mod:`quickstudy.algorithms.pearl` computes with ``vmap`` over environments and ``lax.scan`` over
steps: every environment's keys are split the same way, so on a host twin of a JAX task (e.g.
``point-robot-numpy``) the two paths produce the same episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.rollout.host import numpy_rng

PyTree = Any


class Episodes(NamedTuple):
    """Fixed-length episodes ``[..., H]`` (steps after the end are not ``valid``).

    Attributes:
        obs: Observations ``[..., H, D]``.
        action: Actions in ``[-1, 1]`` ``[..., H, A]``.
        reward: The task's rewards ``[..., H]``.
        critic_reward: What the critics regress on (``reward`` or the dense reward) ``[..., H]``.
        next_obs: Next observations ``[..., H, D]``.
        done: Terminal (not truncated) steps ``[..., H]``.
        valid: Steps inside the episode ``[..., H]``.
        success: The task's success flag at each step ``[..., H]``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    critic_reward: jax.Array
    next_obs: jax.Array
    done: jax.Array
    valid: jax.Array
    success: jax.Array

    def returns(self) -> jax.Array:
        """Each episode's return ``[...]``."""
        return (self.reward * self.valid).sum(-1)

    def flat(self) -> Episodes:
        """Merges the episode axis with the step axis (``[S, E, H]`` → ``[S, E·H]``)."""
        return jax.tree.map(lambda x: x.reshape(x.shape[0], -1, *x.shape[3:]), self)


def host_episodes(env: Any, act: Callable, dense_critic: bool) -> Callable:
    """``episodes(actor, tasks [n], z [n, Z], keys [n], deterministic) -> Episodes [n, H]``.

    Args:
        env: A host environment (:class:`~quickstudy.envs.base.HostEnvironment`).
        act: ``act(actor, obs [D], z [Z], key, deterministic) -> (action, scaled action,
            env key)`` for one environment (vmapped and jitted here).
        dense_critic: Record ``info["dense_reward"]`` as the critics' reward.

    Returns:
        The episode runner.
    """
    horizon = env.horizon
    act_batch = jax.jit(jax.vmap(act, in_axes=(None, 0, 0, 0, None)), static_argnums=4)

    @jax.jit
    def episode_keys(keys):
        pairs = jax.vmap(jax.random.split)(keys)
        steps = jax.vmap(lambda k: jax.random.split(k, horizon))(pairs[:, 1])
        return jax.random.key_data(pairs[0, 0]), jnp.swapaxes(steps, 0, 1)

    def episodes(actor, task_batch, z, keys, deterministic=False):
        host_tasks = jax.tree.map(np.asarray, jax.device_get(task_batch))
        reset_key, step_keys = episode_keys(keys)
        state, ts = env.reset(numpy_rng(np.asarray(reset_key)), host_tasks)
        n = ts.obs.shape[0]
        obs, ended = ts.obs.astype(np.float32), np.zeros((n,), bool)
        rows: dict[str, list] = {f: [] for f in Episodes._fields}
        for t in range(horizon):
            action, scaled, env_keys = act_batch(actor, obs, z, step_keys[t], deterministic)
            action, scaled, env_key = jax.device_get(
                (action, scaled, jax.random.key_data(env_keys[0]))
            )
            state, nts = env.step(numpy_rng(env_key), state, scaled, host_tasks)
            next_obs = nts.obs.astype(np.float32)
            rows["obs"].append(obs)
            rows["action"].append(action)
            rows["reward"].append(nts.reward)
            rows["critic_reward"].append(nts.info["dense_reward"] if dense_critic else nts.reward)
            rows["next_obs"].append(next_obs)
            rows["done"].append(nts.terminated.astype(np.float32))
            rows["valid"].append(~ended)
            rows["success"].append(np.asarray(nts.info.get("success", np.zeros(n)), np.float32))
            ended = ended | nts.terminated | nts.truncated
            obs = next_obs
        return Episodes(**{f: jnp.asarray(np.stack(v, axis=1)) for f, v in rows.items()})

    return episodes
