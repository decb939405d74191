"""PEARL's update in miniature: tasks that differ only in their reward, told apart by context."""

import jax
import jax.numpy as jnp
import pytest

from quickstudy.algorithms.pearl_update import (
    PEARLUpdateConfig,
    context_features,
    make_pearl_update,
    with_z,
)
from quickstudy.learners.sac import SACConfig, Transitions, make_sac

GOALS = jnp.array([-0.5, 0.5, -0.5, 0.5])


def _tasks_batch(key, goals, n):
    """One-step episodes of each task: reward -(a - g)^2 for uniformly drawn actions."""
    action = jax.random.uniform(key, (goals.shape[0], n, 1), minval=-1.0, maxval=1.0)
    obs = jnp.ones((goals.shape[0], n, 1))
    reward = -((action[..., 0] - goals[:, None]) ** 2)
    return Transitions(obs, action, reward, obs, jnp.ones_like(reward))


def test_shapes_of_context_and_z_augmented_batches():
    batch = _tasks_batch(jax.random.key(0), GOALS, 3)
    assert context_features(batch, False).shape == (4, 3, 3)
    assert context_features(batch, True).shape == (4, 3, 4)
    flat = with_z(batch, jnp.arange(8.0).reshape(4, 2))
    assert flat.obs.shape == (12, 3) and flat.reward.shape == (12,)
    assert float(flat.obs[3, 1]) == 2.0 and float(flat.next_obs[11, 2]) == 7.0


def test_the_encoder_learns_to_tell_tasks_apart_and_the_policy_acts_on_it():
    config = PEARLUpdateConfig(latent_dim=2, encoder_hidden=(32, 32), encoder_lr=3e-3)
    sac = make_sac(SACConfig(hidden_sizes=(32, 32), learning_rate=3e-3, alpha=0.01,
                             auto_alpha=False), obs_dim=1 + 2, act_dim=1)  # fmt: skip
    init, update, posterior = make_pearl_update(config, sac, context_dim=3)
    params = init(jax.random.key(0))

    @jax.jit
    def step(params, key):
        k_ctx, k_rl, k_up = jax.random.split(key, 3)
        context = _tasks_batch(k_ctx, GOALS, 16)
        return update(params, context, _tasks_batch(k_rl, GOALS, 64), k_up)

    for key in jax.random.split(jax.random.key(1), 800):
        params, metrics = step(params, key)
    assert jnp.isfinite(metrics["kl"]) and float(metrics["kl"]) > 0.0
    context = _tasks_batch(jax.random.key(2), jnp.array([-0.5, 0.5]), 16)
    mean, _ = posterior(params.encoder, context)
    obs = jnp.concatenate([jnp.ones((2, 1)), mean], axis=-1)
    actions = sac.act(params.sac.actor, obs, jax.random.key(3), True)[:, 0]
    assert float(actions[0]) == pytest.approx(-0.5, abs=0.2)
    assert float(actions[1]) == pytest.approx(0.5, abs=0.2)
