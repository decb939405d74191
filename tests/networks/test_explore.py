import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.algorithms import registry
from quickstudy.algorithms.rl2 import without_exploration_rewards
from quickstudy.errors import ConfigError
from quickstudy.networks.explore import episode_index
from quickstudy.types import Transition


def test_episode_index_counts_dones_within_each_trial():
    start = jnp.asarray([[0, 1], [0, 0], [1, 0], [0, 0], [0, 1]], bool)
    done = jnp.asarray([[1, 0], [0, 1], [0, 0], [1, 1], [0, 0]], bool)
    ep = episode_index(jnp.asarray([2, 7], jnp.int32), start, done)
    np.testing.assert_array_equal(ep, [[3, 0], [3, 1], [0, 1], [1, 2], [1, 0]])


def test_the_exploration_head_acts_first_then_the_task_head_over_one_memory():
    """bandit-k5-n10: each pull is an episode, so the first 3 steps of a trial explore."""
    cfg = registry.get("rl2").config("bandit-k5-n10", overrides={"explore_episodes": 3})
    algo = registry.build("rl2", "bandit-k5-n10", cfg)
    policy, env = algo.parts["policy"], algo.parts["env"]
    params = policy.init(jax.random.key(0))
    task = algo.tasks.sample_one(jax.random.key(1))
    state, ts = env.reset(jax.random.key(2), task)
    obs = [ts.obs]
    for t in range(9):
        state, ts = env.step(jax.random.key(3 + t), state, t % 5, task)
        obs.append(ts.obs)
    obs = jnp.stack(obs)[:, None]  # [T=10, B=1, D]
    start = jnp.zeros((10, 1), bool).at[0].set(True)
    _, full = policy.apply(params, policy.init_carry(1), obs, start)
    np.testing.assert_array_equal(full.aux["exploring"][:, 0], [1, 1, 1] + [0] * 7)
    network = algo.parts["network"]
    _, inner = network.apply(params, network.initial_state(1), obs, start)
    np.testing.assert_array_equal(full.dist[:3], inner.aux["explore_dist"][:3])
    np.testing.assert_array_equal(full.dist[3:], inner.dist[3:])
    assert np.abs(inner.aux["explore_dist"] - inner.dist).max() > 0  # two different heads
    carry, steps = policy.init_carry(1), []
    for t in range(10):
        carry, out = policy.apply(params, carry, obs[t : t + 1], start[t : t + 1])
        steps.append(out.dist)
    np.testing.assert_allclose(jnp.concatenate(steps), full.dist, atol=1e-6)


def test_the_learner_sees_no_reward_in_the_exploration_episodes():
    reward = jnp.arange(1.0, 7.0).reshape(3, 2)
    episode = jnp.asarray([[0, 1], [1, 1], [2, 0]])
    zeros = jnp.zeros((3, 2))
    traj = Transition(
        zeros, zeros, reward, zeros, zeros, zeros, zeros, zeros, zeros, zeros, {"episode": episode}
    )
    out = without_exploration_rewards(traj, 2)
    np.testing.assert_array_equal(out.reward, [[0, 0], [0, 0], [5, 0]])


def test_a_two_phase_policy_trains_on_both_collectors_and_refuses_too_many_episodes():
    for name in ("rl2", "snail"):
        over = {"explore_episodes": 1, "num_envs": 8, "total_steps": 8 * 60}
        if name == "snail":
            over.update(filters=8, key_size=4, value_size=4, blocks=("tc", "attention"))
        for task in ("point-robot", "point-robot-numpy"):
            algo = registry.build(name, task, registry.get(name).config(task, overrides=over))
            init = jax.jit(algo.init) if algo.jittable else algo.init
            update = jax.jit(algo.update) if algo.jittable else algo.update
            state, metrics = update(init(jax.random.key(0)))
            assert np.isfinite(float(metrics["policy_loss"])), (name, task)
    assert tasks.make("point-robot").episodes == 3
    bad = registry.get("rl2").config("point-robot", overrides={"explore_episodes": 3})
    with pytest.raises(ConfigError, match="explore_episodes"):
        registry.build("rl2", "point-robot", bad)
