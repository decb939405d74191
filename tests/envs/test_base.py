"""Spaces, TimeStep construction and tree_select from ``quickstudy.envs.base``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.base import Box, Discrete, TimeStep, timestep, tree_select


def test_discrete_space():
    space = Discrete(5)
    assert space.shape == ()
    draws = np.asarray(jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 500)))
    assert draws.shape == (500,) and set(np.unique(draws)) == set(range(5))
    assert [bool(space.contains(jnp.int32(x))) for x in (-1, 0, 4, 5)] == [
        False,
        True,
        True,
        False,
    ]


def test_box_space():
    box = Box(-0.1, 0.1, (2,))
    draws = np.asarray(jax.vmap(box.sample)(jax.random.split(jax.random.key(0), 500)))
    assert draws.shape == (500, 2) and np.all(np.abs(draws) <= 0.1)
    assert draws.min() < -0.09 and draws.max() > 0.09
    assert bool(box.contains(jnp.array([0.1, -0.1])))
    assert not bool(box.contains(jnp.array([0.1, -0.11])))
    free = Box(-np.inf, np.inf, (3,))
    x = free.sample(jax.random.key(1))
    assert x.shape == (3,) and bool(jnp.all(jnp.isfinite(x)))
    assert bool(free.contains(jnp.array([1e30, -1e30, 0.0])))
    assert not bool(free.contains(jnp.array([np.nan, 0.0, 0.0])))


def test_box_sample_inside_jit():
    box = Box(0.0, 1.0, (4,))
    x = jax.jit(box.sample)(jax.random.key(2))
    np.testing.assert_array_equal(x, box.sample(jax.random.key(2)))


def test_timestep_canonical_dtypes():
    ts = timestep(jnp.zeros(3), 1, terminated=1, truncated=0, success=jnp.float32(1.0))
    assert isinstance(ts, TimeStep)
    assert ts.reward.dtype == jnp.float32 and ts.reward.shape == ()
    assert ts.terminated.dtype == jnp.bool_ and bool(ts.terminated)
    assert ts.truncated.dtype == jnp.bool_ and not bool(ts.truncated)
    assert set(ts.info) == {"success"}
    default = timestep(jnp.zeros(3))
    assert float(default.reward) == 0.0 and not default.terminated and not default.truncated
    assert default.info == {}


def test_tree_select_leafwise():
    a = {"x": jnp.ones(3), "y": (jnp.int32(1), jnp.zeros((2, 2)))}
    b = {"x": jnp.zeros(3), "y": (jnp.int32(7), jnp.ones((2, 2)))}
    jax.tree.map(np.testing.assert_array_equal, tree_select(jnp.asarray(True), a, b), a)
    jax.tree.map(np.testing.assert_array_equal, tree_select(jnp.asarray(False), a, b), b)
    # Under vmap with a batched predicate.
    both = jax.tree.map(lambda u, v: jnp.stack([u, v]), a, b)
    got = jax.vmap(tree_select)(jnp.array([False, True]), both, both)
    jax.tree.map(np.testing.assert_array_equal, got, both)
