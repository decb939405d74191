import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.networks.distributions import Categorical, DiagGaussian
from quickstudy.networks.recurrent import RecurrentActorCritic


@pytest.mark.parametrize("cell,separate", [("gru", False), ("lstm", False), ("gru", True)])
def test_scan_equals_step_by_step_and_reset(cell, separate):
    net = RecurrentActorCritic(3, True, hidden_size=8, cell=cell, separate_critic=separate)
    T, B, D = 6, 2, 4
    obs = jax.random.normal(jax.random.key(0), (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True).at[3, 1].set(True)
    h0 = net.initial_state(B) + 0.3
    params = net.init(jax.random.key(1), h0, obs, start)
    h_seq, out_seq, v_seq = net.apply(params, h0, obs, start)
    h = h0
    for t in range(T):
        h, out, v = net.apply(params, h, obs[t : t + 1], start[t : t + 1])
        np.testing.assert_allclose(out[0], out_seq[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v[0], v_seq[t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, h_seq, rtol=1e-5, atol=1e-6)
    # A reset at t=3 for env 1 makes its outputs from t=3 independent of the earlier inputs.
    obs2 = obs.at[:3, 1].set(5.0)
    _, out2, _ = net.apply(params, h0, obs2, start)
    np.testing.assert_allclose(out2[3:, 1], out_seq[3:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out2[:3, 1], out_seq[:3, 1])


def test_categorical():
    d = Categorical(3)
    logits = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    np.testing.assert_allclose(d.log_prob(logits, jnp.array(2)), np.log(0.5), rtol=1e-6)
    ent = -(0.2 * np.log(0.2) + 0.3 * np.log(0.3) + 0.5 * np.log(0.5))
    np.testing.assert_allclose(d.entropy(logits), ent, rtol=1e-6)
    keys = jax.random.split(jax.random.key(0), 4000)
    samples = jax.vmap(d.sample, in_axes=(0, None))(keys, logits)
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 4000, [0.2, 0.3, 0.5], atol=0.03)


def test_diag_gaussian():
    d = DiagGaussian(2)
    params = jnp.array([0.5, -1.0, jnp.log(2.0), 0.0])
    a = jnp.array([1.5, -1.0])
    ref = (-0.5 * 0.25 - np.log(2.0) - 0.5 * np.log(2 * np.pi)) + (-0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(d.log_prob(params, a), ref, rtol=1e-6)
    ent = np.log(2.0) + np.log(2 * np.pi * np.e)
    np.testing.assert_allclose(d.entropy(params), ent, rtol=1e-6)
