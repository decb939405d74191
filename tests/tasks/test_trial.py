"""The trial wrapper: augmented observations, inner resets, episode counting, trial end.

Everything runs eagerly (no jit): the programs are tiny and op-by-op dispatch shares its compiled
primitives with the other env tests, where a jitted function per case would each cost a compile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.envs.bandit import BanditParams, BernoulliBandit
from quickstudy.envs.base import Discrete
from quickstudy.envs.navigation import GoalParams
from quickstudy.envs.tabular_mdp import MDPParams, TabularMDP
from quickstudy.tasks import Trial, TrialState
from quickstudy.tasks.trial import WithTaskFeatures, task_features


def _registered(name):
    dist = tasks.make(name)
    return Trial(dist.env, dist.episodes)


def _run(trial, params, policy, num_steps, seed=0):
    """Resets, then steps ``num_steps`` times with ``action = policy(obs)``; host TimeSteps."""
    key = jax.random.key(seed)
    key, k = jax.random.split(key)
    state, ts = trial.reset(k, params)
    out = [jax.device_get(ts)]
    for _ in range(num_steps):
        key, k = jax.random.split(key)
        state, ts = trial.step(k, state, policy(np.asarray(ts.obs)), params)
        out.append(jax.device_get(ts))
    return state, out


def _deterministic_mdp(to_state=7):
    """|S|=10, |A|=5; every (s, a) moves to ``to_state``; R(s, a) = 100 s + 10 a (noise N(0,1))."""
    P = np.zeros((10, 5, 10), np.float32)
    P[..., to_state] = 1.0
    R = (100.0 * np.arange(10)[:, None] + 10.0 * np.arange(5)[None, :]).astype(np.float32)
    return MDPParams(jnp.asarray(P), jnp.asarray(R))


# --------------------------------------------------------------------------------------------
# Observation layout.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, act_dim", [("bandit-k5-n10", 5), ("mdp-s10-a5-n10", 5), ("nav2d", 2)]
)
def test_reset_obs_is_inner_obs_then_zeros(name, act_dim):
    dist, trial = tasks.make(name), _registered(name)
    params = jax.tree.map(lambda x: x[0], dist.sample(jax.random.key(0), 4))  # 4: as elsewhere
    space = dist.env.action_space(params)
    assert (space.n if isinstance(space, Discrete) else space.shape[0]) == act_dim
    _, inner = dist.env.reset(jax.random.key(1), params)
    state, ts = trial.reset(jax.random.key(1), params)
    expected = np.concatenate([np.asarray(inner.obs).ravel(), np.zeros(act_dim + 2, np.float32)])
    np.testing.assert_array_equal(ts.obs, expected)
    assert ts.obs.dtype == jnp.float32
    assert ts.obs.shape == trial.observation_space(params).shape
    assert float(ts.reward) == 0.0 and not ts.terminated and not ts.truncated
    assert int(ts.info["episode"]) == 0 and not bool(ts.info["episode_done"])
    assert isinstance(state, TrialState) and int(state.episode) == 0
    assert trial.action_space(params) == dist.env.action_space(params)


def test_discrete_prev_action_is_one_hot_and_reward_and_done_are_set():
    trial = _registered("bandit-k5-n10")
    params = BanditParams(jnp.array([0.0, 1.0, 0.0, 1.0, 0.0], jnp.float32))
    for action, reward in [(3, 1.0), (0, 0.0), (4, 0.0), (1, 1.0)]:
        state, ts = trial.reset(jax.random.key(0), params)
        state, ts = trial.step(jax.random.key(1), state, jnp.int32(action), params)
        expected = np.concatenate([[0.0], np.eye(5)[action], [reward, 1.0]]).astype(np.float32)
        np.testing.assert_array_equal(ts.obs, expected)
        assert float(ts.reward) == reward
        assert bool(ts.info["episode_done"]) and int(ts.info["episode"]) == 0
        assert int(state.episode) == 1


def test_continuous_prev_action_is_clipped():
    trial = _registered("nav2d")
    params = GoalParams(jnp.array([0.3, 0.3], jnp.float32))
    state, _ = trial.reset(jax.random.key(0), params)
    state, ts = trial.step(jax.random.key(1), state, jnp.array([0.5, -0.05]), params)
    dist = np.hypot(0.3 - 0.1, 0.3 + 0.05)
    np.testing.assert_allclose(ts.obs, [0.1, -0.05, 0.1, -0.05, -dist, 0.0], atol=1e-6)
    np.testing.assert_allclose(ts.reward, -dist, atol=1e-6)
    assert not bool(ts.info["episode_done"]) and not bool(ts.terminated)
    state, ts = trial.step(jax.random.key(2), state, jnp.array([-np.inf, 0.2]), params)
    np.testing.assert_allclose(ts.obs[:4], [0.0, 0.05, -0.1, 0.1], atol=1e-6)


# --------------------------------------------------------------------------------------------
# Episode boundaries and the end of the trial.
# --------------------------------------------------------------------------------------------


def test_mdp_inner_env_resets_on_the_same_task_after_horizon():
    trial = Trial(TabularMDP(10, 5, 10), episodes=3)
    params = _deterministic_mdp(to_state=7)
    state, out = _run(trial, params, lambda obs: jnp.int32(2), 30)
    np.testing.assert_array_equal(out[0].obs[:10], np.eye(10)[0])
    for t, ts in enumerate(out[1:], start=1):
        end = t % 10 == 0
        # Inner obs: state 7 after every move, state 0 again on the step that ends an episode.
        np.testing.assert_array_equal(ts.obs[:10], np.eye(10)[0 if end else 7], err_msg=f"t={t}")
        np.testing.assert_array_equal(ts.obs[10:15], np.eye(5)[2])  # previous action
        assert ts.obs[15] == ts.reward  # previous reward
        assert ts.obs[16] == float(end), f"done flag at t={t}"
        assert bool(ts.info["episode_done"]) == end
        assert int(ts.info["episode"]) == (t - 1) // 10
        # First step of each episode from state 0, later ones from state 7: R = 0 + 20 or 700 + 20.
        mean = 20.0 if t % 10 == 1 else 720.0
        assert abs(float(ts.reward) - mean) < 6.0, f"reward at t={t}"
        assert bool(ts.terminated) == (t == 30), f"terminated at t={t}"
        assert not bool(ts.truncated)
    assert int(state.episode) == 3


def test_bandit_trial_terminates_exactly_after_n_pulls():
    trial = _registered("bandit-k5-n10")
    params = BanditParams(jnp.array([0.2, 0.4, 0.6, 0.8, 1.0], jnp.float32))
    rng = np.random.default_rng(0)
    state, out = _run(trial, params, lambda obs: jnp.int32(rng.integers(0, 5)), 12)
    terminated = [bool(ts.terminated) for ts in out[1:]]
    assert terminated == [False] * 9 + [True] * 3
    assert [int(ts.info["episode"]) for ts in out[1:11]] == list(range(10))
    assert all(bool(ts.info["episode_done"]) and ts.obs[-1] == 1.0 for ts in out[1:])
    assert not any(bool(ts.truncated) for ts in out)
    assert int(state.episode) == 12


def _steps_to_goal(goal):
    """Steps of the straight-to-goal policy until |dx|, |dy| < 0.01 (float32, as the env)."""
    pos, goal = np.zeros(2, np.float32), np.asarray(goal, np.float32)
    for t in range(1, 101):
        pos = (pos + np.clip(goal - pos, np.float32(-0.1), np.float32(0.1))).astype(np.float32)
        if np.all(np.abs(pos - goal) < 0.01):
            return t
    raise AssertionError("unreachable in 100 steps")


@pytest.mark.parametrize("goal", [[0.35, -0.22], [-0.5, 0.5], [0.004, -0.003], [0.1, 0.25]])
def test_nav2d_trial_with_goal_seeking_policy_ends_after_two_early_episodes(goal):
    trial = _registered("nav2d")
    assert trial.episodes == 2
    params = GoalParams(jnp.asarray(goal, jnp.float32))
    n = _steps_to_goal(goal)
    assert n < 100  # every episode ends early, by termination

    def policy(obs):
        return jnp.asarray(np.asarray(goal, np.float32) - obs[:2])  # clipped by the env

    state, out = _run(trial, params, policy, 2 * n + 2)
    steps = out[1:]
    ends = [t for t, ts in enumerate(steps, start=1) if bool(ts.info["episode_done"])]
    assert ends[:2] == [n, 2 * n]
    assert [bool(ts.terminated) for ts in steps[: 2 * n]] == [False] * (2 * n - 1) + [True]
    for t in (n, 2 * n):
        ts = steps[t - 1]
        np.testing.assert_array_equal(ts.obs[:2], [0.0, 0.0])  # inner env reset at the origin
        assert ts.obs[-1] == 1.0 and float(ts.info["success"]) == 1.0
        assert float(ts.reward) > -0.015
    assert [int(ts.info["episode"]) for ts in steps[: 2 * n]] == [0] * n + [1] * n
    assert int(state.episode) >= 2


def test_point_robot_trial_of_truncated_episodes():
    trial = _registered("point-robot")
    assert trial.episodes == 3
    params = GoalParams(jnp.array([0.5, 0.5], jnp.float32))
    state, out = _run(trial, params, lambda obs: jnp.array([0.02, 0.0]), 60)
    steps = out[1:]
    assert [t for t, ts in enumerate(steps, start=1) if bool(ts.info["episode_done"])] == [
        20,
        40,
        60,
    ]
    assert [bool(ts.terminated) for ts in steps] == [False] * 59 + [True]
    assert [int(ts.info["episode"]) for ts in steps] == [0] * 20 + [1] * 20 + [2] * 20
    # Each episode restarts at the origin: the trajectory repeats every 20 steps.
    obs = np.stack([ts.obs for ts in steps])
    np.testing.assert_allclose(obs[20:40], obs[:20], atol=1e-6)
    np.testing.assert_allclose(obs[19, :2], [0.0, 0.0])  # reset obs after the 20th step
    np.testing.assert_allclose(obs[18, :2], [0.38, 0.0], atol=1e-6)
    total = sum(float(ts.reward) for ts in steps)
    assert np.isclose(total, 3 * sum(float(ts.reward) for ts in steps[:20]), rtol=1e-5)
    assert int(state.episode) == 3


def test_trial_reset_starts_a_fresh_trial():
    trial = Trial(BernoulliBandit(2), episodes=2)
    params = BanditParams(jnp.array([1.0, 0.0], jnp.float32))
    state, _ = trial.reset(jax.random.key(0), params)
    for i in range(3):
        state, ts = trial.step(jax.random.key(i), state, jnp.int32(0), params)
    assert bool(ts.terminated) and int(state.episode) == 3
    state, ts = trial.reset(jax.random.key(9), params)
    assert int(state.episode) == 0 and not bool(ts.terminated)
    state, ts = trial.step(jax.random.key(10), state, jnp.int32(0), params)
    assert not bool(ts.terminated) and int(ts.info["episode"]) == 0


@pytest.mark.parametrize("name", ["bandit-k5-n10", "mdp-s10-a5-n10", "nav2d"])
def test_inner_spaces_are_static_inside_jit(name):
    env = tasks.make(name).env
    params = jax.tree.map(lambda x: x[0], tasks.make(name).sample(jax.random.key(0), 4))

    @jax.jit
    def zeros_like_spaces(params):
        obs_space, act_space = env.observation_space(params), env.action_space(params)
        return jnp.zeros(obs_space.shape), jnp.zeros(act_space.shape)

    obs, act = zeros_like_spaces(params)
    assert obs.shape == env.observation_space(params).shape
    assert act.shape == env.action_space(params).shape


@pytest.mark.parametrize("name", ["bandit-k5-n10", "nav2d"])
def test_trial_observation_space_inside_jit(name):
    trial = _registered(name)
    params = jax.tree.map(lambda x: x[0], tasks.make(name).sample(jax.random.key(0), 4))
    shape = jax.jit(lambda p: jnp.zeros(trial.observation_space(p).shape))(params).shape
    assert shape == trial.observation_space(params).shape


def test_task_features_append_the_task_to_every_observation():
    trial = Trial(TabularMDP(2, 2, 3), 4)  # 4 episodes of 3 steps
    mdp = MDPParams(jnp.full((2, 2, 2), 0.5), jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    env = WithTaskFeatures(trial)
    dim = trial.observation_space(mdp).shape[0]
    assert env.observation_space(mdp).shape == (dim + task_features(mdp).shape[0],)
    state, ts = env.reset(jax.random.key(0), mdp)
    np.testing.assert_array_equal(ts.obs[dim:], task_features(mdp))
    for t in range(12):
        state, ts = env.step(jax.random.key(t + 1), state, jnp.int32(t % 2), mdp)
        np.testing.assert_array_equal(ts.obs[dim:], task_features(mdp))
    assert bool(ts.terminated)
