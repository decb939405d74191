import jax.numpy as jnp
import numpy as np

from quickstudy.objectives.ppo import approx_kl, clipped_surrogate, clipped_value_loss, normalize


def test_clipped_surrogate_hand_computed():
    old = jnp.log(jnp.array([0.5, 0.5, 0.5, 0.5]))
    new = jnp.log(jnp.array([0.75, 0.75, 0.25, 0.25]))  # ratios 1.5, 1.5, 0.5, 0.5
    adv = jnp.array([1.0, -1.0, 1.0, -1.0])
    loss = clipped_surrogate(new, old, adv, 0.2)
    # A>0, rho=1.5 -> clip to 1.2 -> -1.2; A<0, rho=1.5 -> min(-1.5, -1.2) = -1.5 -> 1.5
    # A>0, rho=0.5 -> min(0.5, 0.8) = 0.5 -> -0.5; A<0, rho=0.5 -> min(-0.5, -0.8) -> 0.8
    np.testing.assert_allclose(loss, [-1.2, 1.5, -0.5, 0.8], rtol=1e-6)


def test_clipped_value_loss():
    v = jnp.array([2.0, 0.0])
    old = jnp.array([1.0, 1.0])
    target = jnp.array([3.0, 3.0])
    # v=2: unclipped (2-3)^2=1, clipped v=1.2 -> (1.2-3)^2=3.24 -> 0.5*3.24
    # v=0: unclipped 9, clipped 0.8 -> 4.84 -> 0.5*9
    np.testing.assert_allclose(clipped_value_loss(v, old, target, 0.2), [1.62, 4.5], rtol=1e-6)
    np.testing.assert_allclose(clipped_value_loss(v, old, target, 0.0), [0.5, 4.5])


def test_approx_kl_nonnegative_and_zero_at_equal():
    a = jnp.array([-1.0, -2.0, -0.1])
    np.testing.assert_allclose(approx_kl(a, a), 0.0)
    assert (approx_kl(a, a + 0.3) >= 0).all()


def test_normalize():
    x = normalize(jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.mean(), 0.0, atol=1e-7)
    np.testing.assert_allclose(x.std(), 1.0, rtol=1e-5)
