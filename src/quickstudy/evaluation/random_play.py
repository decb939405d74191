"""The uniformly random player on any pure-JAX task distribution with discrete actions.

The "Random" row of a table such as SNAIL's maze table: uniform actions, run through the same
trials and meta-test record as the learners, so its returns, successes and episode lengths
(steps to the goal, a failure counting its cap) sit beside theirs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Discrete, is_host
from quickstudy.errors import ConfigError
from quickstudy.networks.distributions import Categorical
from quickstudy.rollout.scan import run_trials
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import Trial
from quickstudy.types import MetaTestResult, Policy, PolicyOutput


def uniform_policy(num_actions: int) -> Policy:
    """A memoryless policy with equal logits for ``num_actions`` actions (no parameters)."""

    def apply(params, carry, obs, start):
        del params
        logits = jnp.zeros((*obs.shape[:2], num_actions))
        return carry, PolicyOutput(logits, None, {})

    return Policy(
        init=lambda key: {},
        init_carry=lambda batch: jnp.zeros((batch,)),
        apply=apply,
        distribution=Categorical(num_actions),
    )


def random_play(
    tasks: TaskDistribution, num_tasks: int = 0, episodes: int = 0, seed: int = 0
) -> MetaTestResult:
    """Uniformly random actions on the held-out tasks of ``tasks``, one trial each.

    Args:
        tasks: A pure-JAX task distribution with a discrete action space.
        num_tasks: Held-out tasks (0: the task's default).
        episodes: Episodes per trial (0: the task's ``K``).
        seed: Seed of the play.

    Returns:
        Returns, successes and ``extras["lengths"]`` per task and episode ``[N, K]``.

    Raises:
        ConfigError: A host-stepped task or continuous actions.
    """
    example = tasks.sample_one(jax.random.key(0))
    space = tasks.env.action_space(example)
    if is_host(tasks.env) or not isinstance(space, Discrete):
        raise ConfigError(f"random_play needs a pure-JAX task with discrete actions: {tasks.name}")
    k = episodes or tasks.episodes
    test = tasks.test_tasks(num_tasks or None)
    play = jax.jit(
        lambda key: run_trials(
            key, test, {}, uniform_policy(space.n), Trial(tasks.env, k), k, k * tasks.env.horizon
        )
    )
    res = play(jax.random.key(seed))
    return MetaTestResult(res.returns, res.success, {"lengths": res.lengths})
