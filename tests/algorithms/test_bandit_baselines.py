import functools

import numpy as np
import pytest

from quickstudy.algorithms import bandit_baselines as bb


def _gittins_by_bisection(gamma, s, f, depth, iters=60):
    """Index of one posterior by bisection on λ, one scalar backward induction per λ."""

    def gap(lam):
        retire = lam / (1 - gamma)
        m_root = s + f
        # Values on diagonals below the root: successes i in 0..d after d more pulls.
        w = None
        for d in range(depth - m_root, -1, -1):
            i = np.arange(d + 1)
            p = (1 + s + i) / (2 + m_root + d)
            if w is None:
                w = np.maximum(lam, p) / (1 - gamma)
                continue
            cont = p * (1 + gamma * w[1:]) + (1 - p) * gamma * w[:-1]
            if d == 0:
                return cont[0] - retire
            w = np.maximum(retire, cont)

    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


@functools.cache
def _table(gamma):
    return bb.gittins_table(gamma, max_pulls=40, depth=400, grid=512)


@pytest.mark.parametrize(("gamma", "published"), [(0.9, 0.7029), (0.99, 0.8699)])
def test_gittins_matches_published_index_of_uniform_prior(gamma, published):
    # Gittins & Jones / Gittins (1979) tables: index of Beta(1, 1) at these discounts.
    assert _table(gamma)[0, 0] == pytest.approx(published, abs=2e-4)


@pytest.mark.parametrize(("s", "f"), [(0, 0), (3, 1), (0, 5), (10, 12), (25, 15)])
def test_gittins_grid_interpolation_matches_bisection(s, f):
    exact = _gittins_by_bisection(0.95, s, f, depth=400)
    table = bb.gittins_table(0.95, max_pulls=40, depth=400, grid=512)
    assert table[s, f] == pytest.approx(exact, abs=2e-4)


def test_gittins_index_exceeds_mean_and_is_monotone():
    table = _table(0.99)
    s, f = np.meshgrid(np.arange(41), np.arange(41), indexing="ij")
    valid = s + f <= 40
    mean = (1 + s) / (2 + s + f)
    assert np.all(table[valid] >= mean[valid] - 1e-9)
    assert np.all(np.isnan(table[~valid]))
    # More successes raise the index, more failures lower it.
    assert np.all(np.diff(table[:20, :20], axis=0) > 0)
    assert np.all(np.diff(table[:20, :20], axis=1) < 0)


def test_gittins_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        bb.gittins_table(1.0, 10)
    with pytest.raises(ValueError, match="depth"):
        bb.gittins_table(0.9, 10, depth=5)


T = 7


def _rng(seed=0):
    return np.random.default_rng(seed)


def _one(choose, s, f, t=T, **kw):
    """Applies a batched rule to a single trial."""
    return int(choose(_rng(), np.asarray([s], float), np.asarray([f], float), t, **kw)[0])


def test_greedy_takes_the_first_of_tied_best_means():
    assert _one(bb.choose_greedy, [0, 3, 3, 0], [0, 1, 1, 0]) == 1


def test_epsilon_zero_and_ucb_c_zero_are_greedy():
    s, f = [2, 5, 1], [0, 4, 3]
    assert _one(bb.choose_greedy, s, f) == 0
    assert _one(bb.choose_epsilon_greedy, s, f, epsilon=0.0) == 0
    assert _one(bb.choose_ucb1, s, f, c=0.0) == 0


def test_ucb1_bonus_prefers_the_less_pulled_arm():
    # Means 0.6 (8 pulls + prior) vs 0.5 (no pulls): c = 1 explores, c = 0 exploits.
    assert _one(bb.choose_ucb1, [5, 0], [3, 0], t=8, c=1.0) == 1
    assert _one(bb.choose_ucb1, [5, 0], [3, 0], t=8, c=0.0) == 0


def _frequencies(choose, s, f, n=4000):
    s = np.tile(np.asarray(s, float), (n, 1))
    f = np.tile(np.asarray(f, float), (n, 1))
    return np.bincount(choose(_rng(), s, f, T), minlength=s.shape[1]) / n


def test_epsilon_one_is_uniform():
    freq = _frequencies(
        functools.partial(bb.choose_epsilon_greedy, epsilon=1.0), [9, 0, 0, 0], [0] * 4
    )
    np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_thompson_matches_posterior_probability_of_being_best():
    # Beta(2, 1) vs Beta(1, 1): P(X > Y) = 2/3.
    assert _frequencies(bb.choose_thompson, [1, 0], [0, 0])[0] == pytest.approx(2 / 3, abs=0.03)


def test_optimistic_thompson_with_one_sample_is_thompson():
    s = np.tile([3.0, 1.0, 0.0], (500, 1))
    f = np.tile([2.0, 0.0, 0.0], (500, 1))
    ts = bb.choose_thompson(_rng(), s, f, T)
    ots = bb.choose_optimistic_thompson(_rng(), s, f, T, num_samples=1)
    np.testing.assert_array_equal(ts, ots)


def test_optimistic_thompson_with_many_samples_plays_the_posterior_mode():
    # Modes s / (s + f): 0.8, 0.5, 0.2 -- the most probable draw sits near the mode.
    freq = _frequencies(
        functools.partial(bb.choose_optimistic_thompson, num_samples=200),
        [40, 25, 10],
        [10, 25, 40],
    )
    ts = _frequencies(bb.choose_thompson, [40, 25, 10], [10, 25, 40])
    assert freq[0] > 0.99
    assert freq[0] > ts[0]


def test_play_counts_and_rewards_are_consistent():
    result = bb.play(_rng(), np.array([[0.0, 1.0, 0.0]]), bb.choose_greedy, 20)
    # Greedy tries arm 0 (fails), then arm 1 (pays), then sticks with arm 1.
    assert result.actions[0].tolist()[:3] == [0, 1, 1]
    assert result.rewards[0].tolist() == [0.0] + [1.0] * 19


def test_play_is_reproducible_and_batched():
    probs = _rng(1).random((16, 5))
    a = bb.play(_rng(), probs, bb.choose_thompson, 30)
    b = bb.play(_rng(), probs, bb.choose_thompson, 30)
    assert a.rewards.shape == (16, 30)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    # Rewards are Bernoulli draws of the chosen arms' probabilities.
    chosen = np.take_along_axis(probs, a.actions, axis=1)
    assert np.all(a.rewards[chosen == 0.0] == 0.0)


def test_make_choose_binds_hyperparameters_and_rejects_unknown_names():
    assert _one(bb.make_choose("gittins", 10, gamma=0.9), [0, 2], [0, 0]) == 1
    with pytest.raises(ValueError, match="valid"):
        bb.make_choose("softmax", 10)


def test_classical_players_reach_their_published_level_on_k5_n100():
    # 400 trials of bandit-k5-n100; the RL² paper's table: Random 49.9, Greedy 74.8, TS 74.7.
    probs = _rng(3).random((400, 5))
    for name, paper in (("random", 49.9), ("greedy", 74.8), ("thompson", 74.7)):
        totals = bb.play(_rng(), probs, bb.make_choose(name, 100), 100).rewards.sum(1)
        se = totals.std(ddof=1) / np.sqrt(len(totals))
        assert abs(totals.mean() - paper) < 3.5 * se + 0.02 * paper, name
