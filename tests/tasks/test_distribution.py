"""Task distributions and the registry: splits, sampling ranges, descriptions, bad names."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.envs.bandit import BanditParams
from quickstudy.envs.navigation import GoalParams
from quickstudy.envs.tabular_mdp import MDPParams
from quickstudy.errors import QuickstudyError, UnknownNameError

NAMES = tasks.names("rl")
N = 4  # one batch size everywhere, so each sampler compiles once per session

EXPECTED_NAMES = (
    [f"bandit-k{k}-n{n}" for k in (5, 10, 50) for n in (10, 100, 500)]
    + [f"mdp-s10-a5-n{n}" for n in (10, 25, 50, 75, 100)]
    + ["nav2d", "point-robot", "sparse-point-robot"]
)
FINITE = {"point-robot": (80, 20), "sparse-point-robot": (80, 20)}


def _np(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _many(dist, draws, seed=0):
    """``draws`` batches of ``N`` tasks, concatenated (leaves ``[draws * N, ...]``)."""
    keys = jax.random.split(jax.random.key(seed), draws)
    batches = [_np(dist.sample(k, N)) for k in keys]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *batches)


def test_registry_names():
    # The RL², MAML and PEARL point tasks, in registration order (more may be registered later).
    assert [n for n in NAMES if n in EXPECTED_NAMES] == EXPECTED_NAMES
    assert len(set(NAMES)) == len(NAMES)
    for name in NAMES:
        dist = tasks.make(name)
        assert dist.name == name
        assert tasks.make(name) is dist  # built once


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        tasks.register("nav2d", lambda: tasks.make("nav2d"))


@pytest.mark.parametrize("name", NAMES)
def test_describe(name):
    dist = tasks.make(name)
    d = dist.describe()
    assert set(d) == {"name", "description", "reward", "episodes_per_trial", "split", "num_test"}
    assert d["name"] == name
    assert d["split"] == ("finite" if dist.finite else "continuous")
    assert dist.finite == (name in FINITE) or name not in EXPECTED_NAMES
    assert d["episodes_per_trial"] == dist.episodes and dist.episodes >= 1
    assert isinstance(d["description"], str) and d["description"]
    assert isinstance(d["reward"], str) and d["reward"]
    if dist.finite:
        assert d["num_test"] == jax.tree.leaves(dist.test_set)[0].shape[0]
    else:
        assert d["num_test"] == dist.num_test
    json.dumps(d)  # JSON-able


@pytest.mark.parametrize("name", NAMES)
def test_episodes_match_name(name):
    dist = tasks.make(name)
    if name.startswith(("bandit", "mdp")):
        assert dist.episodes == int(name.rsplit("-n", 1)[1])
    elif name == "nav2d":
        assert dist.episodes == 2


@pytest.mark.parametrize(
    "name", ["bandit-k5-n10", "mdp-s10-a5-n10", "nav2d", "point-robot", "sparse-point-robot"]
)
def test_test_tasks_identical_across_calls(name):
    dist = tasks.make(name)
    # Every new batch size compiles the MDP's Dirichlet sampler (seconds), so MDPs use N.
    n = N if name.startswith("mdp") else None
    a, b = _np(dist.test_tasks(n)), _np(dist.test_tasks(n))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    expected = N if n else (FINITE[name][1] if name in FINITE else dist.num_test)
    assert all(x.shape[0] == expected for x in jax.tree.leaves(a))
    if name in FINITE:  # fewer are a prefix of the fixed set
        few = _np(dist.test_tasks(3))
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y[:3]), few, a)


@pytest.mark.parametrize("name", list(FINITE))
def test_finite_split_sizes_and_disjoint(name):
    dist = tasks.make(name)
    num_train, num_test = FINITE[name]
    assert dist.finite
    train, test = _np(dist.train_set.goal), _np(dist.test_tasks().goal)
    assert train.shape == (num_train, 2) and test.shape == (num_test, 2)
    assert train.dtype == np.float32 and test.dtype == np.float32
    everything = np.concatenate([train, test])
    assert len(np.unique(everything, axis=0)) == num_train + num_test  # all distinct, disjoint
    # test_tasks(n) beyond the set cycles through it.
    cyc = _np(dist.test_tasks(num_test + 5).goal)
    np.testing.assert_array_equal(cyc[num_test:], test[:5])


def test_point_robot_goal_ranges():
    dist = tasks.make("point-robot")
    goals = np.concatenate([_np(dist.train_set.goal), _np(dist.test_set.goal)])
    assert np.all(np.abs(goals) <= 1.0)
    # U[-1, 1]^2 over 100 goals spreads over all four quadrants.
    assert len({(bool(x > 0), bool(y > 0)) for x, y in goals}) == 4


def test_sparse_point_robot_goals_on_unit_half_circle():
    dist = tasks.make("sparse-point-robot")
    goals = np.concatenate([_np(dist.train_set.goal), _np(dist.test_set.goal)])
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0, atol=1e-6)
    assert np.all(goals[:, 1] >= -1e-6)
    angles = np.sort(np.arctan2(np.clip(goals[:, 1], 0, None), goals[:, 0]))
    np.testing.assert_allclose(angles, np.linspace(0, np.pi, 100), atol=1e-6)
    # Shuffled before the split: the test goals are not one contiguous arc.
    test_angles = np.sort(np.arctan2(dist.test_set.goal[:, 1], dist.test_set.goal[:, 0]))
    assert np.ptp(test_angles) > np.pi / 2


@pytest.mark.parametrize("name", list(FINITE))
def test_finite_sample_returns_only_train_tasks(name):
    dist = tasks.make(name)
    train = {tuple(g) for g in _np(dist.train_set.goal)}
    test = {tuple(g) for g in _np(dist.test_set.goal)}
    drawn = _np(dist.sample(jax.random.key(0), 400))
    assert isinstance(drawn, GoalParams) and drawn.goal.shape == (400, 2)
    rows = {tuple(g) for g in drawn.goal}
    assert rows <= train and not rows & test
    assert len(rows) >= 70  # uniform over the 80: nearly all seen in 400 draws
    one = dist.sample_one(jax.random.key(3))
    assert one.goal.shape == (2,) and tuple(np.asarray(one.goal)) in train


@pytest.mark.parametrize("name", ["bandit-k5-n10", "bandit-k10-n100", "bandit-k50-n500"])
def test_bandit_samples(name):
    dist = tasks.make(name)
    k = int(name.split("-")[1][1:])
    drawn = _many(dist, 50)
    assert isinstance(drawn, BanditParams) and drawn.probs.shape == (50 * N, k)
    p = drawn.probs
    assert np.all((p >= 0) & (p <= 1))
    assert abs(p.mean() - 0.5) < 5 * np.sqrt(1 / 12 / p.size)
    assert abs(p.var() - 1 / 12) < 0.01
    assert len(np.unique(p)) > 0.99 * p.size  # i.i.d. continuous (float32 may collide)


def test_nav2d_samples():
    dist = tasks.make("nav2d")
    goals = _many(dist, 100).goal
    assert goals.shape == (100 * N, 2)
    assert np.all(np.abs(goals) <= 0.5)
    assert abs(goals.mean()) < 5 * np.sqrt(1 / 12 / goals.size)
    assert abs(goals.var() - 1 / 12) < 0.01


def test_mdp_samples():
    dist = tasks.make("mdp-s10-a5-n10")
    drawn = _many(dist, 50)  # 200 MDPs
    assert isinstance(drawn, MDPParams)
    P, R = drawn.transitions, drawn.mean_rewards
    assert P.shape == (50 * N, 10, 5, 10) and R.shape == (50 * N, 10, 5)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-5)
    # Dirichlet(1, ..., 1) over 10 states: each entry has mean 1/10, variance 9 / (100 * 11).
    assert abs(P.mean() - 0.1) < 1e-3
    assert abs(P.var() - 9 / 1100) < 5e-4
    # R(s, a) ~ N(1, 1): moments over 10,000 entries.
    assert abs(R.mean() - 1.0) < 5 / np.sqrt(R.size)
    assert abs(R.std() - 1.0) < 0.05
    assert abs(((R - R.mean()) ** 3).mean()) < 0.15  # symmetric


@pytest.mark.parametrize("name", ["bandit-k10-n100", "mdp-s10-a5-n10", "nav2d"])
def test_continuous_sampling_is_keyed(name):
    dist = tasks.make(name)
    assert not dist.finite
    a, b = _np(dist.sample(jax.random.key(5), N)), _np(dist.sample(jax.random.key(5), N))
    c = _np(dist.sample(jax.random.key(6), N))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True):
        assert not np.array_equal(x, y)
    # The held-out set is not what training draws from its usual keys.
    test = _np(dist.test_tasks(N))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(test), strict=True):
        assert not np.array_equal(x, y)


@pytest.mark.parametrize("name", ["point-robot", "nav2d"])
def test_sample_is_jittable(name):
    dist = tasks.make(name)
    key = jax.random.key(4)
    got = jax.jit(dist.sample, static_argnums=1)(key, N)
    jax.tree.map(np.testing.assert_array_equal, _np(got), _np(dist.sample(key, N)))


def test_unknown_name_error_lists_names_and_suggests():
    with pytest.raises(UnknownNameError) as info:
        tasks.make("bandit-k10-n1000")
    message = str(info.value)
    assert "bandit-k10-n1000" in message
    assert "Did you mean" in message and "bandit-k10-n100" in message
    assert all(name in message for name in NAMES)
    assert isinstance(info.value, QuickstudyError) and isinstance(info.value, KeyError)


def test_unknown_name_without_close_match():
    with pytest.raises(UnknownNameError) as info:
        tasks.make("zzzz")
    assert "Did you mean" not in str(info.value)
    assert "nav2d" in str(info.value)
