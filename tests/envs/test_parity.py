"""Parity of the JAX environments with small NumPy references (test pyramid (d)).

Navigation envs are deterministic, so trajectories must match the reference exactly (up to float32
rounding). The bandit and the tabular MDP are stochastic: their deterministic parts (observation,
flags, step counter) are compared step by step, and their distributions are checked empirically
against the task parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.envs.bandit import BanditParams, BernoulliBandit
from quickstudy.envs.navigation import GoalParams, PointNavigation
from quickstudy.envs.tabular_mdp import MDPParams, MDPState, TabularMDP

# --------------------------------------------------------------------------------------------
# NumPy references, written from REFERENCE.md (§1 RL² tasks, §3 nav2d, §4 point robots).
# --------------------------------------------------------------------------------------------


class NumpyPointNav:
    """Point navigation in float32 NumPy: s' = s + clip(a), reward on s'."""

    def __init__(self, goal, horizon, max_action=0.1, sparse=False, radius=0.2, term=False):
        self.goal = np.asarray(goal, np.float32)
        self.horizon, self.max_action = horizon, np.float32(max_action)
        self.sparse, self.radius, self.term = sparse, np.float32(radius), term

    def reset(self):
        self.pos, self.t = np.zeros(2, np.float32), 0
        return self.pos.copy()

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32), -self.max_action, self.max_action)
        self.pos = (self.pos + a).astype(np.float32)
        self.t += 1
        dx, dy = self.pos - self.goal
        dist = np.float32(np.sqrt(dx * dx + dy * dy))
        within = dist <= self.radius
        reward = (1.0 - dist if within else 0.0) if self.sparse else -dist
        if self.term:
            terminated = bool(abs(dx) < 0.01 and abs(dy) < 0.01)
            success = terminated
        else:
            terminated, success = False, bool(dist <= self.radius)
        truncated = self.t >= self.horizon and not terminated
        return self.pos.copy(), np.float32(reward), terminated, truncated, float(success)


class NumpyTabularMDP:
    """Deterministic part of the tabular MDP: given the sampled next state, what must be emitted."""

    def __init__(self, num_states, horizon):
        self.num_states, self.horizon = num_states, horizon

    def reset(self):
        self.s, self.t = 0, 0
        return np.eye(self.num_states, dtype=np.float32)[0]

    def step(self, s_next):
        self.s, self.t = int(s_next), self.t + 1
        obs = np.eye(self.num_states, dtype=np.float32)[self.s]
        return obs, False, self.t >= self.horizon


def _run_jax(env, params, actions, key=0):
    """Steps ``env`` through ``actions`` without resets; returns a list of TimeSteps (host).

    Eager (op by op): cheaper than compiling one program per env configuration, and the
    primitives' compilations are shared with the other env tests.
    """
    keys = jax.random.split(jax.random.key(key), len(actions) + 1)
    state, ts = env.reset(keys[0], params)
    out = [jax.device_get(ts)]
    for k, a in zip(keys[1:], actions, strict=True):
        state, ts = env.step(k, state, jnp.asarray(a), params)
        out.append(jax.device_get(ts))
    return out


# --------------------------------------------------------------------------------------------
# Navigation: exact trajectory parity.
# --------------------------------------------------------------------------------------------

NAV_CONFIGS = {
    "nav2d": dict(horizon=100, terminate_at_goal=True),
    "point-robot": dict(horizon=20),
    "sparse-point-robot": dict(horizon=20, sparse=True),
}


def _pair(name, goal):
    cfg = NAV_CONFIGS[name]
    env = PointNavigation(
        horizon=cfg["horizon"],
        max_action=0.1,
        sparse=cfg.get("sparse", False),
        goal_radius=0.2,
        terminate_at_goal=cfg.get("terminate_at_goal", False),
    )
    ref = NumpyPointNav(
        goal,
        cfg["horizon"],
        sparse=cfg.get("sparse", False),
        term=cfg.get("terminate_at_goal", False),
    )
    return env, ref, GoalParams(jnp.asarray(goal, jnp.float32))


def _assert_same_trajectory(env, ref, params, actions):
    got = _run_jax(env, params, actions)
    np.testing.assert_array_equal(got[0].obs, ref.reset())
    assert not got[0].terminated and not got[0].truncated and got[0].reward == 0.0
    for t, (ts, a) in enumerate(zip(got[1:], actions, strict=True), start=1):
        obs, reward, terminated, truncated, success = ref.step(a)
        np.testing.assert_allclose(ts.obs, obs, rtol=0, atol=1e-6, err_msg=f"obs at t={t}")
        np.testing.assert_allclose(ts.reward, reward, rtol=0, atol=1e-6, err_msg=f"r at t={t}")
        assert bool(ts.terminated) == terminated, f"terminated at t={t}"
        assert bool(ts.truncated) == truncated, f"truncated at t={t}"
        assert float(ts.info["success"]) == success, f"success at t={t}"
        assert ts.obs.dtype == np.float32 and ts.reward.dtype == np.float32
        assert ts.terminated.dtype == np.bool_ and ts.truncated.dtype == np.bool_


@pytest.mark.parametrize("name", list(NAV_CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_navigation_random_actions_match_reference(name, seed):
    rng = np.random.default_rng(seed)
    horizon = NAV_CONFIGS[name]["horizon"]
    lim = 0.5 if name == "nav2d" else 1.0
    goal = rng.uniform(-lim, lim, 2).astype(np.float32)
    env, ref, params = _pair(name, goal)
    # Actions up to 3x the bound, so that clipping happens on most steps.
    actions = rng.uniform(-0.3, 0.3, (horizon + 5, 2)).astype(np.float32)
    _assert_same_trajectory(env, ref, params, actions)


@pytest.mark.parametrize("name", list(NAV_CONFIGS))
def test_navigation_greedy_policy_matches_reference(name):
    """Heading straight at the goal reaches it: exercises termination and the sparse region."""
    goal = np.array([0.43, -0.27] if name == "nav2d" else [0.6, 0.8], np.float32)
    env, ref, params = _pair(name, goal)
    twin = NumpyPointNav(goal, 1000)
    twin.reset()
    actions = []
    for _ in range(NAV_CONFIGS[name]["horizon"]):
        a = np.clip(goal - twin.pos, -0.1, 0.1) * np.float32(1.5)  # overshoots unless clipped
        twin.step(a)
        actions.append(a.astype(np.float32))
    _assert_same_trajectory(env, ref, params, np.stack(actions))


def test_nav2d_terminates_exactly_at_goal_rule():
    """|dx| < 0.01 and |dy| < 0.01 (strict, both coordinates); reward -||s' - g||."""
    env, _, params = _pair("nav2d", [0.0, 0.0])
    # One step each, from the origin, with the goal at 0: the new position is the action.
    cases = [
        ([0.005, -0.005], True),
        ([0.0099, 0.0099], True),
        ([0.0, 0.0], True),
        ([0.011, 0.0], False),
        ([0.0, -0.011], False),
        ([0.009, 0.02], False),
        ([0.05, 0.05], False),
    ]
    for action, done in cases:
        (_, ts) = _run_jax(env, params, [np.asarray(action, np.float32)])
        assert bool(ts.terminated) == done, action
        assert not bool(ts.truncated)
        assert float(ts.info["success"]) == float(done)
        np.testing.assert_allclose(ts.reward, -np.hypot(*action), atol=1e-7)


def test_nav2d_truncates_at_horizon_and_not_when_terminated():
    env, _, params = _pair("nav2d", [0.45, 0.45])
    # Never reaching the goal: truncated at t = 100 (and after), never terminated.
    got = _run_jax(env, params, np.zeros((101, 2), np.float32))
    flags = [(bool(ts.terminated), bool(ts.truncated)) for ts in got[1:]]
    assert flags[:99] == [(False, False)] * 99
    assert flags[99] == (False, True)
    # Reaching the goal on the last step counts as terminated, not truncated.
    env, _, params = _pair("nav2d", [0.0, 0.0])
    actions = np.zeros((100, 2), np.float32)
    actions[0] = [0.05, 0.0]  # leave the goal ...
    actions[99] = [-0.05, 0.0]  # ... and come back on step 100
    got = _run_jax(env, params, actions)
    assert bool(got[100].terminated) and not bool(got[100].truncated)


def test_point_robot_never_terminates_truncates_at_20():
    env, _, params = _pair("point-robot", [0.0, 0.0])
    got = _run_jax(env, params, np.zeros((25, 2), np.float32))
    assert not any(bool(ts.terminated) for ts in got)
    assert [bool(ts.truncated) for ts in got[1:]].index(True) == 19  # step t=20


def test_sparse_reward_formula():
    """1 - ||s' - g|| inside radius 0.2 (inclusive), else 0; success marks the inside."""
    env, _, params = _pair("sparse-point-robot", [0.1, 0.0])
    cases = [([0.1, 0.0], 1.0), ([0.1, 0.05], 0.95), ([0.0, 0.0], 0.9), ([-0.1, 0.0], 0.8)]
    for action, reward in cases:
        (_, ts) = _run_jax(env, params, [np.asarray(action, np.float32)])
        np.testing.assert_allclose(ts.reward, reward, atol=1e-6)
        assert float(ts.info["success"]) == 1.0
    env, _, params = _pair("sparse-point-robot", [0.25, 0.1])
    for action in ([0.0, 0.0], [-0.1, -0.1], [0.05, -0.1]):  # distances 0.27, 0.40, 0.28
        (_, ts) = _run_jax(env, params, [np.asarray(action, np.float32)])
        assert float(ts.reward) == 0.0 and float(ts.info["success"]) == 0.0


def test_navigation_action_clipping_per_coordinate():
    env, _, params = _pair("point-robot", [0.0, 0.0])
    (_, ts) = _run_jax(env, params, [np.array([5.0, -0.03], np.float32)])
    np.testing.assert_allclose(ts.obs, [0.1, -0.03], atol=1e-7)
    (_, ts) = _run_jax(env, params, [np.array([-np.inf, 0.2], np.float32)])
    np.testing.assert_allclose(ts.obs, [-0.1, 0.1], atol=1e-7)


# --------------------------------------------------------------------------------------------
# Bernoulli bandit.
# --------------------------------------------------------------------------------------------


def test_bandit_deterministic_parts_match_reference():
    env = BernoulliBandit(5)
    params = BanditParams(jnp.array([0.0, 1.0, 0.3, 0.7, 1.0], jnp.float32))
    actions = np.random.default_rng(0).integers(0, 5, 30)
    got = _run_jax(env, params, actions)
    np.testing.assert_array_equal(got[0].obs, np.zeros(1, np.float32))
    assert got[0].reward == 0.0 and not got[0].terminated and not got[0].truncated
    for ts, a in zip(got[1:], actions, strict=True):
        np.testing.assert_array_equal(ts.obs, np.zeros(1, np.float32))
        assert bool(ts.terminated) and not bool(ts.truncated)
        assert float(ts.reward) in (0.0, 1.0)
        if a == 0:
            assert float(ts.reward) == 0.0  # p = 0 never pays
        if a in (1, 4):
            assert float(ts.reward) == 1.0  # p = 1 always pays


def test_bandit_empirical_frequencies_match_probs():
    probs = np.array([0.05, 0.25, 0.5, 0.75, 0.95, 0.0, 1.0, 0.333, 0.6, 0.1], np.float32)
    env = BernoulliBandit(len(probs))
    params = BanditParams(jnp.asarray(probs))
    n = 20_000

    @jax.jit
    def pulls(key):
        keys = jax.random.split(key, (n, len(probs)))
        arms = jnp.arange(len(probs))

        def one(k, a):
            state, _ = env.reset(k, params)
            return env.step(k, state, a, params)[1].reward

        return jax.vmap(jax.vmap(one, in_axes=(0, 0)), in_axes=(0, None))(keys, arms)

    rewards = np.asarray(pulls(jax.random.key(0)))
    freq = rewards.mean(axis=0)
    tol = 5 * np.sqrt(probs * (1 - probs) / n) + 1e-9
    np.testing.assert_array_less(np.abs(freq - probs), tol + 1e-12)


# --------------------------------------------------------------------------------------------
# Tabular MDP.
# --------------------------------------------------------------------------------------------


def _one_mdp(seed=0):
    """A task drawn as in RL² (NumPy, to avoid compiling a Dirichlet sampler here)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(10), size=(10, 5)).astype(np.float32)
    R = (1.0 + rng.standard_normal((10, 5))).astype(np.float32)
    return MDPParams(jnp.asarray(P), jnp.asarray(R))


def test_mdp_deterministic_parts_match_reference():
    env, params = TabularMDP(10, 5, 10), _one_mdp()
    ref = NumpyTabularMDP(10, 10)
    rng = np.random.default_rng(1)
    step, reset = env.step, env.reset
    key = jax.random.key(3)
    for _episode in range(3):
        key, k = jax.random.split(key)
        state, ts = reset(k, params)
        np.testing.assert_array_equal(ts.obs, ref.reset())
        assert float(ts.reward) == 0.0 and not ts.terminated and not ts.truncated
        for t in range(1, 11):
            key, k = jax.random.split(key)
            state, ts = step(k, state, jnp.int32(rng.integers(0, 5)), params)
            obs = np.asarray(ts.obs)
            # One-hot observation of the sampled next state.
            assert obs.shape == (10,) and obs.dtype == np.float32
            assert set(np.unique(obs)) <= {0.0, 1.0} and obs.sum() == 1.0
            s_next = int(obs.argmax())
            assert int(state.s) == s_next and int(state.t) == t
            ref_obs, ref_term, ref_trunc = ref.step(s_next)
            np.testing.assert_array_equal(obs, ref_obs)
            assert bool(ts.terminated) == ref_term
            assert bool(ts.truncated) == ref_trunc == (t == 10)
            assert np.isfinite(float(ts.reward))


def test_mdp_empirical_transitions_and_rewards():
    """Over many vmapped steps from every (s, a): s' ~ P(.|s,a) and r - R(s,a) ~ N(0, 1)."""
    env, params = TabularMDP(10, 5, 10), _one_mdp(seed=7)
    n = 4_000

    @jax.jit
    def sample_all(key):
        keys = jax.random.split(key, (n, 10, 5))

        def one(k, s, a):
            _, ts = env.step(k, MDPState(s, jnp.int32(0)), a, params)
            return ts.obs.argmax(), ts.reward - params.mean_rewards[s, a]

        per_a = jax.vmap(one, in_axes=(0, None, 0))
        per_sa = jax.vmap(per_a, in_axes=(0, 0, None))
        return jax.vmap(per_sa, in_axes=(0, None, None))(keys, jnp.arange(10), jnp.arange(5))

    s_next, noise = jax.device_get(sample_all(jax.random.key(11)))  # [n, S, A]
    P = np.asarray(params.transitions)
    freq = (s_next[..., None] == np.arange(10)).mean(axis=0)  # [S, A, S']
    tol = 5 * np.sqrt(P * (1 - P) / n) + 2.0 / n
    np.testing.assert_array_less(np.abs(freq - P), tol)
    # Reward noise: zero mean and unit variance for every (s, a), and overall.
    assert np.all(np.abs(noise.mean(axis=0)) < 5 / np.sqrt(n))
    assert np.all(np.abs(noise.std(axis=0) - 1.0) < 5 / np.sqrt(2 * n))
    assert abs(noise.mean()) < 5 / np.sqrt(noise.size)
    assert abs(noise.std() - 1.0) < 0.01


def test_mdp_uses_the_task_tables():
    """With a deterministic transition table the visited states follow it; rewards centre on R."""
    S, A = 4, 3
    env = TabularMDP(S, A, 10)
    nxt = np.array([[1, 2, 3], [2, 3, 0], [3, 0, 1], [0, 1, 2]])
    P = np.eye(S, dtype=np.float32)[nxt]  # [S, A, S], deterministic
    R = np.arange(S * A, dtype=np.float32).reshape(S, A) * 10.0
    params = MDPParams(jnp.asarray(P), jnp.asarray(R))
    actions = np.random.default_rng(2).integers(0, A, 10)
    got = _run_jax(env, params, actions)
    s = 0
    for ts, a in zip(got[1:], actions, strict=True):
        expected = nxt[s, a]
        assert int(np.asarray(ts.obs).argmax()) == expected
        # Rewards are R(s,a) + N(0,1): rows of R are 10 apart, so |noise| < 5 identifies R(s,a).
        assert abs(float(ts.reward) - R[s, a]) < 5.0
        s = expected


def test_the_authors_point_robot_starts_anywhere_in_the_square_each_episode():
    from quickstudy import tasks
    from quickstudy.tasks.trial import Trial

    dist = tasks.make("point-robot-random-start")
    origin = tasks.make("point-robot")
    goal = jax.tree.map(lambda x: x[0], dist.train_set)
    np.testing.assert_array_equal(goal.goal, jax.tree.map(lambda x: x[0], origin.train_set).goal)
    keys = jax.random.split(jax.random.key(7), 500)
    starts = jax.vmap(lambda k: dist.env.reset(k, goal)[1].obs)(keys)
    assert float(jnp.abs(starts).max()) <= 1.0 and float(jnp.abs(starts).min()) >= 0.0
    assert float(starts.std(0).min()) > 0.5  # U[-1, 1]: sd 0.58
    assert float(jnp.abs(origin.env.reset(jax.random.key(7), goal)[1].obs).max()) == 0.0
    # in a trial, every episode starts afresh at a new random point
    trial = Trial(dist.env, 2)
    state, ts = trial.reset(jax.random.key(7), goal)
    first = ts.obs[:2]
    for t in range(20):
        state, ts = trial.step(jax.random.fold_in(jax.random.key(7), t), state, jnp.zeros(2), goal)
    assert bool(ts.info["episode_done"]) and not np.allclose(ts.obs[:2], first)
