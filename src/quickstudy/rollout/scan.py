"""The JAX collector: policies unrolled in pure-JAX environments with ``lax.scan``.

Two loops share one step: :func:`unroll` for training (a fixed number of steps per environment;
when an episode of the collected environment ends — for a trial wrapper, when the trial ends — a
new task is drawn from the training distribution, the environment resets and the policy's memory
resets) and :func:`run_trials` for meta-testing (one trial per given task). Both compile into the
caller's program; :mod:`quickstudy.rollout.host` does the same for host-stepped environments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Environment
from quickstudy.rollout.base import RolloutState, TrialResults, batch_select
from quickstudy.types import Policy, Transition

PyTree = Any


def init_rollout(
    key: jax.Array,
    env: Environment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    policy: Policy,
    batch: int,
) -> RolloutState:
    """Draws one task per environment, resets them and zeroes the policy's memory."""
    k_task, k_reset = jax.random.split(key)
    task = sample_tasks(k_task, batch)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch), task)
    return RolloutState(
        env_state=env_state,
        task=task,
        obs=ts.obs,
        start=jnp.ones((batch,), bool),
        carry=policy.init_carry(batch),
        episode_return=jnp.zeros((batch,), jnp.float32),
    )


def unroll(
    key: jax.Array,
    state: RolloutState,
    params: PyTree,
    policy: Policy,
    env: Environment,
    sample_tasks: Callable[[jax.Array, int], PyTree],
    num_steps: int,
) -> tuple[RolloutState, Transition]:
    """Collects ``num_steps`` steps in each of ``B`` environments.

    When an episode of ``env`` ends (for a :class:`~quickstudy.tasks.Trial`, when the trial ends)
    the environment gets a new task from ``sample_tasks`` and the memory resets. ``next_value`` at
    a truncated step is the value of the pre-reset observation, computed only when some
    environment was truncated at that step.

    Returns:
        The carried state after the unroll and the transitions ``[num_steps, B, ...]``.
    """
    batch = state.obs.shape[0]
    dist = policy.distribution

    def step(rs: RolloutState, key):
        k_act, k_env, k_task, k_reset = jax.random.split(key, 4)
        carry, out = policy.apply(params, rs.carry, rs.obs[None], rs.start[None])
        logits, v = out.dist[0], out.value[0]
        action = dist.sample(k_act, logits)
        log_prob = dist.log_prob(logits, action)
        env_state, ts = jax.vmap(env.step)(
            jax.random.split(k_env, batch), rs.env_state, action, rs.task
        )
        done = ts.terminated | ts.truncated

        def bootstrap(_):
            no_start = jnp.zeros((1, batch), bool)
            return policy.apply(params, carry, ts.obs[None], no_start)[1].value[0]

        v_trunc = jax.lax.cond(
            jnp.any(ts.truncated), bootstrap, lambda _: jnp.zeros_like(v), operand=None
        )
        # Task sampling can be costly (Dirichlet draws for MDPs): only when an episode ended.
        task = jax.lax.cond(
            jnp.any(done),
            lambda: batch_select(done, sample_tasks(k_task, batch), rs.task),
            lambda: rs.task,
        )
        reset_state, reset_ts = jax.vmap(env.reset)(jax.random.split(k_reset, batch), task)
        episode_return = rs.episode_return + ts.reward
        next_rs = RolloutState(
            env_state=batch_select(done, reset_state, env_state),
            task=task,
            obs=jnp.where(done[:, None], reset_ts.obs, ts.obs),
            start=done,
            carry=carry,
            episode_return=jnp.where(done, 0.0, episode_return),
        )
        transition = Transition(
            obs=rs.obs,
            action=action,
            reward=ts.reward,
            next_obs=ts.obs,
            terminated=ts.terminated,
            truncated=ts.truncated,
            start=rs.start,
            log_prob=log_prob,
            value=v,
            next_value=v_trunc,
            info=dict(ts.info, episode_return=jnp.where(done, episode_return, 0.0)),
        )
        return next_rs, transition

    state, traj = jax.lax.scan(step, state, jax.random.split(key, num_steps))
    _, out = policy.apply(params, state.carry, state.obs[None], state.start[None])
    v_following = jnp.concatenate([traj.value[1:], out.value], axis=0)
    next_value = jnp.where(traj.truncated, traj.next_value, v_following)
    return state, traj._replace(next_value=next_value)


def run_trials(
    key: jax.Array,
    tasks: PyTree,
    params: PyTree,
    policy: Policy,
    trial_env: Environment,
    episodes: int,
    max_steps: int,
    deterministic: bool = False,
) -> TrialResults:
    """Runs one trial of ``episodes`` episodes on each of ``N`` tasks (memory kept throughout).

    Args:
        key: PRNG key.
        tasks: Task params with leaves ``[N, ...]``.
        params: Policy parameters.
        policy: The policy.
        trial_env: A :class:`~quickstudy.tasks.Trial` (its info has ``episode``).
        episodes: ``K``.
        max_steps: Upper bound on the trial length (``K * horizon``).
        deterministic: Act with the distribution's mode instead of sampling.

    Returns:
        :class:`TrialResults` with ``[N, K]`` arrays.
    """
    n = jax.tree.leaves(tasks)[0].shape[0]
    dist = policy.distribution
    k_reset, k_run = jax.random.split(key)
    env_state, ts = jax.vmap(trial_env.reset)(jax.random.split(k_reset, n), tasks)
    zeros = jnp.zeros((n, episodes), jnp.float32)
    carry0 = (env_state, ts.obs, policy.init_carry(n), jnp.ones((n,), bool), zeros, zeros, zeros)
    has_success = "success" in ts.info

    def step(carry, key):
        env_state, obs, h, active, returns, success, lengths = carry
        k_act, k_env = jax.random.split(key)
        start = jnp.zeros((1, n), bool)
        h, out = policy.apply(params, h, obs[None], start)
        logits = out.dist[0]
        action = dist.mode(logits) if deterministic else dist.sample(k_act, logits)
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
