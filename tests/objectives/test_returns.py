import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.objectives.returns import discounted_returns, gae


def _gae_loop(r, v, v_next, term, trunc, gamma, lam):
    adv = np.zeros_like(r)
    a = 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * (1 - term[t]) * v_next[t] - v[t]
        a = delta + gamma * lam * (1 - term[t]) * (1 - trunc[t]) * a
        adv[t] = a
    return adv


def test_gae_hand_computed():
    # Two steps, no boundary: delta_1 = 1 + 0.5*3 - 2 = 0.5; delta_0 = 0 + 0.5*2 - 1 = 0;
    # A_1 = 0.5; A_0 = 0 + 0.5*0.5*0.5 = 0.125.
    r = jnp.array([0.0, 1.0])
    v = jnp.array([1.0, 2.0])
    v_next = jnp.array([2.0, 3.0])
    f = jnp.array([False, False])
    adv, target = gae(r, v, v_next, f, f, 0.5, 0.5)
    np.testing.assert_allclose(adv, [0.125, 0.5])
    np.testing.assert_allclose(target, [1.125, 2.5])


def test_gae_terminated_does_not_bootstrap_truncated_does():
    r = jnp.array([1.0, 1.0])
    v = jnp.array([0.0, 0.0])
    v_next = jnp.array([10.0, 10.0])
    no = jnp.array([False, False])
    at0 = jnp.array([True, False])
    adv_term, _ = gae(r, v, v_next, at0, no, 0.9, 1.0)
    adv_trunc, _ = gae(r, v, v_next, no, at0, 0.9, 1.0)
    # terminated at t=0: A_0 = r_0 = 1 (no bootstrap, no carry from the next episode)
    np.testing.assert_allclose(adv_term[0], 1.0)
    # truncated at t=0: A_0 = r_0 + 0.9 * 10 (bootstrap from the cut observation), no carry
    np.testing.assert_allclose(adv_trunc[0], 1.0 + 9.0, rtol=1e-6)
    np.testing.assert_allclose(adv_term[1], adv_trunc[1])


def test_gae_matches_python_loop_and_vmap():
    rng = np.random.default_rng(0)
    T, B = 17, 3
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    vn = rng.normal(size=(T, B)).astype(np.float32)
    term = rng.random((T, B)) < 0.1
    trunc = (rng.random((T, B)) < 0.1) & ~term
    adv, _ = jax.jit(jax.vmap(gae, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1))(
        r, v, vn, term, trunc, 0.99, 0.95
    )
    for b in range(B):
        ref = _gae_loop(r[:, b], v[:, b], vn[:, b], term[:, b], trunc[:, b], 0.99, 0.95)
        np.testing.assert_allclose(adv[:, b], ref, rtol=1e-5, atol=1e-5)


def test_discounted_returns():
    g = discounted_returns(jnp.array([1.0, 1.0, 1.0]), jnp.array([False, True, False]), 0.5, 4.0)
    np.testing.assert_allclose(g, [1.5, 1.0, 3.0])
