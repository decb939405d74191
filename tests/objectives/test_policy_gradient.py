import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.objectives.policy_gradient import (
    clipped_surrogate,
    fit_linear_baseline,
    linear_features,
    masked_mean,
    ratio_surrogate,
    vpg_surrogate,
)
from quickstudy.objectives.trust_region import (
    conjugate_gradient,
    gauss_newton_fvp,
    trust_region_step,
)


def test_masked_mean_ignores_padding():
    x = jnp.array([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = jnp.array([[True, True, False], [True, False, False]])
    assert float(masked_mean(x, mask)) == pytest.approx(2.0)
    assert float(masked_mean(x, jnp.zeros_like(mask))) == 0.0


def test_surrogates_gradients_and_values():
    logp = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])
    adv = jnp.array([[1.0, -2.0], [0.5, 9.0]])
    mask = jnp.array([[True, True], [True, False]])
    # d/dlogp of -mean(logp * A) over the 3 valid steps is -A/3 (0 on padding).
    g = jax.grad(vpg_surrogate)(logp, adv, mask)
    np.testing.assert_allclose(g, -np.where(mask, adv, 0.0) / 3, rtol=1e-6)
    # At logp == logp_old the ratio surrogate has the same value scale and gradient.
    np.testing.assert_allclose(jax.grad(ratio_surrogate)(logp, logp, adv, mask), g, rtol=1e-6)
    assert float(ratio_surrogate(logp, logp, adv, mask)) == pytest.approx(-(1 - 2 + 0.5) / 3)
    # Clipping: a ratio of e^1 with positive advantage is clipped to 1.2 (zero gradient).
    new = logp + jnp.array([[1.0, 0.0], [0.0, 0.0]])
    value = clipped_surrogate(new, logp, adv, mask, 0.2)
    assert float(value) == pytest.approx(-(1.2 * 1 - 2 + 0.5) / 3, rel=1e-6)
    assert float(jax.grad(clipped_surrogate)(new, logp, adv, mask, 0.2)[0, 0]) == 0.0


def test_linear_baseline_recovers_a_linear_target_and_ignores_padding():
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.uniform(-1, 1, size=(6, 50, 2)), jnp.float32)
    feats = jax.vmap(lambda o: linear_features(o, 100))(obs)
    assert feats.shape == (6, 50, 8)
    np.testing.assert_allclose(feats[0, 7, 4:], [0.07, 0.07**2, 0.07**3, 1.0], rtol=1e-5)
    w_true = jnp.asarray(rng.normal(size=8), jnp.float32)
    target = feats @ w_true
    valid = jnp.arange(50)[None, :] < jnp.array([50, 40, 30, 50, 20, 45])[:, None]
    target = jnp.where(valid, target, 1e6)  # garbage on padding must not matter
    w = fit_linear_baseline(feats, target, valid, reg=1e-8)
    np.testing.assert_allclose(feats @ w, feats @ w_true, atol=2e-3)


def test_conjugate_gradient_solves_spd_systems():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(8, 8))
    a = jnp.asarray(m @ m.T + 8 * np.eye(8), jnp.float32)
    b = jnp.asarray(rng.normal(size=8), jnp.float32)
    x = conjugate_gradient(lambda v: a @ v, b, iters=30)
    np.testing.assert_allclose(a @ x, b, atol=1e-4)


def _gaussian_policy_problem():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
    actions = jnp.asarray(rng.normal(size=(64, 2)), jnp.float32)
    adv = jnp.asarray(rng.normal(size=64), jnp.float32)
    theta0 = jnp.asarray(rng.normal(scale=0.3, size=3 * 2 + 2), jnp.float32)

    def dists(theta):
        mean = x @ theta[:6].reshape(3, 2)
        return jnp.concatenate([mean, jnp.broadcast_to(theta[6:], mean.shape)], -1)

    def logp(theta):
        d = dists(theta)
        z = (actions - d[:, :2]) * jnp.exp(-d[:, 2:])
        return jnp.sum(-0.5 * z**2 - d[:, 2:], -1)

    old_d, old_logp = dists(theta0), logp(theta0)

    def kl(theta):
        d = dists(theta)
        lo, ln = old_d[:, 2:], d[:, 2:]
        t = ln - lo + (jnp.exp(2 * lo) + (old_d[:, :2] - d[:, :2]) ** 2) / (2 * jnp.exp(2 * ln))
        return jnp.mean(jnp.sum(t - 0.5, -1))

    def loss(theta):
        return -jnp.mean(jnp.exp(logp(theta) - old_logp) * adv)

    return theta0, dists, kl, loss


def test_gauss_newton_fvp_equals_the_kl_hessian_at_the_old_policy():
    theta0, dists, kl, _ = _gaussian_policy_problem()
    n = 64

    def metric(u):
        inv_var = jnp.exp(-2.0 * dists(theta0)[:, 2:])
        return u * jnp.concatenate([inv_var, jnp.full_like(inv_var, 2.0)], -1) / n

    fvp = gauss_newton_fvp(dists, theta0, metric)
    hess = jax.hessian(kl)(theta0)
    for v in np.eye(theta0.size, dtype=np.float32)[:4]:
        np.testing.assert_allclose(fvp(jnp.asarray(v)), hess @ v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("use_gn", [False, True])
def test_trust_region_step_improves_within_the_kl_bound(use_gn):
    theta0, dists, kl, loss = _gaussian_policy_problem()
    fvp = None
    if use_gn:
        inv_var = jnp.exp(-2.0 * dists(theta0)[:, 2:])
        scale = jnp.concatenate([inv_var, jnp.full_like(inv_var, 2.0)], -1) / 64
        fvp = gauss_newton_fvp(dists, theta0, lambda u: u * scale)
    theta, info = trust_region_step(loss, kl, theta0, max_kl=0.01, fvp=fvp)
    assert bool(info.accepted)
    assert float(loss(theta)) < float(loss(theta0))
    assert 0.0 < float(kl(theta)) <= 0.01
    # Without backtracking the quadratic model puts the step near the bound.
    if int(info.backtracks) == 0:
        assert float(kl(theta)) > 0.005


def test_trust_region_step_keeps_parameters_when_nothing_improves():
    theta0 = jnp.ones(3)
    theta, info = trust_region_step(
        lambda t: jnp.sum(t**2) * 0 + 1.0,  # flat loss: no candidate is strictly better
        lambda t: jnp.sum((t - theta0) ** 2),
        theta0,
        max_kl=0.01,
        max_backtracks=3,
    )
    assert not bool(info.accepted)
    np.testing.assert_array_equal(theta, theta0)
