import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.errors import ConfigError
from quickstudy.evaluation.random_play import random_play


def test_random_play_scores_chance_on_bandits_and_the_cap_in_mazes():
    bandit = random_play(tasks.make("bandit-k5-n10"), num_tasks=2000)
    total = np.asarray(bandit.values).sum(1)
    assert abs(total.mean() - 5.0) < 3 * total.std() / np.sqrt(total.size)
    maze = random_play(tasks.make("maze-small-symbolic"), num_tasks=20)
    lengths, success = np.asarray(maze.extras["lengths"]), np.asarray(maze.success)
    assert lengths.shape == (20, 2) and lengths.max() <= 250
    np.testing.assert_array_equal(lengths[success == 0], 250)  # a failure counts the cap
    assert (lengths[success == 1] < 250).all()


def test_random_play_refuses_continuous_actions():
    with pytest.raises(ConfigError, match="discrete"):
        random_play(tasks.make("point-robot"))
