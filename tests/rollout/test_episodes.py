import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.navigation import GoalParams, PointNavigation
from quickstudy.rollout.episodes import sample_episodes


def _straight_to_goal(goal):
    def act(key, obs):
        a = jnp.clip(goal - obs, -0.05, 0.05)
        return a, a

    return act


def test_episodes_are_padded_after_termination():
    env = PointNavigation(horizon=100, max_action=0.1, terminate_at_goal=True)
    goal = jnp.array([0.3, -0.2], jnp.float32)
    eps = sample_episodes(jax.random.key(0), env, GoalParams(goal), _straight_to_goal(goal), 3)
    assert eps.obs.shape == (3, 100, 2) and eps.rewards.shape == (3, 100)
    # NumPy reference: 0.05 per step reaches x = 0.3 after 6 steps, y = -0.2 after 4.
    pos, rewards = np.zeros(2), []
    for _ in range(100):
        pos = pos + np.clip(np.asarray(goal) - pos, -0.05, 0.05)
        d = pos - np.asarray(goal)
        rewards.append(-np.sqrt((d**2).sum()))
        if np.all(np.abs(d) < 0.01):
            break
    n = len(rewards)
    assert n == 6
    np.testing.assert_array_equal(eps.valid.sum(1), [n, n, n])
    np.testing.assert_allclose(eps.rewards[0, :n], rewards, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(eps.rewards[:, n:]).max()) == 0.0
    np.testing.assert_allclose(eps.returns, sum(rewards), rtol=1e-5)
    assert float(eps.success[0, n - 1]) == 1.0 and float(eps.success.sum()) == 3.0
    np.testing.assert_allclose(eps.obs[0, 0], [0.0, 0.0])


def test_episodes_are_reproducible_and_vmap_over_tasks():
    env = PointNavigation(horizon=20, max_action=0.1)

    def act(key, obs):
        a = jax.random.normal(key, obs.shape)
        return a, a

    goals = GoalParams(jnp.array([[0.1, 0.1], [-0.4, 0.2]], jnp.float32))
    run = jax.jit(jax.vmap(lambda k, t: sample_episodes(k, env, t, act, 5)))
    keys = jax.random.split(jax.random.key(3), 2)
    a, b = run(keys, goals), run(keys, goals)
    assert a.rewards.shape == (2, 5, 20)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert bool(a.valid.all())  # no termination without terminate_at_goal
