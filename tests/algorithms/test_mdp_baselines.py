import functools

import numpy as np
import pytest

from quickstudy.algorithms import mdp_baselines as mb
from quickstudy.envs.tabular_mdp import MDPParams
from quickstudy.tasks.registry import make


def _rng(seed=0):
    return np.random.default_rng(seed)


def _tasks(num, seed=0):
    rng = _rng(seed)
    p = rng.dirichlet(np.ones(10), size=(num, 10, 5))
    r = 1.0 + rng.standard_normal((num, 10, 5))
    return MDPParams(p, r)


def test_posterior_update_is_the_conjugate_one():
    prior = mb.Prior(alpha0=1.0, mu0=0.0, tau0=1.0, tau=1.0)
    post = mb.init_posterior(1, 3, 2, prior)
    for r in (2.0, 4.0):
        mb.update_posterior(
            post, np.array([1]), np.array([0]), np.array([r]), np.array([2]), True, prior
        )
    # Gaussian with known precision: mean (0*1 + 2 + 4) / 3, precision 3.
    assert post.mu[0, 1, 0] == pytest.approx(2.0)
    assert post.tau[0, 1, 0] == 3.0
    assert post.visits[0, 1, 0] == 2.0
    np.testing.assert_array_equal(post.alpha[0, 1, 0], [1.0, 1.0, 3.0])
    # The last step of an episode does not count its (reset) next state.
    mb.update_posterior(
        post, np.array([1]), np.array([0]), np.array([0.0]), np.array([0]), False, prior
    )
    np.testing.assert_array_equal(post.alpha[0, 1, 0], [1.0, 1.0, 3.0])
    assert post.visits[0, 1, 0] == 3.0


def test_backward_induction_matches_a_loop_by_hand():
    rng = _rng(1)
    r = rng.standard_normal((2, 3, 2))
    p = rng.dirichlet(np.ones(3), size=(2, 3, 2))
    q = mb.backward_induction(r, p, 4)
    for n in range(2):
        v = np.zeros(3)
        for h in range(3, -1, -1):
            expected = np.array([[r[n, s, a] + p[n, s, a] @ v for a in range(2)] for s in range(3)])
            np.testing.assert_allclose(q[h, n], expected)
            v = expected.max(axis=1)


def _best_in_ball_by_search(p_hat, radius, v, steps=200):
    """Maximises p @ v over the L1 ball by linear programming on a tiny grid (3 states)."""
    best = -np.inf
    grid = np.linspace(0.0, 1.0, steps + 1)
    for x in grid:
        for y in grid:
            z = 1.0 - x - y
            if z < -1e-12:
                continue
            p = np.array([x, y, max(z, 0.0)])
            if np.abs(p - p_hat).sum() <= radius + 1e-9:
                best = max(best, p @ v)
    return best


@pytest.mark.parametrize("radius", [0.0, 0.1, 0.5, 1.2, 3.0])
def test_optimistic_transition_solves_the_l1_ball_problem(radius):
    p_hat = np.array([0.5, 0.3, 0.2])
    v = np.array([1.0, 3.0, 2.0])
    p = mb.optimistic_transition(p_hat[None, None, None], np.full((1, 1, 1), radius), v[None])[
        0, 0, 0
    ]
    assert p.sum() == pytest.approx(1.0)
    assert np.all(p >= -1e-12)
    assert np.abs(p - p_hat).sum() <= radius + 1e-9
    assert p @ v == pytest.approx(_best_in_ball_by_search(p_hat, radius, v), abs=2e-2)


def test_act_breaks_ties_at_random_and_explores_with_epsilon():
    q = np.tile(np.array([1.0, 2.0, 2.0, 0.0]), (4000, 1))
    a = mb.act(_rng(), q, 0.0)
    assert set(np.unique(a)) == {1, 2}
    assert abs((a == 1).mean() - 0.5) < 0.05
    a = mb.act(_rng(), q, 1.0)
    np.testing.assert_allclose(np.bincount(a, minlength=4) / 4000, 0.25, atol=0.03)


def test_play_matches_the_environment_statistics():
    # Random play: each step's expected reward is the mean of R(s, .) under the visited states.
    tasks = _tasks(2000)
    returns = mb.play(_rng(), tasks, 10, mb.plan_mean, 1.0, 3)
    assert returns.shape == (2000, 3)
    assert returns.mean() / 10 == pytest.approx(1.0, abs=0.05)
    # A fixed MDP with one absorbing rewarding action: greedy finds it in the second episode.
    p = np.zeros((1, 10, 5, 10))
    p[..., 0] = 1.0
    r = np.zeros((1, 10, 5))
    r[0, 0, 3] = 5.0
    rets = mb.play(_rng(), MDPParams(p, r), 10, mb.plan_mean, 0.0, 6)
    assert rets[0, -1] == pytest.approx(50.0, abs=4 * np.sqrt(10))


def test_play_is_reproducible():
    tasks = _tasks(8)
    a = mb.play(_rng(3), tasks, 10, mb.plan_psrl, 0.0, 4)
    b = mb.play(_rng(3), tasks, 10, mb.plan_psrl, 0.0, 4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("name", "hyper", "paper"),
    [
        ("random", {}, 100.1),
        ("greedy", {}, 134.8),
        ("psrl", {}, 138.1),
        ("opsrl", {}, 144.1),
    ],
)
def test_players_reach_their_published_level_on_n10(name, hyper, paper):
    # 500 held-out MDPs of mdp-s10-a5-n10 against the RL² paper's table (untuned algorithms).
    tasks = make("mdp-s10-a5-n10").test_tasks(500)
    plan, eps, prior = mb.make_player(name, **hyper)
    totals = mb.play(_rng(), tasks, 10, plan, eps, 10, prior).sum(1)
    se = totals.std(ddof=1) / np.sqrt(len(totals))
    assert abs(totals.mean() - paper) < max(3 * se, 0.03 * paper)


def test_make_player_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid"):
        mb.make_player("q-learning")


def test_myopic_players_per_state_versus_pooled_over_states():
    # Two alternating states whose best actions differ: +3 for action 0 in state 0 and action 1
    # in state 1, -3 for the other of the two, -1 for the rest.
    p = np.zeros((200, 10, 5, 10))
    p[:, 0, :, 1] = 1.0
    p[:, 1:, :, 0] = 1.0
    r = np.full((200, 10, 5), -1.0)
    r[:, 0, :2] = [3.0, -3.0]
    r[:, 1, :2] = [-3.0, 3.0]
    tasks = MDPParams(p, r)
    prior = mb.Prior(alpha0=1.0, mu0=1.0, tau0=1.0, tau=1.0)
    myopic = mb.play(_rng(), tasks, 10, mb.plan_myopic, 0.0, 6, prior, every_step=True)
    pooled_plan = functools.partial(mb.plan_pooled_myopic, prior=prior)
    pooled = mb.play(_rng(), tasks, 10, pooled_plan, 0.0, 6, prior, every_step=True)
    assert myopic[:, -1].mean() == pytest.approx(30.0, abs=1.0)  # right action in both states
    assert pooled[:, -1].mean() < 5.0  # one action value for both states: at best +3 half the time
    # Pooled means by hand: each action's rewards from all states in one conjugate posterior.
    post = mb.init_posterior(1, 10, 5, prior)
    mb.update_posterior(
        post, np.array([0]), np.array([0]), np.array([3.0]), np.array([1]), True, prior
    )
    mb.update_posterior(
        post, np.array([1]), np.array([0]), np.array([-1.0]), np.array([0]), True, prior
    )
    q = mb.plan_pooled_myopic(_rng(), post, 1, 10, prior)
    np.testing.assert_allclose(q[0, 0, 4, 0], (1.0 + 3.0 - 1.0) / 3.0)
    np.testing.assert_allclose(q[3, 0, 0, 1], 1.0)
