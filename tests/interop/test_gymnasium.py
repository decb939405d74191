"""Gymnasium both ways: tasks exported as envs pass Gymnasium's checker; Gymnasium envs import."""

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from quickstudy import tasks
from quickstudy.interop.gymnasium import TaskEnv, TaskVectorEnv
from quickstudy.tasks.gymnasium_import import GymnasiumHost


@pytest.mark.parametrize(
    "name", ["bandit-k5-n10", "mdp-s10-a5-n10", "nav2d", "point-robot", "cheetah-vel", "ant-goal"]
)
def test_exported_env_passes_gymnasiums_checker(name):
    env = TaskEnv(name)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)


def test_a_set_task_stays_and_test_tasks_come_from_the_held_out_set():
    env = TaskEnv("nav2d")
    env.reset(seed=0)
    task = env.sample_tasks(1, split="test")[0]
    held_out = np.asarray(tasks.make("nav2d").test_tasks().goal)
    assert any(np.allclose(task.goal, g) for g in held_out)
    env.reset(options={"task": task})
    env.reset()
    np.testing.assert_array_equal(env.task.goal, task.goal)
    env.set_task(None)
    env.reset()
    assert not np.array_equal(env.task.goal, task.goal)


def test_vector_env_resets_ended_episodes_in_the_same_step():
    vec = TaskVectorEnv("point-robot", num_envs=4)  # horizon 20
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 2) and vec.single_observation_space.contains(obs[0])
    for _ in range(20):
        obs, reward, terminated, truncated, info = vec.step(np.zeros((4, 2), np.float32))
        assert reward.shape == (4,)
    assert truncated.all() and "final_obs" in info
    np.testing.assert_allclose(obs, 0.0)  # the next episodes start at the origin
    assert np.abs(info["final_obs"]).sum() == 0.0  # zero actions never left the origin


def test_vector_env_steps_mujoco_tasks_as_one_batch():
    vec = TaskVectorEnv("cheetah-vel", num_envs=3)
    obs, _ = vec.reset(seed=1)
    obs2, reward, *_ = vec.step(vec.action_space.sample())
    assert obs2.shape == (3, 20) and np.isfinite(reward).all()


def test_imported_gymnasium_env_steps_per_task_and_restarts_unknown_states():
    dist = tasks.make("pendulum-gravity")
    env = dist.env
    assert isinstance(env, GymnasiumHost)
    params = jax.device_get(dist.sample(jax.random.key(0), 3))
    assert params["g"].shape == (3,) and ((params["g"] >= 5) & (params["g"] <= 15)).all()
    rng = np.random.default_rng(0)
    state, ts = env.reset(rng, params)
    assert ts.obs.shape == (3, 3)
    gravities = [env._pool[int(i)][1].unwrapped.g for i in state["env"]]
    np.testing.assert_allclose(gravities, params["g"], rtol=1e-6)
    for _ in range(3):
        state, ts = env.step(rng, state, np.zeros((3, 1)), params)
    # A state from a checkpoint refers to environments this process does not have.
    restored = {"env": state["env"] + 100, "t": state["t"]}
    _, ts = env.step(rng, restored, np.zeros((3, 1)), params)
    assert ts.truncated.all() and ts.obs.shape == (3, 3)


def test_same_seed_same_draws():
    a, b = TaskEnv("cheetah-dir"), TaskEnv("cheetah-dir")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    act = np.full(6, 0.3, np.float32)
    np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])


def test_imported_tasks_train_with_rl2_from_the_command_line(tmp_path):
    from quickstudy.cli import main

    args = ["train", "rl2", "--task", "pendulum-gravity", "--total-steps", "3200"]
    args += ["--num-envs", "4", "--eval-tasks", "4", "--run-dir", str(tmp_path / "r")]
    assert main(args) == 0
    assert (tmp_path / "r" / "eval").exists()
    assert gymnasium.__version__
