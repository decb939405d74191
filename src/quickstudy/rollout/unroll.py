"""Unrolling recurrent policies in pure-JAX environments with ``lax.scan``.

Two loops share one step: ``unroll`` for training (a fixed number of steps per environment; when a
trial ends, a new task is drawn from the training distribution, the environment resets and the
policy's memory resets) and ``run_trials`` for meta-testing (one trial per given task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Environment
from quickstudy.networks.distributions import Distribution

PyTree = Any
# apply(net_params, h [B, S], obs [T, B, D], start [T, B]) -> (h, dist_params [T, B, P], v [T, B])
ApplyFn = Callable[
    [PyTree, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]
]


class RolloutState(NamedTuple):
    """What carries over between unrolls; every leaf has a leading batch axis ``[B, ...]``.

    Attributes:
        env_state: Environment states.
        task: Task params of each environment.
        obs: Current observations ``[B, D]``.
        start: ``[B]`` bool, true when ``obs`` is the first of a trial (memory is reset).
        hidden: Policy memory ``[B, S]`` before processing ``obs``.
        trial_return: Reward accumulated in the current trial ``[B]``.
    """

    env_state: PyTree
    task: PyTree
    obs: jax.Array
    start: jax.Array
    hidden: jax.Array
    trial_return: jax.Array


class Trajectory(NamedTuple):
    """A batch of experience, time-major ``[T, B, ...]``.

    Attributes:
        obs: Observations the actions were taken in.
        start: Memory-reset flags of those observations.
        action: Actions taken.
        log_prob: ``log pi(a | history)`` under the behaviour policy.
        value: ``V(history)`` under the behaviour policy.
        reward: Rewards.
        terminated: Terminal flags.
        truncated: Time-limit flags.
        v_next: Value of the true next observation (pre-reset where an episode ended).
        completed_return: The trial's total reward at steps that end a trial, else 0.
        info: Environment info, ``[T, B]`` leaves.
    """

    obs: jax.Array
    start: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    v_next: jax.Array
    completed_return: jax.Array
    info: dict[str, jax.Array]


def batch_select(mask: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Per-row ``where``: ``mask`` ``[B]`` selects rows of leaves ``[B, ...]``."""

    def sel(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(sel, on_true, on_false)


def init_rollout(
    key: jax.Array,
    env: Environment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    initial_hidden: jax.Array,
) -> RolloutState:
    """Draws one task per environment and resets them; ``initial_hidden`` is ``[B, S]``."""
    batch = initial_hidden.shape[0]
    k_task, k_reset = jax.random.split(key)
    task = sample_tasks(k_task, batch)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch), task)
    return RolloutState(
        env_state=env_state,
        task=task,
        obs=ts.obs,
        start=jnp.ones((batch,), bool),
        hidden=initial_hidden,
        trial_return=jnp.zeros((batch,), jnp.float32),
    )


def unroll(
    key: jax.Array,
    state: RolloutState,
    net_params: PyTree,
    apply_fn: ApplyFn,
    dist: Distribution,
    env: Environment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    num_steps: int,
) -> tuple[RolloutState, Trajectory]:
    """Collects ``num_steps`` steps in each of ``B`` environments.

    When an episode of ``env`` ends (for a :class:`~quickstudy.tasks.Trial`, when the trial ends)
    the environment gets a new task from ``sample_tasks`` and the memory resets. ``v_next`` at a
    truncated step is the value of the pre-reset observation, computed only when some environment
    was truncated at that step.

    Returns:
        The carried state after the unroll and the trajectory ``[num_steps, B, ...]``.
    """
    batch = state.obs.shape[0]

    def step(rs: RolloutState, key):
        k_act, k_env, k_task, k_reset = jax.random.split(key, 4)
        h, out, v = apply_fn(net_params, rs.hidden, rs.obs[None], rs.start[None])
        out, v = out[0], v[0]
        action = dist.sample(k_act, out)
        log_prob = dist.log_prob(out, action)
        env_state, ts = jax.vmap(env.step)(
            jax.random.split(k_env, batch), rs.env_state, action, rs.task
        )
        done = ts.terminated | ts.truncated

        def bootstrap(_):
            return apply_fn(net_params, h, ts.obs[None], jnp.zeros((1, batch), bool))[2][0]

        v_trunc = jax.lax.cond(
            jnp.any(ts.truncated), bootstrap, lambda _: jnp.zeros_like(v), operand=None
        )
        # Task sampling can be costly (Dirichlet draws for MDPs): only when a trial ended.
        task = jax.lax.cond(
            jnp.any(done),
            lambda: batch_select(done, sample_tasks(k_task, batch), rs.task),
            lambda: rs.task,
        )
        reset_state, reset_ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch), task)
        trial_return = rs.trial_return + ts.reward
        next_rs = RolloutState(
            env_state=batch_select(done, reset_state, env_state),
            task=task,
            obs=jnp.where(done[:, None], reset_ts.obs, ts.obs),
            start=done,
            hidden=h,
            trial_return=jnp.where(done, 0.0, trial_return),
        )
        transition = Trajectory(
            obs=rs.obs,
            start=rs.start,
            action=action,
            log_prob=log_prob,
            value=v,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            v_next=v_trunc,
            completed_return=jnp.where(done, trial_return, 0.0),
            info=ts.info,
        )
        return next_rs, transition

    state, traj = jax.lax.scan(step, state, jax.random.split(key, num_steps))
    _, _, v_last = apply_fn(net_params, state.hidden, state.obs[None], state.start[None])
    v_following = jnp.concatenate([traj.value[1:], v_last], axis=0)
    v_next = jnp.where(traj.truncated, traj.v_next, v_following)
    return state, traj._replace(v_next=v_next)


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


def run_trials(
    key: jax.Array,
    tasks: PyTree,
    net_params: PyTree,
    apply_fn: ApplyFn,
    dist: Distribution,
    trial_env: Environment,
    initial_hidden: jax.Array,
    episodes: int,
    max_steps: int,
    deterministic: bool = False,
) -> TrialResults:
    """Runs one trial of ``episodes`` episodes on each of ``N`` tasks (memory kept throughout).

    Args:
        key: PRNG key.
        tasks: Task params with leaves ``[N, ...]``.
        net_params: Policy parameters.
        apply_fn: Recurrent policy (see :data:`ApplyFn`).
        dist: Its action distribution.
        trial_env: A :class:`~quickstudy.tasks.Trial` (its info has ``episode``).
        initial_hidden: ``[N, S]`` zero memory.
        episodes: ``K``.
        max_steps: Upper bound on the trial length (``K * horizon``).
        deterministic: Act with the distribution's mode instead of sampling.

    Returns:
        :class:`TrialResults` with ``[N, K]`` arrays.
    """
    n = initial_hidden.shape[0]
    k_reset, k_run = jax.random.split(key)
    env_state, ts = jax.vmap(trial_env.reset)(jax.random.split(k_reset, n), tasks)
    zeros = jnp.zeros((n, episodes), jnp.float32)
    carry0 = (env_state, ts.obs, initial_hidden, jnp.ones((n,), bool), zeros, zeros, zeros)
    has_success = "success" in ts.info

    def step(carry, key):
        env_state, obs, h, active, returns, success, lengths = carry
        k_act, k_env = jax.random.split(key)
        start = jnp.zeros((1, n), bool)
        h, out, _ = apply_fn(net_params, h, obs[None], start)
        out = out[0]
        action = dist.mode(out) if deterministic else dist.sample(k_act, out)
        env_state, ts = jax.vmap(trial_env.step)(
            jax.random.split(k_env, n), env_state, action, tasks
        )
        slot = jax.nn.one_hot(ts.info["episode"], episodes) * active[:, None]
        returns = returns + slot * ts.reward[:, None]
        lengths = lengths + slot
        if has_success:
            success = jnp.maximum(success, slot * ts.info["success"][:, None])
        active = active & ~ts.terminated
        return (env_state, ts.obs, h, active, returns, success, lengths), None

    carry, _ = jax.lax.scan(step, carry0, jax.random.split(k_run, max_steps))
    success = carry[5] if has_success else None
    return TrialResults(returns=carry[4], success=success, lengths=carry[6])
