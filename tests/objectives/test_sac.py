"""SAC's losses against values computed by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.objectives.sac import (
    actor_loss,
    critic_loss,
    polyak,
    soft_q_target,
    squashed_gaussian_log_prob,
    squashed_gaussian_sample,
    temperature_loss,
)


def test_squashed_gaussian_log_prob_is_the_gaussian_density_minus_the_tanh_jacobian():
    zero = jnp.zeros((1,))
    # u = 0: tanh' = 1, so only the standard normal density at 0 remains.
    assert float(squashed_gaussian_log_prob(zero, zero, zero)) == pytest.approx(
        -0.5 * math.log(2 * math.pi), abs=1e-6
    )
    # u = 1: -1/2 - log sqrt(2 pi) - log(1 - tanh(1)^2) = -1.418939 + 0.867562
    one = jnp.ones((1,))
    assert float(squashed_gaussian_log_prob(zero, zero, one)) == pytest.approx(-0.551377, abs=1e-5)
    # Far in the tail tanh(u) rounds to 1 in float32, and the stable form stays finite.
    assert np.isfinite(float(squashed_gaussian_log_prob(zero, zero, 30.0 * one)))
    # Two action dimensions: the log-densities add.
    two = squashed_gaussian_log_prob(jnp.zeros(2), jnp.zeros(2), jnp.array([0.0, 1.0]))
    assert float(two) == pytest.approx(-0.918939 - 0.551377, abs=1e-5)


def test_squashed_sample_lies_in_the_open_interval_and_matches_its_log_prob():
    mean, log_std = jnp.array([0.3, -2.0]), jnp.array([0.0, -1.0])
    action, log_prob = squashed_gaussian_sample(jax.random.key(0), mean, log_std)
    assert np.all(np.abs(np.asarray(action)) < 1.0)
    pre_tanh = jnp.arctanh(action)
    np.testing.assert_allclose(
        log_prob, squashed_gaussian_log_prob(mean, log_std, pre_tanh), rtol=1e-4
    )


def test_soft_q_target_by_hand():
    args = dict(next_q1=jnp.array([2.0]), next_q2=jnp.array([3.0]), next_log_prob=jnp.array([-1.0]))
    # 2 * 1 + 0.9 * (min(2, 3) - 0.5 * (-1)) = 2 + 0.9 * 2.5
    running = soft_q_target(jnp.array([1.0]), jnp.array([0.0]), **args, alpha=0.5, gamma=0.9,
                            reward_scale=2.0)  # fmt: skip
    assert float(running[0]) == pytest.approx(4.25)
    ended = soft_q_target(jnp.array([1.0]), jnp.array([1.0]), **args, alpha=0.5, gamma=0.9,
                          reward_scale=2.0)  # fmt: skip
    assert float(ended[0]) == pytest.approx(2.0)  # no bootstrap after termination


def test_critic_actor_and_temperature_losses_by_hand():
    q1, q2 = jnp.array([1.0, 2.0]), jnp.array([0.0, 2.0])
    assert float(critic_loss(q1, q2, jnp.array([1.0, 1.0]))) == pytest.approx(0.5 + 1.0)
    # mean(0.2 * [-1, 0.5] - min([1, 4], [2, 3])) = mean([-1.2, -2.9])
    loss = actor_loss(jnp.array([1.0, 4.0]), jnp.array([2.0, 3.0]), jnp.array([-1.0, 0.5]), 0.2)
    assert float(loss) == pytest.approx(-2.05)
    # -log_alpha * mean(log_prob + target) = -0.5 * (-3); entropy 1 is above the target -2,
    # so the gradient (3) lowers alpha.
    log_prob = jnp.array([-1.0, -1.0])
    value, grad = jax.value_and_grad(temperature_loss)(jnp.asarray(0.5), log_prob, -2.0)
    assert float(value) == pytest.approx(1.5) and float(grad) == pytest.approx(3.0)
    assert float(polyak(jnp.asarray(0.0), jnp.asarray(1.0), 0.1)) == pytest.approx(0.1)
