"""Classical players of the RL² tables (bandits and tabular MDPs) behind one call."""

from __future__ import annotations

from typing import Any

import numpy as np

from quickstudy.algorithms import bandit_baselines, mdp_baselines
from quickstudy.envs.bandit import BernoulliBandit


def play(
    dist: Any, method: str, hyper: dict[str, Any], tasks: Any, rng: np.random.Generator
) -> np.ndarray:
    """Per-trial, per-episode rewards ``[N, K]`` of one classical method on ``tasks`` of ``dist``.

    Args:
        dist: A bandit or tabular-MDP task distribution.
        method: The method's name (:data:`~quickstudy.algorithms.bandit_baselines.ALGORITHMS`
            or :data:`~quickstudy.algorithms.mdp_baselines.ALGORITHMS`).
        hyper: Its hyperparameters.
        tasks: Task params with leaves ``[N, ...]``.
        rng: Randomness of the play.
    """
    episodes = dist.episodes
    if isinstance(dist.env, BernoulliBandit):
        choose = bandit_baselines.make_choose(method, episodes, **hyper)
        return bandit_baselines.play(rng, np.asarray(tasks.probs), choose, episodes).rewards
    plan, epsilon, prior = mdp_baselines.make_player(method, **hyper)
    return mdp_baselines.play(rng, tasks, dist.env.horizon, plan, epsilon, episodes, prior)
