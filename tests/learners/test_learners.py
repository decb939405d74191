"""The on-policy learners as (init, update) pairs: PPO, TRPO and A2C on a small recurrent policy."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from quickstudy.learners.a2c import a2c_objective, make_a2c
from quickstudy.learners.base import (
    group_shuffles,
    make_optimizer,
    minibatches,
    sequence_batch,
    strided_minibatches,
)
from quickstudy.learners.ppo import PPOConfig, make_ppo, ppo_loss
from quickstudy.learners.trpo import TrustRegionConfig, make_trpo, partition
from quickstudy.networks.recurrent import RecurrentActorCritic, recurrent_policy
from quickstudy.types import Transition

T, B, D, A = 6, 8, 5, 3
CONFIG = PPOConfig(learning_rate=1e-2, num_epochs=1, num_minibatches=1, anneal_lr=False)


def _policy(cell="gru", separate=True, custom_backward=True):
    net = RecurrentActorCritic(
        A, True, hidden_size=8, cell=cell, separate_critic=separate, custom_backward=custom_backward
    )
    return recurrent_policy(net, D)


def _batch(policy, params, key=0):
    """Experience of the policy itself: actions sampled from it, its log-probs and values."""
    k = jax.random.split(jax.random.key(key), 4)
    obs = jax.random.normal(k[0], (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    carry0 = policy.init_carry(B)
    _, out = policy.apply(params, carry0, obs, start)
    action = policy.distribution.sample(k[1], out.dist)
    reward = jnp.where(action == 0, 1.0, 0.0) + 0.1 * jax.random.normal(k[2], (T, B))
    done = jnp.zeros((T, B), bool).at[-1].set(True)
    traj = Transition(
        obs=obs,
        action=action,
        reward=reward,
        next_obs=obs,
        terminated=done,
        truncated=jnp.zeros((T, B), bool),
        start=start,
        log_prob=policy.distribution.log_prob(out.dist, action),
        value=out.value,
        next_value=jnp.concatenate([out.value[1:], jnp.zeros((1, B))]),
        info={},
    )
    return traj, carry0


def _leaves_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **kw)


def test_ppo_update_with_one_minibatch_is_one_clipped_adam_step_on_the_ppo_loss():
    policy = _policy()
    params = policy.init(jax.random.key(1))
    traj, carry0 = _batch(policy, params)
    learner = make_ppo(CONFIG, policy, num_updates=10)
    new, _, metrics = jax.jit(learner.update)(
        jax.random.key(2), params, learner.init(params), traj, carry0
    )
    batch = sequence_batch(traj, carry0, CONFIG.gamma, CONFIG.gae_lambda)
    grads, aux = jax.jit(lambda p: jax.grad(ppo_loss, has_aux=True)(p, batch, policy, CONFIG))(
        params
    )
    opt = make_optimizer(CONFIG.learning_rate, CONFIG.max_grad_norm, CONFIG.adam_eps)
    updates, _ = opt.update(grads, opt.init(params), params)
    _leaves_close(new, optax.apply_updates(params, updates), rtol=1e-5, atol=1e-7)
    # At the behaviour policy the ratio is 1: no clipping, no KL yet.
    assert float(metrics["clip_fraction"]) == 0.0
    assert abs(float(metrics["approx_kl"])) < 1e-10
    np.testing.assert_allclose(metrics["value_loss"], aux["value_loss"], rtol=1e-5)


def test_ppo_raises_the_probability_of_the_rewarded_action():
    policy = _policy()
    params = policy.init(jax.random.key(1))
    traj, carry0 = _batch(policy, params)
    config = dataclasses.replace(CONFIG, num_epochs=4, num_minibatches=2)
    learner = make_ppo(config, policy, num_updates=10)
    state = learner.init(params)
    new, _, metrics = jax.jit(learner.update)(jax.random.key(2), params, state, traj, carry0)

    def prob0(p):
        _, out = policy.apply(p, carry0, traj.obs, traj.start)
        return float(jax.nn.softmax(out.dist)[..., 0].mean())

    assert prob0(new) > prob0(params) + 0.02
    assert float(metrics["approx_kl"]) > 0.0


def _distinct_carry_batch(cell):
    """A batch whose sequences each start from their own carry, so a mismatched pairing shows."""
    policy = _policy(cell)
    traj, _ = _batch(policy, policy.init(jax.random.key(1)))
    carry0 = jax.tree.map(lambda x: x + jnp.arange(B, dtype=x.dtype)[:, None], policy.init_carry(B))
    return traj, carry0, sequence_batch(traj, carry0, 0.99, 0.95)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_minibatches_keep_each_sequence_with_its_own_carry(cell):
    traj, carry0, batch = _distinct_carry_batch(cell)
    perm = jax.random.permutation(jax.random.key(3), B)
    mbs = minibatches(batch, perm, 4)
    for m in range(4):
        idx = np.asarray(perm)[2 * m : 2 * m + 2]
        got = jax.tree.map(lambda x, m=m: x[m], mbs)
        want_carry = jax.tree.map(lambda x, idx=idx: x[idx], carry0)
        _leaves_close(got.carry0, want_carry, rtol=0, atol=0)
        np.testing.assert_array_equal(got.obs, np.asarray(traj.obs)[:, idx])
        np.testing.assert_array_equal(got.advantage, np.asarray(batch.advantage)[:, idx])


def strided_permutation(key, size, num):
    """The order `strided_minibatches` reads the sequences in: minibatch-major, groups within."""
    within = group_shuffles(key, size, num)
    return (jnp.arange(size // num)[:, None] * num + within).T.reshape(size)


def test_strided_permutation_takes_one_sequence_of_every_group_per_minibatch():
    size, num = 24, 4
    perm = np.asarray(strided_permutation(jax.random.key(5), size, num))
    assert sorted(perm) == list(range(size))
    for m in range(num):
        chunk = perm[m * (size // num) : (m + 1) * (size // num)]
        np.testing.assert_array_equal(chunk // num, np.arange(size // num))  # one per group
    # the groups are shuffled independently: not every group in the same order
    assert len({tuple(perm[g :: size // num] % num) for g in range(size // num)}) > 1


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_strided_minibatches_equal_the_strided_permutation_gathered(cell):
    _, _, batch = _distinct_carry_batch(cell)
    key = jax.random.key(3)
    got = strided_minibatches(batch, group_shuffles(key, B, 2))
    want = minibatches(batch, strided_permutation(key, B, 2), 2)
    _leaves_close(got, want, rtol=0, atol=0)


def test_a2c_update_is_one_clipped_adam_step_on_the_actor_critic_loss():
    policy = _policy()
    params = policy.init(jax.random.key(1))
    traj, carry0 = _batch(policy, params)
    learner = make_a2c(CONFIG, policy, num_updates=10)
    new, _, metrics = jax.jit(learner.update)(
        jax.random.key(2), params, learner.init(params), traj, carry0
    )
    batch = sequence_batch(traj, carry0, CONFIG.gamma, CONFIG.gae_lambda)

    def loss(p):
        _, out = policy.apply(p, carry0, traj.obs, traj.start)
        return a2c_objective(out, batch, policy.distribution, CONFIG)[0]

    opt = make_optimizer(CONFIG.learning_rate, CONFIG.max_grad_norm, CONFIG.adam_eps)
    grads = jax.jit(jax.grad(loss))(params)
    updates, _ = opt.update(grads, opt.init(params), params)
    _leaves_close(new, optax.apply_updates(params, updates), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-5)


def test_a2c_policy_term_is_the_policy_gradient():
    """``-E[A log pi]``: its gradient moves probability towards positive advantages."""
    policy = _policy()
    params = policy.init(jax.random.key(1))
    traj, carry0 = _batch(policy, params)
    batch = sequence_batch(traj, carry0, 0.99, 0.95)
    config = dataclasses.replace(CONFIG, vf_coef=0.0, ent_coef=0.0, normalize_advantages=False)

    def policy_loss(p):
        _, out = policy.apply(p, carry0, traj.obs, traj.start)
        return a2c_objective(out, batch, policy.distribution, config)[0]

    def surrogate(p):  # the same estimator written out
        _, out = policy.apply(p, carry0, traj.obs, traj.start)
        logp = policy.distribution.log_prob(out.dist, traj.action)
        return -jnp.mean(logp * batch.advantage)

    grads = jax.jit(lambda p: (jax.grad(policy_loss)(p), jax.grad(surrogate)(p)))(params)
    _leaves_close(*grads, rtol=1e-5, atol=1e-7)


def test_trpo_step_respects_the_kl_bound_improves_the_surrogate_and_fits_the_critic():
    policy = _policy(custom_backward=False)  # the Fisher product differentiates in forward mode
    params = policy.init(jax.random.key(1))
    traj, carry0 = _batch(policy, params)
    trust = TrustRegionConfig(max_kl=0.005)
    config = dataclasses.replace(CONFIG, num_epochs=3, num_minibatches=2)
    learner = make_trpo(trust, config, policy, num_updates=10)
    new, _, metrics = jax.jit(learner.update)(
        jax.random.key(2), params, learner.init(params), traj, carry0
    )
    assert float(metrics["accepted"]) == 1.0
    assert 0.0 < float(metrics["approx_kl"]) <= trust.max_kl + 1e-6
    _, old_out = policy.apply(params, carry0, traj.obs, traj.start)
    _, new_out = policy.apply(new, carry0, traj.obs, traj.start)
    kl = float(policy.distribution.kl(old_out.dist, new_out.dist).mean())
    np.testing.assert_allclose(kl, float(metrics["approx_kl"]), rtol=1e-4)
    batch = sequence_batch(traj, carry0, config.gamma, config.gae_lambda)
    adv = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)

    def surrogate(out):
        logp = policy.distribution.log_prob(out.dist, traj.action)
        return -float(jnp.mean(jnp.exp(logp - traj.log_prob) * adv))

    assert surrogate(new_out) < surrogate(old_out)
    labels = policy.param_groups(params)
    for group in ("actor", "critic"):  # both moved: the actor by the step, the critic by Adam
        before, _ = partition(params, labels, group)
        after, _ = partition(new, labels, group)
        assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    value_error = [float(jnp.mean((out.value - batch.target) ** 2)) for out in (old_out, new_out)]
    assert value_error[1] < value_error[0]
