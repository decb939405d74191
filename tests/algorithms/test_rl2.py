import dataclasses

import jax
import numpy as np
import pytest
from support import nav2d_return_bound, two_armed_bandit

from quickstudy import tasks
from quickstudy.algorithms.rl2 import RL2_PPO, RL2Config, make_rl2
from quickstudy.errors import ConfigError
from quickstudy.learners.base import AuxLoss, sequence_batch
from quickstudy.learners.ppo import ppo_loss
from quickstudy.objectives.auxiliary import reward_prediction_loss
from quickstudy.runner import meta_test, train_program
from quickstudy.types import Transition

TINY = RL2Config(
    total_steps=2 * 8 * 10,
    num_envs=8,
    hidden_size=16,
    ppo=dataclasses.replace(RL2_PPO, num_minibatches=2),
)


def _tree_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_determinism_same_key_same_metrics():
    algo = make_rl2(TINY, tasks.make("bandit-k5-n10"))
    train = jax.jit(train_program(algo))
    s1, m1 = train(jax.random.key(3))
    s2, m2 = train(jax.random.key(3))
    assert _tree_equal(m1, m2) and _tree_equal(s1.params, s2.params)
    _, m3 = train(jax.random.key(4))
    assert not _tree_equal(m1, m3)
    # The meta-test's points are the episodes of its trials, whatever K training used.
    res = meta_test(algo, s1.params, points=3, num_tasks=5)
    assert res.values.shape == (5, 3) and res.extras["lengths"].sum() == 5 * 3


def test_vmap_over_seeds_matches_single_runs():
    algo = make_rl2(TINY, tasks.make("bandit-k5-n10"))
    keys = jax.random.split(jax.random.key(0), 2)
    states, metrics = jax.jit(jax.vmap(train_program(algo)))(keys)
    assert metrics["trial_return"].shape == (2, algo.num_updates)
    single, m0 = jax.jit(train_program(algo))(keys[0])
    np.testing.assert_allclose(metrics["trial_return"][0], m0["trial_return"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(states.params), jax.tree.leaves(single.params), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-5)


def test_rollout_alignment_and_meta_test_shapes_mdp():
    cfg = dataclasses.replace(TINY, episodes=2)
    algo = make_rl2(cfg, tasks.make("mdp-s10-a5-n10"))
    assert algo.derived["rollout_len"] == 20 and algo.default_points == 2
    state = jax.jit(algo.init)(jax.random.key(0))
    state, metrics = jax.jit(algo.update)(state)
    assert float(metrics["trials_completed"]) == cfg.num_envs  # one whole trial per env
    res = meta_test(algo, state.params, num_tasks=5, seed=1)
    assert res.values.shape == (5, 2) and res.axis == "episode" and res.metric == "return"
    np.testing.assert_array_equal(res.extras["lengths"], 10.0)
    assert res.success is None


def test_nav2d_continuous_actions_and_success():
    algo = make_rl2(TINY, tasks.make("nav2d"))
    state = jax.jit(algo.init)(jax.random.key(0))
    state, metrics = jax.jit(algo.update)(state)
    assert np.isfinite(float(metrics["policy_loss"]))
    res = meta_test(algo, state.params, num_tasks=3, seed=1)
    assert res.values.shape == res.success.shape == (3, 2)
    lengths = res.extras["lengths"]
    assert (lengths >= 1).all() and (lengths <= 100).all()
    bound = nav2d_return_bound(algo.tasks.test_tasks(3).goal)
    assert np.all(res.values <= bound[:, None] + 1e-4)


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"total_steps": 0}, "total_steps"),
        ({"num_envs": 2.5}, "num_envs"),
        ({"cell": "rnn"}, "cell"),
        ({"learner": "sgd"}, "learner"),
        ({"head_hidden_size": -1}, "head_hidden_size"),
        ({"reward_coef": float("nan")}, "reward_coef"),
        ({"ppo": {"num_minibatches": 3}}, "num_minibatches"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    kw = {k: dataclasses.replace(RL2_PPO, **v) if k == "ppo" else v for k, v in kw.items()}
    with pytest.raises(ConfigError, match=field):
        RL2Config(**kw)


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"ent_coef": float("nan")}, "ent_coef"),
        ({"gamma": 1.5}, "gamma"),
    ],
)
def test_bad_learner_value_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(RL2_PPO, **kw)


def test_clip_per_network_needs_a_separate_critic():
    clip = dataclasses.replace(RL2_PPO, clip_per_network=True)
    with pytest.raises(ConfigError, match="clip_per_network"):
        RL2Config(ppo=clip, separate_critic=False)
    assert RL2Config(ppo=clip).ppo.clip_per_network


def test_trpo_needs_a_separate_critic_and_no_auxiliary_loss():
    cfg = dataclasses.replace(TINY, learner="trpo", separate_critic=False)
    with pytest.raises(ConfigError, match="separate critic"):
        make_rl2(cfg, tasks.make("bandit-k5-n10"))
    cfg = dataclasses.replace(TINY, learner="trpo", reward_coef=1.0)
    with pytest.raises(ConfigError, match="reward_loss"):
        make_rl2(cfg, tasks.make("bandit-k5-n10"))


def test_learns_two_armed_bandit():
    """(f) RL² beats a random policy on a 2-armed bandit with 10 pulls per trial."""
    dist = two_armed_bandit()
    cfg = RL2Config(
        total_steps=150_000,
        num_envs=64,
        hidden_size=32,
        ppo=dataclasses.replace(RL2_PPO, learning_rate=3e-3),
    )
    algo = make_rl2(cfg, dist)
    state, _ = jax.jit(train_program(algo))(jax.random.key(0))
    total = np.asarray(meta_test(algo, state.params, num_tasks=1000, seed=1).values.sum(1))
    # random: 5.0 expected; the best arm: E[max(p1, p2)] * 10 = 6.67; a good learner is ~6.
    assert total.mean() - 3 * total.std(ddof=1) / np.sqrt(1000) > 5.3, total.mean()


def test_task_critic_feeds_the_task_to_the_value_head_only():
    cfg = dataclasses.replace(TINY, episodes=2, task_critic=True)
    algo = make_rl2(cfg, tasks.make("mdp-s10-a5-n10"))
    env, network = algo.parts["env"], algo.parts["network"]
    mdp = algo.tasks.sample_one(jax.random.key(0))
    policy_dim = env.env.observation_space(mdp).shape[0]
    assert env.observation_space(mdp).shape == (policy_dim + 10 * 5 * 10 + 10 * 5,)
    state = jax.jit(algo.init)(jax.random.key(0))
    state, metrics = jax.jit(algo.update)(state)
    assert np.isfinite(float(metrics["value_loss"]))
    _, ts = env.reset(jax.random.key(1), mdp)
    other = algo.tasks.sample_one(jax.random.key(2))
    _, ts_other = env.reset(jax.random.key(1), other)
    obs = np.stack([ts.obs, ts_other.obs])[None]  # [T=1, B=2, D]: same history, other task
    _, out = network.apply(state.params, network.initial_state(2), obs, np.ones((1, 2), bool))
    np.testing.assert_array_equal(out.dist[0, 0], out.dist[0, 1])
    assert abs(float(out.value[0, 0] - out.value[0, 1])) > 1e-6


def test_reward_loss_is_composed_into_ppo_and_trains_the_head():
    cfg = dataclasses.replace(
        TINY,
        total_steps=40 * 8 * 10,
        reward_coef=0.5,
        ppo=dataclasses.replace(TINY.ppo, learning_rate=1e-2),
    )
    algo = make_rl2(cfg, tasks.make("bandit-k5-n10"))
    policy = algo.parts["policy"]
    params = jax.jit(algo.init)(jax.random.key(0)).params
    T, B = 10, 8
    k = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(k[0], (T, B, 8))
    action = jax.random.randint(k[1], (T, B), 0, 5)
    reward = jax.random.bernoulli(k[3], 0.5, (T, B)).astype(np.float32)
    zeros = np.zeros((T, B), np.float32)
    traj = Transition(
        obs=obs,
        action=action,
        reward=reward,
        next_obs=obs,
        terminated=zeros > 0,
        truncated=zeros > 0,
        start=zeros > 0,
        log_prob=np.full((T, B), -np.log(5.0), np.float32),
        value=zeros,
        next_value=zeros,
        info={},
    )
    batch = sequence_batch(traj, policy.init_carry(B), 0.99, 0.7)
    plain, _ = ppo_loss(params, batch, policy, cfg.ppo)

    def term(out, b):
        return reward_prediction_loss(out.aux["reward"], b.action, b.reward, True)

    loss, metrics = ppo_loss(params, batch, policy, cfg.ppo, [AuxLoss("reward_loss", 0.5, term)])
    _, out = policy.apply(params, batch.carry0, batch.obs, batch.start)
    predicted = np.take_along_axis(np.asarray(out.aux["reward"]), np.asarray(action)[..., None], -1)
    mse = float(np.mean((predicted[..., 0] - np.asarray(reward)) ** 2))
    np.testing.assert_allclose(float(metrics["reward_loss"]), mse, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(plain) + 0.5 * mse, rtol=1e-5)
    # Training moves the head from its random start to at least the mean reward (error 0.25
    # for arms with p ~ U(0, 1); per-arm estimates would take it towards 1/6).
    _, metrics = jax.jit(train_program(algo))(jax.random.key(0))
    first, last = metrics["reward_loss"][:3].mean(), metrics["reward_loss"][-5:].mean()
    assert last < 0.26 and last < first - 0.03, (first, last)


@pytest.mark.parametrize("learner", ["ppo", "trpo", "a2c"])
def test_every_learner_trains_rl2_through_the_same_algorithm(learner):
    algo = make_rl2(dataclasses.replace(TINY, learner=learner), tasks.make("bandit-k5-n10"))
    state = jax.jit(algo.init)(jax.random.key(0))
    new, metrics = jax.jit(algo.update)(state)
    assert np.isfinite(float(metrics["policy_loss"])) and float(metrics["trials_completed"]) == 8
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params), strict=True)
    ]
    assert all(moved) if learner != "trpo" else any(moved)


def test_device_notes_name_the_work_every_device_repeats():
    bandit = tasks.make("bandit-k5-n10")
    assert "strided_minibatches" in " ".join(make_rl2(TINY, bandit).device_notes)
    strided = dataclasses.replace(TINY.ppo, strided_minibatches=True)
    assert make_rl2(dataclasses.replace(TINY, ppo=strided), bandit).device_notes == ()
    assert make_rl2(dataclasses.replace(TINY, learner="a2c"), bandit).device_notes == ()
