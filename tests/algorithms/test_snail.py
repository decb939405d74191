"""SNAIL through RL²'s trial machinery: both collectors, resume, learning a small bandit."""

import dataclasses

import jax
import numpy as np
import pytest
from support import leaves, train_on_both_collectors, two_armed_bandit

from quickstudy import runner, tasks
from quickstudy.algorithms import registry
from quickstudy.algorithms.rl2 import RL2_PPO
from quickstudy.algorithms.snail import SNAILConfig, make_snail
from quickstudy.errors import ConfigError
from quickstudy.runner import meta_test, train_program

TINY = {
    "total_steps": 2 * 8 * 10,
    "num_envs": 8,
    "filters": 8,
    "key_size": 4,
    "value_size": 4,
    "blocks": ("tc", "attention"),
    "ppo": {"num_minibatches": 2},
}
SETTINGS = runner.RunSettings(
    seed=3, chunk_updates=2, checkpoint_every=1, eval_tasks=4, eval_every=1
)


def _config(task="bandit-k5-n10", **overrides):
    return registry.get("snail").config(task, overrides={**TINY, **overrides})


def test_trains_deterministically_and_meta_tests_any_number_of_episodes():
    algo = make_snail(_config(), tasks.make("bandit-k5-n10"))
    assert algo.parts["network"].max_len == 10
    train = jax.jit(train_program(algo))
    s1, m1 = train(jax.random.key(3))
    s2, m2 = train(jax.random.key(3))
    for a, b in zip(leaves((s1.params, m1)), leaves((s2.params, m2)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(np.asarray(m1["value_loss"])).all()
    res = meta_test(algo, s1.params, points=3, num_tasks=5)
    assert res.values.shape == (5, 3)


def test_truncated_rollouts_carry_the_cache_across_the_cut():
    """Half-trial rollouts: the second half's stored carry is the cache of the first."""
    algo = make_snail(
        _config("mdp-s10-a5-n10", episodes=2, rollout_len=10), tasks.make("mdp-s10-a5-n10")
    )
    state = jax.jit(algo.init)(jax.random.key(0))
    update = jax.jit(algo.update)
    state, _ = update(state)
    np.testing.assert_array_equal(state.rollout.carry["torso"]["pos"], 10)
    state, metrics = update(state)
    np.testing.assert_array_equal(state.rollout.carry["torso"]["pos"], 20)
    assert np.isfinite(float(metrics["policy_loss"]))


def test_host_and_jax_collectors_train_the_same_snail():
    out = train_on_both_collectors("snail", lambda task: _config(task, episodes=2), points=2)
    (s_jax, r_jax), (s_host, r_host) = out["point-robot"], out["point-robot-numpy"]
    for a, b in zip(leaves(s_jax.params), leaves(s_host.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r_jax.values, r_host.values, rtol=1e-4, atol=1e-4)


def test_an_interrupted_run_resumes_bit_exactly(tmp_path):
    config = _config(total_steps=3 * 8 * 10)
    full = runner.train(
        runner.create_run("snail", "bandit-k5-n10", config, SETTINGS, tmp_path / "a")
    )
    part = runner.create_run("snail", "bandit-k5-n10", config, SETTINGS, tmp_path / "b")
    runner.train(part, stop_after_updates=2)
    resumed = runner.train(runner.open_run(tmp_path / "b"))
    for a, b in zip(leaves(full), leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("a", "b")]
    assert rows[0] == rows[1]


def test_learns_a_two_armed_bandit():
    """SNAIL beats random play on 2-armed bandits of 10 pulls (random: 5.0, best arm: 6.67)."""
    cfg = SNAILConfig(
        total_steps=100_000,
        num_envs=64,
        filters=16,
        key_size=16,
        value_size=16,
        ppo=dataclasses.replace(RL2_PPO, learning_rate=3e-3),
    )
    algo = make_snail(cfg, two_armed_bandit())
    state, _ = jax.jit(train_program(algo))(jax.random.key(0))
    total = np.asarray(meta_test(algo, state.params, num_tasks=1000, seed=1).values.sum(1))
    assert total.mean() - 3 * total.std(ddof=1) / np.sqrt(1000) > 5.3, total.mean()


def test_reward_prediction_trains_a_head_on_the_policy_features():
    """RL²'s auxiliary loss on SNAIL trains a reward head that uses the trial's memory."""
    cfg = _config(
        total_steps=150 * 8 * 10,
        reward_coef=0.5,
        head_hidden_size=16,
        ppo={"num_minibatches": 2, "learning_rate": 1e-2},
    )
    algo = make_snail(cfg, tasks.make("bandit-k5-n10"))
    network = algo.parts["network"]
    assert network.reward_head and network.head_hidden_size == 16
    state, metrics = jax.jit(train_program(algo))(jax.random.key(0))
    _, out = network.apply(
        state.params, network.initial_state(2), np.zeros((3, 2, 8)), np.ones((3, 2), bool)
    )
    assert out.aux["reward"].shape == (3, 2, 5)
    # Below 0.25, the error of the best constant (the mean reward of arms with p ~ U(0, 1)):
    # the head reads what the trial so far says about each arm.
    first, last = metrics["reward_loss"][:10].mean(), metrics["reward_loss"][-10:].mean()
    assert last < 0.245 and last < first - 0.03, (first, last)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"blocks": ()}, "blocks"),
        ({"blocks": ("tc", "lstm")}, "blocks"),
        ({"filters": 0}, "filters"),
        ({"reward_coef": -1.0}, "reward_coef"),
        ({"head_hidden_size": -1}, "head_hidden_size"),
        ({"num_envs": 7}, "num_minibatches"),
        ({"learner": "trpo"}, "separate critic"),
    ],
)
def test_configs_that_cannot_run_are_refused_by_name(overrides, match):
    with pytest.raises(ConfigError, match=match):
        registry.build("snail", "bandit-k5-n10", _config(**overrides))
