"""The SAC learner: shapes, the target networks, the temperature, and a problem it must solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.errors import ConfigError
from quickstudy.learners.sac import SACConfig, Transitions, make_sac


def _bandit_batch(key, n=256):
    """One-step episodes: reward -(a - 0.5)^2 for actions drawn uniformly (off-policy data)."""
    action = jax.random.uniform(key, (n, 1), minval=-1.0, maxval=1.0)
    obs = jnp.ones((n, 1))
    reward = -((action[:, 0] - 0.5) ** 2)
    return Transitions(obs, action, reward, obs, jnp.ones((n,)))


def test_sac_learns_the_best_action_of_a_continuous_bandit_from_off_policy_data():
    sac = make_sac(SACConfig(hidden_sizes=(32, 32), learning_rate=3e-3, alpha=0.01,
                             auto_alpha=False), obs_dim=1, act_dim=1)  # fmt: skip
    state = sac.init(jax.random.key(0))

    @jax.jit
    def step(state, key):
        k_batch, k_update = jax.random.split(key)
        return sac.update(state, _bandit_batch(k_batch), k_update)

    for key in jax.random.split(jax.random.key(1), 600):
        state, metrics = step(state, key)
    best = float(sac.act(state.actor, jnp.ones((1, 1)), jax.random.key(2), True)[0, 0])
    assert best == pytest.approx(0.5, abs=0.1)
    q = sac.q_values(state.critic, jnp.ones((3, 1)), jnp.array([[-1.0], [0.5], [1.0]]))
    np.testing.assert_allclose(q[0], [-2.25, 0.0, -0.25], atol=0.15)  # Q(a) = r(a)


def test_targets_trail_the_critic_and_the_temperature_tracks_the_entropy_target():
    config = SACConfig(hidden_sizes=(16,), tau=0.5, alpha=1.0, target_entropy=5.0)
    sac = make_sac(config, obs_dim=1, act_dim=1)
    state = sac.init(jax.random.key(0))
    assert jax.tree.leaves(state.critic)[0].shape[0] == 2  # twin Q-networks
    new, metrics = sac.update(state, _bandit_batch(jax.random.key(1)), jax.random.key(2))
    for t, old, c in zip(*(jax.tree.leaves(x) for x in (new.target, state.critic, new.critic)),
                         strict=True):  # fmt: skip
        np.testing.assert_allclose(t, 0.5 * old + 0.5 * c, rtol=1e-5, atol=1e-6)
    # The entropy of a squashed Gaussian is far below 5 nats: alpha must rise.
    assert float(new.log_alpha) > float(state.log_alpha) and set(metrics) >= {"alpha", "entropy"}
    fixed = make_sac(SACConfig(hidden_sizes=(16,), auto_alpha=False), obs_dim=1, act_dim=1)
    s0 = fixed.init(jax.random.key(0))
    s1, _ = fixed.update(s0, _bandit_batch(jax.random.key(1)), jax.random.key(2))
    assert float(s1.log_alpha) == float(s0.log_alpha)


def test_sac_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="tau"):
        SACConfig(tau=0.0)
    with pytest.raises(ConfigError, match="gamma"):
        SACConfig(gamma=1.5)


def test_critic_gradient_reaches_the_observations_for_context_encoders():
    sac = make_sac(SACConfig(hidden_sizes=(16,)), obs_dim=1, act_dim=1)
    state = sac.init(jax.random.key(0))
    batch = _bandit_batch(jax.random.key(1), n=8)
    loss, (g_critic, g_obs) = sac.critic_grad(state, batch, jax.random.key(2))
    assert np.isfinite(float(loss)) and g_obs.shape == (8, 1) and np.abs(g_obs).sum() > 0
    assert jax.tree.structure(g_critic) == jax.tree.structure(state.critic)
