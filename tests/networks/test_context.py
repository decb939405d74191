"""PEARL's context encoder: the product of Gaussians, the KL, permutation invariance."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.networks.context import (
    ContextEncoder,
    kl_to_standard_normal,
    product_of_gaussians,
    sample_z,
)


def test_product_of_two_unit_gaussians_halves_the_variance_and_averages_the_means():
    mean = jnp.array([[1.0], [3.0]])
    mu, var = product_of_gaussians(mean, jnp.ones((2, 1)))
    assert float(mu[0]) == pytest.approx(2.0) and float(var[0]) == pytest.approx(0.5)
    # precision-weighted: N(0, 1) x N(4, 1/3) -> var 1/4, mean (0 + 12) / 4
    mu, var = product_of_gaussians(jnp.array([[0.0], [4.0]]), jnp.array([[1.0], [1 / 3]]))
    assert float(mu[0]) == pytest.approx(3.0) and float(var[0]) == pytest.approx(0.25)


def test_masked_factors_are_ignored_and_an_empty_context_is_the_prior():
    mean, var = jnp.array([[1.0], [3.0], [100.0]]), jnp.ones((3, 1))
    mu, v = product_of_gaussians(mean, var, jnp.array([1.0, 1.0, 0.0]))
    assert float(mu[0]) == pytest.approx(2.0) and float(v[0]) == pytest.approx(0.5)
    mu, v = product_of_gaussians(mean, var, jnp.zeros(3))
    assert float(mu[0]) == 0.0 and float(v[0]) == 1.0


def test_kl_to_the_prior_by_hand():
    # 0.5 (2 + 1 - 1 - ln 2) for N(1, 2); zero for the prior itself
    assert float(kl_to_standard_normal(jnp.array([1.0]), jnp.array([2.0]))) == pytest.approx(
        0.5 * (2.0 - math.log(2.0))
    )
    assert float(kl_to_standard_normal(jnp.zeros(3), jnp.ones(3))) == 0.0
    z = sample_z(jax.random.key(0), jnp.zeros((20000, 1)), 4.0 * jnp.ones((20000, 1)))
    assert float(z.std()) == pytest.approx(2.0, rel=0.03)


def test_encoder_is_permutation_invariant_and_batched():
    encoder = ContextEncoder(hidden_sizes=(16, 16), latent_dim=3)
    context = jax.random.normal(jax.random.key(0), (2, 7, 5))  # 2 tasks, 7 transitions
    params = encoder.init(jax.random.key(1), context)
    mu, var = encoder.apply(params, context)
    assert mu.shape == (2, 3) and np.all(np.asarray(var) > 0)
    shuffled = context[:, jax.random.permutation(jax.random.key(2), 7)]
    mu2, var2 = encoder.apply(params, shuffled)
    np.testing.assert_allclose(mu, mu2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, var2, rtol=1e-5)
    # More transitions never widen the posterior.
    _, fewer = encoder.apply(params, context, jnp.arange(7) < 3)
    assert np.all(np.asarray(var) <= np.asarray(fewer) + 1e-7)
