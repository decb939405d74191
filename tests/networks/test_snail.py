import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.networks import snail
from quickstudy.networks.snail import (
    SNAILActorCritic,
    dilations,
    snail_policy,
    snail_width,
    trial_positions,
)

T, B, D = 30, 3, 6


def _policy(max_len=20, **kw):
    net = SNAILActorCritic(
        action_dim=3, discrete=True, max_len=max_len, filters=8, key_size=4, value_size=5, **kw
    )
    policy = snail_policy(net, D)
    return net, policy, policy.init(jax.random.key(0))


def _inputs():
    obs = jax.random.normal(jax.random.key(1), (T, B, D))
    start = np.zeros((T, B), bool)
    start[[0, 12], 0] = True  # two trials of 12 and 18 steps
    start[[5, 17], 1] = True  # the first 5 steps continue a trial begun before
    start[[0, 10, 20], 2] = True
    return obs, jnp.asarray(start)


def _stepped(policy, params, carry, obs, start, chunk):
    outs, apply = [], jax.jit(policy.apply)
    for t in range(0, T, chunk):
        carry, out = apply(params, carry, obs[t : t + chunk], start[t : t + chunk])
        outs.append(out)
    return carry, jax.tree.map(lambda *x: jnp.concatenate(x), *outs)


def test_dilations_cover_the_trial():
    assert dilations(100) == (1, 2, 4, 8, 16, 32, 64)
    assert dilations(128) == (1, 2, 4, 8, 16, 32, 64)
    assert dilations(2) == (1,) and dilations(1) == (1,)
    assert snail_width(100, 32, 16, ("tc", "attention")) == 32 + 7 * 32 + 16


def test_trial_positions_follow_starts_and_the_carried_trial():
    start = jnp.asarray([[False, True], [False, False], [True, False], [False, True]])
    pos, carried, final = trial_positions(jnp.asarray([5, 0], jnp.int32), start)
    np.testing.assert_array_equal(pos, [[5, 0], [6, 1], [0, 2], [1, 0]])
    np.testing.assert_array_equal(carried, [[1, 0], [1, 0], [0, 0], [0, 0]])
    np.testing.assert_array_equal(final, [[0, 0], [0, 0], [1, 0], [1, 1]])


@pytest.mark.parametrize("separate_critic", [False, True])
@pytest.mark.parametrize("chunk", [1, 7])
def test_step_by_step_and_chunked_outputs_equal_the_full_sequence(chunk, separate_critic):
    """Incremental inference from the cache gives the outputs of the whole-sequence pass."""
    _, policy, params = _policy(separate_critic=separate_critic)
    obs, start = _inputs()
    carry0 = policy.init_carry(B)
    full_carry, full = policy.apply(params, carry0, obs, start)
    carry, stepped = _stepped(policy, params, carry0, obs, start, chunk)
    np.testing.assert_allclose(stepped.dist, full.dist, atol=1e-5)
    np.testing.assert_allclose(stepped.value, full.value, atol=1e-5)
    np.testing.assert_array_equal(carry["torso"]["pos"], full_carry["torso"]["pos"])
    np.testing.assert_array_equal(carry["torso"]["pos"], [18, 13, 10])


def test_a_trial_sees_nothing_of_the_one_before():
    _, policy, params = _policy()
    obs, start = _inputs()
    _, full = policy.apply(params, policy.init_carry(B), obs, start)
    alone_start = jnp.zeros((T - 12, B), bool).at[0].set(True)
    _, alone = policy.apply(params, policy.init_carry(B), obs[12:], alone_start)
    np.testing.assert_allclose(alone.dist[:, 0], full.dist[12:, 0], atol=1e-6)
    # and the outputs do depend on the earlier steps of the same trial
    moved = obs.at[13, 0].add(1.0)
    _, out = policy.apply(params, policy.init_carry(B), moved, start)
    assert np.abs(out.dist[14:, 0] - full.dist[14:, 0]).max() > 1e-4
    np.testing.assert_array_equal(out.dist[:13, 0], full.dist[:13, 0])


def test_steps_beyond_the_cache_are_forgotten_alike_in_both_passes():
    """A trial longer than ``max_len``: the attention keeps no step at p >= L in either pass."""
    _, policy, params = _policy(max_len=12)
    obs, start = _inputs()
    _, full = policy.apply(params, policy.init_carry(B), obs, start)
    _, stepped = _stepped(policy, params, policy.init_carry(B), obs, start, 1)
    np.testing.assert_allclose(stepped.dist, full.dist, atol=1e-5)


def test_continuous_heads_and_the_task_features_reach_the_value_only():
    net = SNAILActorCritic(action_dim=2, discrete=False, max_len=8, filters=4, policy_obs_dim=D)
    obs = jax.random.normal(jax.random.key(2), (5, 2, D + 3))
    start = jnp.zeros((5, 2), bool).at[0].set(True)
    params = net.init(jax.random.key(0), net.initial_state(2), obs, start)
    _, out = net.apply(params, net.initial_state(2), obs, start)
    assert out.dist.shape == (5, 2, 4) and out.value.shape == (5, 2)
    other = obs.at[..., D:].set(0.0)
    _, out2 = net.apply(params, net.initial_state(2), other, start)
    np.testing.assert_array_equal(out.dist, out2.dist)
    assert np.abs(out.value - out2.value).max() > 1e-6


def _caches_copied_in_the_loop(policy, params, steps=6):
    """Cache-shaped ``copy`` instructions inside the compiled step loop of a collection."""
    carry = policy.init_carry(B)

    def collect(params, carry, obs):
        def step(carry, o):
            carry, out = policy.apply(params, carry, o[None], jnp.zeros((1, B), bool))
            return carry, out.dist

        return jax.lax.scan(step, carry, obs)

    obs = jnp.ones((steps, B, D))
    hlo = jax.jit(collect).lower(params, carry, obs).compile().as_text()
    shapes = {f"f32[{','.join(map(str, x.shape))}]" for x in jax.tree.leaves(carry) if x.ndim == 3}
    copies = []
    for body in re.findall(r"body=%([\w.\-]+)", hlo):
        block = re.search(rf"^%{re.escape(body)} .*?^}}", hlo, re.M | re.S).group(0)
        copies += [
            line
            for line in block.splitlines()
            if " copy(" in line and any(f" {shape}{{" in line for shape in shapes)
        ]
    return copies


@pytest.mark.parametrize("in_place", [True, False])
def test_collection_writes_the_caches_in_place(monkeypatch, in_place):
    """XLA on CPU copies a cache that is read and then scattered into unless the write depends
    on the read: the whole cache at every step. The library's ``_after`` adds that dependency;
    without it (the control) the copies are there, so the check can fail."""
    if not in_place:
        monkeypatch.setattr(snail, "_after", lambda read, update: update)
    _, policy, params = _policy(max_len=32)
    copies = _caches_copied_in_the_loop(policy, params)
    assert (copies == []) == in_place, copies
