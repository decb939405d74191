"""Meta-World's ML1/ML10/ML45 as task distributions with the benchmark's own split."""

import json

import gymnasium as gym
import jax
import numpy as np
import pytest

from quickstudy import runner, tasks
from quickstudy.cli import main
from quickstudy.errors import ConfigError
from quickstudy.interop.metaworld_eval import MAMLAgent, TrialInputs, benchmark_name

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


def test_rl2_trains_on_ml1_and_takes_metaworlds_official_evaluation(tmp_path):
    run = tmp_path / "r"
    args = ["train", "rl2", "--task", "ml1-reach", "--total-steps", "4000", "--num-envs", "4"]
    assert main([*args, "--eval-tasks", "2", "--run-dir", str(run)]) == 0
    assert any((run / "eval").iterdir())
    out = tmp_path / "mw"
    official = ["--metaworld", "--num-evals", "1", "--evaluation-episodes", "2"]
    assert main(["evaluate", str(run), *official, "--out", str(out)]) == 0
    result = json.loads((out / "metaworld.json").read_text())
    assert 0.0 <= result["success_rate"] <= 1.0 and set(result["success_rate_per_task"]) == {
        "reach-v3"
    }
    assert result["settings"]["adaptation_episodes"] == 1  # a 2-episode trial: 1 to adapt
    assert main(["evaluate", str(run), *official, "--out", str(out)]) == 2  # kept, not replaced


class _WithTasks(gym.Wrapper):
    def sample_tasks(self):
        """Meta-World's environments draw new tasks here."""


def test_trial_inputs_append_what_rl2_reads_and_continue_the_trial_across_resets():
    envs = gym.vector.SyncVectorEnv(
        [lambda: _WithTasks(gym.wrappers.TimeLimit(gym.make("Pendulum-v1"), 2)) for _ in range(2)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs = TrialInputs(envs)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 3 + 1 + 2) and not obs[:, 3:].any()  # a fresh trial: zeros
    obs, reward, *_ = envs.step(np.full((2, 1), 5.0))
    np.testing.assert_allclose(obs[:, 3], 2.0)  # the action, clipped to the action space
    np.testing.assert_allclose(obs[:, 4], reward, rtol=1e-6)
    assert not obs[:, 5].any()
    obs, reward, terminated, truncated, _ = envs.step(np.zeros((2, 1)))
    assert truncated.all() and obs[:, 5].all()  # the episode ended (reset in the same step)
    obs, _ = envs.reset()  # a new episode of the same trial
    assert obs[:, 5].all() and np.allclose(obs[:, 4], reward)
    envs.call("sample_tasks")  # new tasks start a new trial
    obs, _ = envs.reset()
    assert not obs[:, 3:].any()


def test_official_evaluation_refuses_runs_of_other_tasks():
    with pytest.raises(ConfigError, match="not a Meta-World task"):
        benchmark_name("cheetah-vel")
    assert benchmark_name("ml1-reach") == "reach-v3" and benchmark_name("ml45") == "ML45"


@pytest.mark.slow
def test_ml10_holds_out_five_classes():
    dist = tasks.make("ml10")  # described from Meta-World's class tables, built on first use
    assert len(dist.train_set["task"]) == 10 * 50 and len(dist.test_set["task"]) == 5 * 50
    classes = {dist.env.kind({"task": i}) for i in np.asarray(dist.test_set["task"])}
    train = {dist.env.kind({"task": i}) for i in np.asarray(dist.train_set["task"])}
    assert len(classes) == 5 and len(train) == 10 and not classes & train


def test_maml_rl_takes_metaworlds_official_evaluation_with_one_inner_step(tmp_path):
    run = tmp_path / "m"
    args = ["train", "maml-rl", "--task", "ml1-reach", "--meta-batch-size", "2"]
    args += ["--episodes-per-task", "1", "--total-steps", "2000", "--test-steps", "1"]
    assert main([*args, "--test-episodes", "1", "--eval-tasks", "2", "--run-dir", str(run)]) == 0
    out = tmp_path / "mw"
    official = ["--metaworld", "--num-evals", "1", "--evaluation-episodes", "1"]
    assert main(["evaluate", str(run), *official, "--out", str(out)]) == 0
    result = json.loads((out / "metaworld.json").read_text())
    assert result["settings"]["adaptation_episodes"] == 1 and 0.0 <= result["success_rate"] <= 1
    # The agent's inner step: each environment (task) gets its own adapted parameters.
    from metaworld.evaluation import Timestep

    opened = runner.open_run(run)
    params = runner.load_state(opened, runner.latest_checkpoint(run / "checkpoints")).params
    agent = MAMLAgent(opened.algo, params, num_envs=2)
    rng = np.random.default_rng(0)
    for t in range(6):  # two 3-step episodes per environment, different rewards per env
        agent.adapt_action(rng.standard_normal((2, 39)))
        ended = np.full(2, t % 3 == 2)
        agent.step(Timestep(None, None, rng.standard_normal(2), ended, ended, {}))
    agent.adapt()
    before = jax.tree.leaves(params)[0]
    after = jax.tree.leaves(agent._params)[0]
    assert not np.allclose(after[0], before) and not np.allclose(after[0], after[1])
