"""Meta-World's ML1/ML10/ML45 as task distributions with the benchmark's own split."""

import jax
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.cli import main

metaworld = pytest.importorskip("metaworld")


def test_ml1_uses_metaworlds_split_and_reports_success():
    dist = tasks.make("ml1-reach")
    assert len(dist.train_set["task"]) == 50 and len(dist.test_set["task"]) == 50
    bench = metaworld.ML1("reach-v3", seed=0)
    env = dist.env
    rng = np.random.default_rng(0)
    params = {"task": np.asarray(dist.test_tasks()["task"][:2])}
    state, ts = env.reset(rng, params)
    assert ts.obs.shape == (2, 39) and set(ts.info) == {"success"}
    # The environment plays Meta-World's first test task: the same goal as Meta-World's own.
    ours = env._pool[int(state["env"][0])][1]
    theirs = bench.test_classes["reach-v3"]()
    theirs.set_task(bench.test_tasks[0])
    theirs.reset(seed=0)
    ours_goal, their_goal = np.asarray(ours._target_pos), np.asarray(theirs._target_pos)
    np.testing.assert_allclose(ours_goal, their_goal)
    for _ in range(3):
        state, ts = env.step(rng, state, np.zeros((2, 4)), params)
    assert np.isfinite(ts.reward).all()
    assert jax.tree.leaves(dist.sample(jax.random.key(0), 3))[0].shape == (3,)


def test_rl2_trains_on_ml1_from_the_command_line(tmp_path):
    args = ["train", "rl2", "--task", "ml1-reach", "--total-steps", "4000", "--num-envs", "4"]
    assert main([*args, "--eval-tasks", "2", "--run-dir", str(tmp_path / "r")]) == 0
    summary = (tmp_path / "r" / "eval").iterdir()
    assert any(summary)


@pytest.mark.slow
def test_ml10_holds_out_five_classes():
    dist = tasks.make("ml10")
    classes = {dist.env.kind({"task": i}) for i in np.asarray(dist.test_set["task"])}
    train = {dist.env.kind({"task": i}) for i in np.asarray(dist.train_set["task"])}
    assert len(classes) == 5 and len(train) == 10 and not classes & train
