"""Per-task ring buffers: sizes, wrap-around, recent-only sampling, the memory budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.errors import ConfigError
from quickstudy.rollout.replay import (
    replay_add,
    replay_bytes,
    replay_clear,
    replay_extend,
    replay_init,
    replay_sample,
)


def _add(buffer, task, values):
    n = len(values)
    v = jnp.asarray(values, jnp.float32)
    return replay_add(buffer, task, v[:, None], v[:, None], v, v[:, None] + 1, jnp.zeros(n))


def test_ring_buffer_keeps_the_newest_transitions_of_each_task():
    buffer = replay_init(num_tasks=2, capacity=4, obs_dim=1, act_dim=1)
    buffer = _add(buffer, 0, [1, 2, 3])
    buffer = _add(buffer, 0, [4, 5, 6])  # wraps: 5 and 6 overwrite 1 and 2
    buffer = _add(buffer, 1, [10])
    np.testing.assert_array_equal(buffer.reward[0], [5, 6, 3, 4])
    np.testing.assert_array_equal(buffer.size(), [4, 1])
    np.testing.assert_array_equal(buffer.next_obs[0, :, 0], [6, 7, 4, 5])
    np.testing.assert_array_equal(buffer.reward[1], [10, 0, 0, 0])


def test_sampling_draws_from_all_or_only_the_recent_transitions_of_the_asked_tasks():
    buffer = replay_init(num_tasks=3, capacity=8, obs_dim=1, act_dim=1)
    buffer = _add(buffer, 0, list(range(1, 7)))
    buffer = _add(buffer, 0, list(range(7, 13)))  # holds 5..12
    buffer = _add(buffer, 2, [100, 101])
    tasks = jnp.array([0, 2])
    every = replay_sample(buffer, jax.random.key(0), tasks, 2000)
    assert every.reward.shape == (2, 2000) and every.obs.shape == (2, 2000, 1)
    assert set(np.unique(every.reward[0])) == set(range(5, 13))  # uniform over what it holds
    assert set(np.unique(every.reward[1])) == {100, 101}
    recent = replay_sample(buffer, jax.random.key(1), tasks, 2000, recent=3)
    assert set(np.unique(recent.reward[0])) == {10, 11, 12}
    assert set(np.unique(recent.reward[1])) == {100, 101}  # fewer than 3 held
    np.testing.assert_array_equal(recent.added, [3, 2])
    # every field of a sampled transition comes from the same slot
    np.testing.assert_array_equal(every.next_obs[..., 0], every.reward + 1)


def test_the_memory_budget_is_known_up_front_and_enforced():
    # PEARL's cheetah-vel: 130 tasks, obs 20, action 6; 100k transitions per task
    assert replay_bytes(130, 100_000, 20, 6) == 130 * (100_000 * 4 * 48 + 4)
    assert replay_bytes(130, 100_000, 20, 6) < 4 * 2**30
    with pytest.raises(ConfigError, match="GiB"):
        replay_init(130, 200_000, 20, 6, max_bytes=4 * 2**30)
    with pytest.raises(ConfigError, match="positive"):
        replay_init(0, 10, 1, 1)
    buffer = replay_init(1, 2, 1, 1)
    with pytest.raises(ConfigError, match="cannot add 3"):
        _add(buffer, 0, [1, 2, 3])


def test_adding_and_sampling_compile():
    buffer = replay_init(num_tasks=2, capacity=4, obs_dim=1, act_dim=1)
    add = jax.jit(_add)
    buffer = add(buffer, jnp.asarray(1), [7.0, 8.0])
    out = jax.jit(replay_sample, static_argnums=(3, 4))(
        buffer, jax.random.key(0), jnp.array([1]), 5, 1
    )
    np.testing.assert_array_equal(out.reward, [[8.0] * 5])


def test_extend_writes_each_tasks_valid_rows_in_order_and_skips_the_rest():
    buf = replay_init(num_tasks=3, capacity=4, obs_dim=1, act_dim=1)
    buf = _add(buf, 2, [100, 101, 102])  # task 2 holds 3 rows: its ring wraps next
    obs = jnp.arange(6.0).reshape(2, 3, 1)
    valid = jnp.array([[True, False, True], [True, True, False]])
    buf = replay_extend(
        buf, jnp.array([0, 2]), obs, obs, obs[..., 0], obs, jnp.zeros((2, 3)), valid
    )
    np.testing.assert_array_equal(buf.added, [2, 0, 5])
    np.testing.assert_array_equal(buf.obs[0, :2, 0], [0.0, 2.0])  # the masked row is skipped
    np.testing.assert_array_equal(buf.obs[0, 2:, 0], [0.0, 0.0])
    # task 2: row 3 went to the last free slot, row 4 wrapped onto the oldest
    np.testing.assert_array_equal(buf.obs[2, :, 0], [4.0, 101.0, 102.0, 3.0])
    np.testing.assert_array_equal(buf.added[1], 0)
    cleared = replay_clear(buf, jnp.array([2]))
    np.testing.assert_array_equal(cleared.size(), [2, 0, 0])
