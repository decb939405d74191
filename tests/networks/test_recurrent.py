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


@pytest.mark.parametrize("discrete", [True, False])
def test_reward_head_predicts_for_the_taken_action(discrete):
    net = RecurrentActorCritic(3, discrete, hidden_size=8, reward_head=True)
    T, B, D = 5, 4, 6
    obs = jax.random.normal(jax.random.key(0), (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    h0 = net.initial_state(B)
    params = net.init(jax.random.key(1), h0, obs, start)
    if discrete:
        a1, a2 = jnp.zeros((T, B), jnp.int32), jnp.full((T, B), 2, jnp.int32)
    else:
        a1, a2 = jnp.zeros((T, B, 3)), jnp.ones((T, B, 3))
    h, out, value = net.apply(params, h0, obs, start)
    h_f, out_f, value_f, r1, _ = net.apply(params, h0, obs, start, a1, method=net.forward)
    np.testing.assert_array_equal(out, out_f)
    np.testing.assert_array_equal(value, value_f)
    _, _, _, r2, _ = net.apply(params, h0, obs, start, a2, method=net.forward)
    assert r1.shape == r2.shape == (T, B)
    assert not np.allclose(r1, r2)  # the prediction depends on the action taken
    if discrete:  # one prediction per action; each step reads off the action it took
        mixed = jax.random.randint(jax.random.key(2), (T, B), 0, 3)
        _, _, _, r_mixed, _ = net.apply(params, h0, obs, start, mixed, method=net.forward)
        per_action = jnp.stack(
            [
                net.apply(params, h0, obs, start, jnp.full((T, B), a), method=net.forward)[3]
                for a in range(3)
            ],
            -1,
        )
        expected = jnp.take_along_axis(per_action, mixed[..., None], -1)[..., 0]
        np.testing.assert_allclose(r_mixed, expected, rtol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_critic_core_can_be_narrower_than_the_policy_core(cell):
    net = RecurrentActorCritic(
        3, True, hidden_size=8, cell=cell, separate_critic=True, critic_hidden_size=4
    )
    per_unit = 2 if cell == "lstm" else 1
    assert net.state_size == (8 + 4) * per_unit
    T, B = 4, 2
    obs = jax.random.normal(jax.random.key(0), (T, B, 5))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    params = net.init(jax.random.key(1), net.initial_state(B), obs, start)
    assert params["params"]["critic_core"]["hidden_kernel"].shape[0] == 4
    h, out, value = net.apply(params, net.initial_state(B), obs, start)
    assert h.shape == (B, net.state_size) and out.shape == (T, B, 3) and value.shape == (T, B)


def test_head_hidden_layer_feeds_the_policy_and_reward_heads_not_the_value():
    net = RecurrentActorCritic(
        3, True, hidden_size=8, head_hidden_size=16, reward_head=True, separate_critic=True
    )
    T, B, D = 5, 4, 6
    obs = jax.random.normal(jax.random.key(0), (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    h0 = net.initial_state(B)
    params = net.init(jax.random.key(1), h0, obs, start)
    assert params["params"]["head_hidden"]["kernel"].shape == (8, 16)
    assert params["params"]["policy"]["kernel"].shape == (16, 3)
    _, out, value, reward, _ = net.apply(params, h0, obs, start, method=net.forward)
    # Silencing the hidden layer leaves the policy and reward heads constant, the value as is.
    silent = {"params": dict(params["params"])}
    silent["params"]["head_hidden"] = jax.tree.map(jnp.zeros_like, params["params"]["head_hidden"])
    _, out0, value0, reward0, _ = net.apply(silent, h0, obs, start, method=net.forward)
    np.testing.assert_array_equal(value0, value)
    for x in (out0, reward0):
        np.testing.assert_allclose(x, jnp.broadcast_to(x[0, 0], x.shape), atol=1e-7)
    assert not np.allclose(out, jnp.broadcast_to(out[0, 0], out.shape))
    assert not np.allclose(reward, jnp.broadcast_to(reward[0, 0], reward.shape))


@pytest.mark.parametrize("activation,dies", [("relu", True), ("silu", False), ("tanh", False)])
def test_head_activation_decides_whether_a_switched_off_unit_still_learns(activation, dies):
    net = RecurrentActorCritic(
        3, True, hidden_size=8, head_hidden_size=4, head_activation=activation
    )
    T, B = 5, 2
    obs = jax.random.normal(jax.random.key(0), (T, B, 6))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    h0 = net.initial_state(B)
    params = net.init(jax.random.key(1), h0, obs, start)
    # Every hidden unit's input is negative for every step: a ReLU unit is dead.
    kernel = jnp.zeros_like(params["params"]["head_hidden"]["kernel"])

    def logit_sum(bias):
        q = {"params": {**params["params"], "head_hidden": {"kernel": kernel, "bias": bias}}}
        return net.apply(q, h0, obs, start)[1].sum()

    grad = jax.grad(logit_sum)(-jnp.ones_like(params["params"]["head_hidden"]["bias"]))
    assert bool(jnp.all(grad == 0)) == dies
