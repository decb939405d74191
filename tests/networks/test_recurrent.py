import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.networks.distributions import Categorical, DiagGaussian
from quickstudy.networks.recurrent import RecurrentActorCritic
from quickstudy.objectives.auxiliary import predicted_reward, reward_prediction_loss


@pytest.mark.parametrize("cell,separate", [("gru", False), ("lstm", False), ("gru", True)])
def test_scan_equals_step_by_step_and_reset(cell, separate):
    net = RecurrentActorCritic(3, True, hidden_size=8, cell=cell, separate_critic=separate)
    T, B, D = 6, 2, 4
    obs = jax.random.normal(jax.random.key(0), (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True).at[3, 1].set(True)
    h0 = jax.tree.map(lambda x: x + 0.3, net.initial_state(B))
    params = net.init(jax.random.key(1), h0, obs, start)
    h_seq, seq = net.apply(params, h0, obs, start)
    h = h0
    for t in range(T):
        h, out = net.apply(params, h, obs[t : t + 1], start[t : t + 1])
        np.testing.assert_allclose(out.dist[0], seq.dist[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.value[0], seq.value[t], rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), h, h_seq)
    # A reset at t=3 for env 1 makes its outputs from t=3 independent of the earlier inputs.
    obs2 = obs.at[:3, 1].set(5.0)
    _, out2 = net.apply(params, h0, obs2, start)
    np.testing.assert_allclose(out2.dist[3:, 1], seq.dist[3:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out2.dist[:3, 1], seq.dist[:3, 1])


@pytest.mark.parametrize("cell,separate", [("gru", True), ("lstm", True), ("lstm", False)])
def test_the_carry_is_a_pytree_of_each_cores_state(cell, separate):
    net = RecurrentActorCritic(3, True, hidden_size=8, cell=cell, separate_critic=separate)
    carry = net.initial_state(5)
    assert set(carry) == ({"core", "critic_core"} if separate else {"core"})
    leaves = jax.tree.leaves(carry)
    assert len(leaves) == len(carry) * (2 if cell == "lstm" else 1)
    assert all(x.shape == (5, 8) for x in leaves)


def test_kl_and_fisher_product_of_the_distributions():
    cat = Categorical(3)
    p, q = jnp.log(jnp.array([0.2, 0.3, 0.5])), jnp.log(jnp.array([0.5, 0.25, 0.25]))
    expected = sum(a * np.log(a / b) for a, b in [(0.2, 0.5), (0.3, 0.25), (0.5, 0.25)])
    np.testing.assert_allclose(cat.kl(p, q), expected, rtol=1e-5)
    # The Fisher product is the Hessian of KL(p || softmax(x)) at x = p, applied to u.
    u = jnp.array([0.3, -1.0, 0.5])
    hess = jax.hessian(lambda x: cat.kl(p, x))(p)
    np.testing.assert_allclose(cat.fisher_product(p, u), hess @ u, rtol=1e-4, atol=1e-6)
    gauss = DiagGaussian(2)
    g = jnp.array([0.3, -1.0, jnp.log(0.5), jnp.log(2.0)])
    v = jnp.array([1.0, 2.0, -1.0, 0.5])
    hess = jax.hessian(lambda x: gauss.kl(g, x))(g)
    np.testing.assert_allclose(gauss.fisher_product(g, v), hess @ v, rtol=1e-4, atol=1e-6)


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
def test_reward_head_feeds_the_auxiliary_loss(discrete):
    net = RecurrentActorCritic(3, discrete, hidden_size=8, reward_head=True)
    T, B, D = 5, 4, 6
    obs = jax.random.normal(jax.random.key(0), (T, B, D))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    h0 = net.initial_state(B)
    params = net.init(jax.random.key(1), h0, obs, start)
    _, out = net.apply(params, h0, obs, start)
    head = out.aux["reward"]
    assert head.shape == (T, B, 3 if discrete else 1 + 2 * 3)
    if discrete:  # one prediction per action; each step reads off the action it took
        mixed = jax.random.randint(jax.random.key(2), (T, B), 0, 3)
        expected = jnp.take_along_axis(head, mixed[..., None], -1)[..., 0]
        np.testing.assert_allclose(predicted_reward(head, mixed, True), expected, rtol=1e-6)
    else:  # a quadratic in the action: c0 + c1 . a + c2 . a^2
        a = jax.random.normal(jax.random.key(2), (T, B, 3))
        expected = head[..., 0] + (head[..., 1:4] * a).sum(-1) + (head[..., 4:] * a**2).sum(-1)
        np.testing.assert_allclose(predicted_reward(head, a, False), expected, rtol=1e-5)
    reward = jnp.ones((T, B))
    action = jnp.zeros((T, B), jnp.int32) if discrete else jnp.zeros((T, B, 3))
    loss = reward_prediction_loss(head, action, reward, discrete)
    pred = predicted_reward(head, action, discrete)
    np.testing.assert_allclose(loss, jnp.mean((pred - 1.0) ** 2), rtol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_critic_core_can_be_narrower_than_the_policy_core(cell):
    net = RecurrentActorCritic(
        3, True, hidden_size=8, cell=cell, separate_critic=True, critic_hidden_size=4
    )
    T, B = 4, 2
    obs = jax.random.normal(jax.random.key(0), (T, B, 5))
    start = jnp.zeros((T, B), bool).at[0].set(True)
    params = net.init(jax.random.key(1), net.initial_state(B), obs, start)
    assert params["params"]["critic_core"]["hidden_kernel"].shape[0] == 4
    h, out = net.apply(params, net.initial_state(B), obs, start)
    assert all(x.shape == (B, 4) for x in jax.tree.leaves(h["critic_core"]))
    assert out.dist.shape == (T, B, 3) and out.value.shape == (T, B)


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
    _, out = net.apply(params, h0, obs, start)
    # Silencing the hidden layer leaves the policy and reward heads constant, the value as is.
    silent = {"params": dict(params["params"])}
    silent["params"]["head_hidden"] = jax.tree.map(jnp.zeros_like, params["params"]["head_hidden"])
    _, out0 = net.apply(silent, h0, obs, start)
    np.testing.assert_array_equal(out0.value, out.value)
    for x in (out0.dist, out0.aux["reward"]):
        np.testing.assert_allclose(x, jnp.broadcast_to(x[0, 0], x.shape), atol=1e-7)
    assert not np.allclose(out.dist, jnp.broadcast_to(out.dist[0, 0], out.dist.shape))


@pytest.mark.parametrize("H", [1, 8])
def test_gru_sequence_backward_matches_jax_autodiff(H):
    """The hand-written backward pass equals JAX's derivative of the same forward pass."""
    from quickstudy.networks.recurrent import _gru_forward, gru_sequence

    T, B = 7, 5
    k = jax.random.split(jax.random.key(0), 8)
    w_h = jax.random.normal(k[0], (H, 3 * H))
    b_h = jax.random.normal(k[1], (3 * H,))
    gates = tuple(jax.random.normal(kk, (T, B, H)) for kk in k[2:5])
    start = jax.random.bernoulli(k[5], 0.3, (T, B)).at[0, 0].set(True)
    h0 = jax.random.normal(k[6], (B, H))
    weights = jax.random.normal(k[7], (T, B, H))

    def loss(fn, w_h, b_h, g_r, g_z, g_n, h0):
        h_last, ys = fn(w_h, b_h, g_r, g_z, g_n, start, h0)
        return jnp.sum(jnp.tanh(ys) * weights) + jnp.sum(h_last**2)

    def reference(*args):
        h_last, residuals = _gru_forward(*args)
        return h_last, residuals[0]

    args = (w_h, b_h, *gates, h0)
    ours = jax.jit(jax.grad(lambda *a: loss(gru_sequence, *a), argnums=range(6)))(*args)
    theirs = jax.jit(jax.grad(lambda *a: loss(reference, *a), argnums=range(6)))(*args)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(
        gru_sequence(*args[:5], start, h0)[1], reference(*args[:5], start, h0)[1]
    )


def test_the_gru_without_custom_backward_supports_forward_mode():
    net = RecurrentActorCritic(3, True, hidden_size=4, custom_backward=False)
    carry = net.initial_state(2)
    obs, start = jnp.ones((3, 2, 5)), jnp.zeros((3, 2), bool)
    params = net.init(jax.random.key(0), carry, obs, start)

    def logits(p):
        return net.apply(p, carry, obs, start)[1].dist

    tangent = jax.tree.map(jnp.ones_like, params)
    _, out = jax.jvp(logits, (params,), (tangent,))
    assert np.isfinite(np.asarray(out)).all()
    fast = RecurrentActorCritic(3, True, hidden_size=4)
    np.testing.assert_array_equal(
        fast.apply(params, carry, obs, start)[1].dist, logits(params)
    )  # the same forward pass and parameters either way
