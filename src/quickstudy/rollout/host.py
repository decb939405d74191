"""The host collector: policies stepped in batched host environments (NumPy, native physics).

The environments step outside JAX (:class:`~quickstudy.envs.base.HostEnvironment`); the policy
runs as **one jitted call per step for the whole batch**, which also draws the step's keys, so a
run is reproducible from its key alone. :func:`host_unroll` and :func:`host_run_trials` return
exactly what their JAX counterparts in :mod:`quickstudy.rollout.scan` return (a
:class:`~quickstudy.types.Transition` and :class:`~quickstudy.rollout.base.TrialResults`), so a
learner cannot tell which collector fed it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.base import HostEnvironment
from quickstudy.rollout.base import RolloutState, TrialResults
from quickstudy.tasks.trial import tree_rows, tree_set_rows
from quickstudy.types import Policy, Transition

PyTree = Any


class HostActor(NamedTuple):
    """The jitted policy calls of the host collector, built once per policy.

    Attributes:
        act: ``act(params, carry, obs [B, D], start [B], key_data, deterministic) -> (carry,
            action, log_prob, value, seeds, task_key)``: ``key_data`` is the step key's raw
            ``uint32`` data (indexing a host array costs nothing, a device one a dispatch),
            ``seeds`` the raw data of the environment and reset keys for NumPy generators.
        value: ``value(params, carry, obs [B, D], start [B]) -> [B]``, the value of
            observations that continue the carried history (rows with ``start`` reset it).
    """

    act: Callable[..., tuple]
    value: Callable[..., jax.Array]


def make_host_actor(policy: Policy) -> HostActor:
    """Jits the two policy calls the host collector makes per step."""
    dist = policy.distribution

    def act(params, carry, obs, start, key_data, deterministic=False):
        key = jax.random.wrap_key_data(key_data)
        k_act, k_env, k_task, k_reset = jax.random.split(key, 4)
        carry, out = policy.apply(params, carry, obs[None], start[None])
        logits = out.dist[0]
        action = dist.mode(logits) if deterministic else dist.sample(k_act, logits)
        value = out.value[0] if out.value is not None else jnp.zeros(obs.shape[:1])
        seeds = jnp.stack([jax.random.key_data(k_env), jax.random.key_data(k_reset)])
        return carry, action, dist.log_prob(logits, action), value, seeds, k_task

    def value(params, carry, obs, start):
        return policy.apply(params, carry, obs[None], start[None])[1].value[0]

    return HostActor(jax.jit(act, static_argnums=5), jax.jit(value))


def step_keys(key: jax.Array, num_steps: int) -> np.ndarray:
    """The raw data of ``num_steps`` keys split from ``key``, on the host ``[num_steps, ...]``."""
    return np.asarray(jax.random.key_data(jax.random.split(key, num_steps)))


def numpy_rng(seed: np.ndarray) -> np.random.Generator:
    """A NumPy generator seeded by the raw data of a JAX key (``uint32`` words)."""
    return np.random.default_rng(np.asarray(seed, np.uint32).ravel().tolist())


def init_host_rollout(
    key: jax.Array,
    env: HostEnvironment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    policy: Policy,
    batch: int,
) -> RolloutState:
    """Draws one task per environment and resets the host batch (NumPy leaves, device carry)."""
    k_task, k_reset = jax.random.split(key)
    task = jax.device_get(sample_tasks(k_task, batch))
    env_state, ts = env.reset(numpy_rng(jax.random.key_data(k_reset)), task)
    return RolloutState(
        env_state=env_state,
        task=task,
        obs=np.asarray(ts.obs, np.float32),
        start=np.ones((batch,), bool),
        carry=policy.init_carry(batch),
        episode_return=np.zeros((batch,), np.float32),
    )


def host_unroll(
    key: jax.Array,
    state: RolloutState,
    params: PyTree,
    actor: HostActor,
    env: HostEnvironment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    num_steps: int,
) -> tuple[RolloutState, Transition]:
    """Collects ``num_steps`` steps in each of ``B`` host environments.

    Same semantics as :func:`quickstudy.rollout.scan.unroll`: where an episode of ``env`` ends,
    the environment gets a new task from ``sample_tasks`` (drawn only when some episode ended),
    it resets and the policy's memory resets; ``next_value`` at a truncated step is the value of
    the pre-reset observation (one more policy call, only at steps with a truncation).

    Returns:
        The carried state and the transitions ``[num_steps, B, ...]`` as device arrays.
    """
    batch = state.obs.shape[0]
    keys = step_keys(key, num_steps)
    env_state, task, obs, start = state.env_state, state.task, state.obs, state.start
    carry, episode_return = state.carry, state.episode_return
    rows: dict[str, list] = {k: [] for k in Transition._fields if k != "info"}
    infos: list[dict[str, np.ndarray]] = []
    for t in range(num_steps):
        carry, action, log_prob, value, seeds, k_task = actor.act(
            params, carry, obs, start, keys[t]
        )
        action, log_prob, value, seeds = jax.device_get((action, log_prob, value, seeds))
        env_state, ts = env.step(numpy_rng(seeds[0]), env_state, action, task)
        done = ts.terminated | ts.truncated
        v_trunc = np.zeros((batch,), np.float32)
        if ts.truncated.any():
            v_trunc = np.asarray(actor.value(params, carry, ts.obs, np.zeros_like(done)))
        episode_return = episode_return + ts.reward
        for name, x in (
            ("obs", obs),
            ("action", action),
            ("reward", ts.reward),
            ("next_obs", ts.obs),
            ("terminated", ts.terminated),
            ("truncated", ts.truncated),
            ("start", start),
            ("log_prob", log_prob),
            ("value", value),
            ("next_value", v_trunc),
        ):
            rows[name].append(x)
        infos.append(dict(ts.info, episode_return=np.where(done, episode_return, 0.0)))
        obs = ts.obs
        if done.any():
            idx = np.flatnonzero(done)
            fresh_tasks = tree_rows(jax.device_get(sample_tasks(k_task, batch)), idx)
            task = tree_set_rows(task, idx, fresh_tasks)
            fresh, ts_reset = env.reset(numpy_rng(seeds[1]), fresh_tasks)
            env_state = tree_set_rows(env_state, idx, fresh)
            obs = obs.copy()
            obs[idx] = ts_reset.obs
        start = done
        episode_return = np.where(done, 0.0, episode_return).astype(np.float32)
    v_last = np.asarray(actor.value(params, carry, obs, start))
    arrays = {k: np.stack(v) for k, v in rows.items()}
    following = np.concatenate([arrays["value"][1:], v_last[None]], axis=0)
    arrays["next_value"] = np.where(arrays["truncated"], arrays["next_value"], following)
    info = {k: np.stack([row[k] for row in infos]) for k in infos[0]}
    traj = Transition(**jax.tree.map(jnp.asarray, arrays), info=jax.tree.map(jnp.asarray, info))
    new_state = RolloutState(env_state, task, obs, start, carry, episode_return)
    return new_state, traj


def host_run_trials(
    key: jax.Array,
    tasks: PyTree,
    params: PyTree,
    policy: Policy,
    actor: HostActor,
    trial_env: HostEnvironment,
    episodes: int,
    max_steps: int,
    deterministic: bool = False,
) -> TrialResults:
    """Runs one trial of ``episodes`` episodes on each of ``N`` tasks in host environments.

    Same semantics as :func:`quickstudy.rollout.scan.run_trials` (``trial_env`` a
    :class:`~quickstudy.tasks.trial.HostTrial`); the loop stops once every trial has ended.

    Returns:
        :class:`~quickstudy.rollout.base.TrialResults` with ``[N, K]`` NumPy arrays.
    """
    tasks = jax.device_get(tasks)
    n = jax.tree.leaves(tasks)[0].shape[0]
    k_reset, k_run = jax.random.split(key)
    env_state, ts = trial_env.reset(numpy_rng(jax.random.key_data(k_reset)), tasks)
    obs, carry = ts.obs, policy.init_carry(n)
    returns = np.zeros((n, episodes), np.float32)
    success = np.zeros((n, episodes), np.float32)
    lengths = np.zeros((n, episodes), np.float32)
    has_success = "success" in ts.info
    active = np.ones((n,), bool)
    no_start = np.zeros((n,), bool)
    keys = step_keys(k_run, max_steps)
    for t in range(max_steps):
        if not active.any():
            break
        carry, action, _, _, seeds, _ = actor.act(
            params, carry, obs, no_start, keys[t], deterministic
        )
        action, seeds = jax.device_get((action, seeds))
        env_state, ts = trial_env.step(numpy_rng(seeds[0]), env_state, action, tasks)
        slot = np.eye(episodes, dtype=np.float32)[np.minimum(ts.info["episode"], episodes - 1)]
        slot *= active[:, None]
        returns += slot * ts.reward[:, None]
        lengths += slot
        if has_success:
            success = np.maximum(success, slot * ts.info["success"][:, None])
        active &= ~ts.terminated
        obs = ts.obs
    return TrialResults(returns, success if has_success else None, lengths)
