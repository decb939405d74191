"""Learning tests (minutes each): `pytest -m slow`."""

import jax
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.runner import meta_test, train_program

pytestmark = pytest.mark.slow


def _train_and_test(task, total_steps, num_tasks=None):
    dist = tasks.make(task)
    algo = make_rl2(RL2Config(total_steps=total_steps), dist)
    state, _ = jax.jit(train_program(algo))(jax.random.key(0))
    return meta_test(algo, state.params, num_tasks=num_tasks or 0, seed=1)


def test_rl2_bandit_k5_n10_beats_random_clearly():
    res = _train_and_test("bandit-k5-n10", 600_000)
    total = np.asarray(res.values.sum(1))
    # random play: 5.0; the RL² paper: 6.7
    assert total.mean() - 3 * total.std(ddof=1) / np.sqrt(total.size) > 6.0, total.mean()


def test_rl2_nav2d_second_episode_beats_first():
    res = _train_and_test("nav2d", 4_000_000, num_tasks=200)
    ret = np.asarray(res.values)
    diff = ret[:, 1] - ret[:, 0]
    assert diff.mean() - 3 * diff.std(ddof=1) / np.sqrt(diff.size) > 0, ret.mean(0)
