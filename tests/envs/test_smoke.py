"""Smoke tests over every registered task (test pyramid (b), (e), (i)).

For each task name the trial-wrapped environment is rolled out for ``T`` steps on ``B`` tasks from
``dist.sample``: once as one jitted, vmapped program and once per task eagerly (op by op, no jit,
with the registered ``Trial(dist.env, dist.episodes)``); both must agree. One name per environment
class is also compared against the jitted unbatched rollout. A Hypothesis-driven checker then feeds
random valid actions through the same compiled program and checks the emitted TimeSteps.

Compile time dominates (each program holding threefry costs ~2 s to compile on CPU), so the
compiled rollout is shared by all names with the same environment configuration: the number of
episodes ``K`` is passed as a traced argument (``Trial(env, K)`` is built inside the jitted
function), which differs from the registered trial only in that one comparison being static.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quickstudy import tasks
from quickstudy.envs.base import Box, Discrete, is_host
from quickstudy.tasks import Trial
from quickstudy.tasks.trial import HostTrial

# The MJX twins (NAME-mjx) are left out: stepping MJX op by op is impractical (a segfault in
# jax's eager dispatch here); tests/envs/test_mujoco.py checks them against native stepping.
NAMES = [
    name
    for name in tasks.names("rl")
    if not is_host(tasks.make(name).env) and not name.endswith("-mjx")
]
# ML10 and ML45 step through the same wrapper as the 50 ML1 names, but building their
# benchmarks takes 9 and 31 s: they run with the slow tests.
HOST_NAMES = [
    pytest.param(name, marks=pytest.mark.slow) if name in ("ml10", "ml45") else name
    for name in tasks.names("rl")
    if is_host(tasks.make(name).env)
]
T = 12  # crosses the MDP episode boundary (t = 10) and the end of a bandit-*-n10 trial
B = 4


def _trial(name: str) -> Trial:
    dist = tasks.make(name)
    return Trial(dist.env, dist.episodes)


def _rollout(trial, key, params, actions):
    """Reset, then ``T`` steps with the given actions; returns (reset TimeStep, stacked steps)."""
    if not isinstance(trial, Trial):  # (env, episodes) with a traced number of episodes
        trial = Trial(*trial)
    k_reset, k_steps = jax.random.split(key)
    state, ts0 = trial.reset(k_reset, params)

    def body(state, inp):
        k, a = inp
        state, ts = trial.step(k, state, a, params)
        return state, ts

    _, steps = jax.lax.scan(body, state, (jax.random.split(k_steps, T), actions))
    return ts0, steps


def _eager_rollout(trial, key, params, actions):
    """The same as ``_rollout`` as a Python loop, op by op."""
    k_reset, k_steps = jax.random.split(key)
    state, ts0 = trial.reset(k_reset, params)
    out = []
    for k, a in zip(jax.random.split(k_steps, T), actions, strict=True):
        state, ts = trial.step(k, state, a, params)
        out.append(ts)
    return ts0, jax.tree.map(lambda *xs: jnp.stack(xs), *out)


@functools.cache
def _batched_for_env(env):
    def run(episodes, keys, params, actions):
        rollout = jax.vmap(_rollout, in_axes=(None, 0, 0, 0))
        return rollout((env, episodes), keys, params, actions)

    return jax.jit(run)


def _batched(name):
    """``run(keys, params, actions)`` with leaves ``[B, ...]``: the jitted, vmapped rollout."""
    dist = tasks.make(name)
    return functools.partial(_batched_for_env(dist.env), jnp.int32(dist.episodes))


def _random_actions(space, rng, shape):
    if isinstance(space, Discrete):
        return rng.integers(0, space.n, shape).astype(np.int32)
    return rng.uniform(space.low, space.high, shape + space.shape).astype(np.float32)


def _inputs(name, seed):
    dist = tasks.make(name)
    key_tasks, key_run = jax.random.split(jax.random.key(seed))
    params = dist.sample(key_tasks, B)
    space = _trial(name).action_space(params)
    actions = _random_actions(space, np.random.default_rng(seed), (B, T))
    return jax.random.split(key_run, B), params, jnp.asarray(actions)


def _task(params, i):
    return jax.tree.map(lambda x: x[i], params)


def _assert_trees_match(got, want, what):
    got, want = jax.device_get(got), jax.device_get(want)
    assert jax.tree.structure(got) == jax.tree.structure(want), what
    leaves = jax.tree_util.tree_leaves_with_path(got)
    for (path, g), w in zip(leaves, jax.tree.leaves(want), strict=True):
        where = f"{what} {jax.tree_util.keystr(path)}"
        assert g.shape == w.shape and g.dtype == w.dtype, where
        if np.issubdtype(g.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=where)
        else:
            np.testing.assert_array_equal(g, w, err_msg=where)


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_agrees_with_eager_unbatched(name):
    trial = _trial(name)
    keys, params, actions = _inputs(name, seed=0)
    batched = _batched(name)(keys, params, actions)
    for i in range(B):
        eager = _eager_rollout(trial, keys[i], _task(params, i), actions[i])
        _assert_trees_match(_task(batched, i), eager, f"{name} task {i}")


@pytest.mark.parametrize("name", ["bandit-k5-n10", "mdp-s10-a5-n10", "nav2d"])
def test_jit_unbatched_agrees_with_jit_vmap(name):
    keys, params, actions = _inputs(name, seed=1)
    batched = _batched(name)(keys, params, actions)
    single = jax.jit(functools.partial(_rollout, _trial(name)))
    for i in range(B):
        got = single(keys[i], _task(params, i), actions[i])
        _assert_trees_match(_task(batched, i), got, f"{name} task {i}")


def _check_timesteps(name, params, out):
    """The env-checker properties of one batched rollout ``out``."""
    dist, trial = tasks.make(name), _trial(name)
    ts0, steps = jax.device_get(out)
    obs_space = trial.observation_space(_task(params, 0))
    inner_space = dist.env.observation_space(_task(params, 0))
    assert isinstance(obs_space, Box)
    inner_dim = int(np.prod(inner_space.shape)) if inner_space.shape else 1
    assert ts0.obs.shape == (B, *obs_space.shape)
    assert steps.obs.shape == (B, T, *obs_space.shape)
    for obs in (ts0.obs, steps.obs):
        assert obs.dtype == np.float32
        assert np.all(np.isfinite(obs))
        flat = obs.reshape(-1, obs.shape[-1])
        assert bool(jax.vmap(obs_space.contains)(flat).all())
        inner = flat[:, :inner_dim].reshape(-1, *inner_space.shape)
        assert bool(jax.vmap(inner_space.contains)(inner).all())
    assert steps.reward.shape == (B, T) and steps.reward.dtype == np.float32
    assert np.all(np.isfinite(steps.reward))
    assert np.all(ts0.reward == 0.0)
    for flags in (ts0.terminated, ts0.truncated, steps.terminated, steps.truncated):
        assert flags.dtype == np.bool_
    assert not ts0.terminated.any() and not ts0.truncated.any()
    assert set(ts0.info) == set(steps.info) and {"episode", "episode_done"} <= set(steps.info)
    for v in steps.info.values():
        assert v.shape == (B, T) and np.all(np.isfinite(v.astype(np.float64)))
    # Once a trial has terminated it stays terminated.
    term = steps.terminated
    assert np.all(term[:, 1:] >= term[:, :-1])


@pytest.mark.parametrize("name", NAMES)
def test_spaces_shapes_and_dtypes(name):
    keys, params, actions = _inputs(name, seed=2)
    _check_timesteps(name, params, _batched(name)(keys, params, actions))
    trial, env = _trial(name), tasks.make(name).env
    assert trial.action_space(_task(params, 0)) == env.action_space(_task(params, 0))


def _action_strategy(space):
    if isinstance(space, Discrete):
        elements = st.integers(0, space.n - 1)
        return hnp.arrays(np.int32, (B, T), elements=elements)
    # The closest float32 bounds inside [low, high].
    low, high = np.float32(space.low), np.float32(space.high)
    low = low if low >= space.low else np.nextafter(low, np.float32(np.inf))
    high = high if high <= space.high else np.nextafter(high, np.float32(-np.inf))
    elements = st.floats(float(low), float(high), width=32, allow_nan=False)
    return hnp.arrays(np.float32, (B, T, *space.shape), elements=elements)


@pytest.mark.parametrize("name", NAMES)
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_env_checker_random_valid_actions(name, data):
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    dist = tasks.make(name)
    key_tasks, key_run = jax.random.split(jax.random.key(seed))
    params = dist.sample(key_tasks, B)
    actions = data.draw(_action_strategy(_trial(name).action_space(params)), label="actions")
    keys = jax.random.split(key_run, B)
    out = _batched(name)(keys, params, jnp.asarray(actions))
    _check_timesteps(name, params, out)
    # Same key, same task, same actions: same result.
    _assert_trees_match(out, _batched(name)(keys, params, jnp.asarray(actions)), name)


@pytest.mark.parametrize("name", HOST_NAMES)
def test_host_tasks_step_in_batches_with_numpy_timesteps(name):
    dist = tasks.make(name)
    trial = HostTrial(dist.env, dist.episodes)
    params = jax.device_get(dist.sample(jax.random.key(0), B))
    one = jax.tree.map(lambda x: x[0], params)
    space, obs_space = trial.action_space(one), trial.observation_space(one)
    rng = np.random.default_rng(0)
    state, ts = trial.reset(rng, params)
    for _ in range(T):
        assert ts.obs.shape == (B, *obs_space.shape) and ts.obs.dtype == np.float32
        action = np.stack([np.asarray(space.sample(jax.random.key(i))) for i in range(B)])
        state, ts = trial.step(rng, state, action, params)
        assert ts.reward.shape == (B,) and ts.reward.dtype == np.float32
        assert ts.terminated.dtype == bool and ts.truncated.dtype == bool
        assert np.isfinite(ts.obs).all() and np.isfinite(ts.reward).all()
