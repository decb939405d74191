"""Per-task replay buffers of fixed size in one set of arrays, for off-policy meta-RL (PEARL).

Every task has its own ring buffer of ``capacity`` transitions; all of them live in arrays with
a leading task axis, allocated once, so the memory is known before training starts
(:func:`replay_bytes`) and the buffer is a pytree that checkpoints and ``jit``s like any state.
PEARL samples two kinds of batch from it (Rakelly et al. 2019, §4.3): context batches from a
task's *recent* data (``recent``: the newest transitions only, so that the context comes from the
current posterior's exploration) and RL batches from *all* of it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.errors import ConfigError


class TaskReplay(NamedTuple):
    """Ring buffers ``[tasks, capacity, ...]`` and, per task, the transitions ever added.

    Attributes:
        obs: Observations ``[K, C, D]``.
        action: Actions ``[K, C, A]``.
        reward: Rewards ``[K, C]``.
        next_obs: Next observations ``[K, C, D]``.
        done: Termination flags ``[K, C]``.
        added: Transitions ever added per task ``[K]`` (int32); the next write is at
            ``added % C``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    done: jax.Array
    added: jax.Array

    @property
    def capacity(self) -> int:
        """Transitions kept per task."""
        return self.reward.shape[1]

    def size(self) -> jax.Array:
        """Transitions held per task ``[K]``."""
        return jnp.minimum(self.added, self.capacity)


def replay_bytes(num_tasks: int, capacity: int, obs_dim: int, act_dim: int) -> int:
    """Bytes :func:`replay_init` allocates (float32 transitions, int32 counters)."""
    per_transition = 4 * (2 * obs_dim + act_dim + 2)
    return num_tasks * (capacity * per_transition + 4)


def replay_init(
    num_tasks: int, capacity: int, obs_dim: int, act_dim: int, max_bytes: int | None = None
) -> TaskReplay:
    """Empty buffers for ``num_tasks`` tasks of ``capacity`` transitions each.

    Raises:
        ConfigError: A non-positive size, or more than ``max_bytes`` would be allocated.
    """
    if min(num_tasks, capacity, obs_dim, act_dim) <= 0:
        raise ConfigError(
            f"replay sizes must be positive, got tasks={num_tasks}, capacity={capacity}, "
            f"obs_dim={obs_dim}, act_dim={act_dim}"
        )
    need = replay_bytes(num_tasks, capacity, obs_dim, act_dim)
    if max_bytes is not None and need > max_bytes:
        raise ConfigError(
            f"a replay of {num_tasks} tasks x {capacity:,} transitions needs {need / 2**30:.2f} "
            f"GiB, over the budget of {max_bytes / 2**30:.2f} GiB; lower the capacity"
        )
    k, c = num_tasks, capacity
    return TaskReplay(
        obs=jnp.zeros((k, c, obs_dim), jnp.float32),
        action=jnp.zeros((k, c, act_dim), jnp.float32),
        reward=jnp.zeros((k, c), jnp.float32),
        next_obs=jnp.zeros((k, c, obs_dim), jnp.float32),
        done=jnp.zeros((k, c), jnp.float32),
        added=jnp.zeros((k,), jnp.int32),
    )


def replay_add(
    buffer: TaskReplay,
    task: jax.Array | int,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    next_obs: jax.Array,
    done: jax.Array,
) -> TaskReplay:
    """Appends ``N`` transitions of one task, overwriting its oldest when full.

    Args:
        buffer: The buffers.
        task: Index of the task (a traced integer is fine).
        obs: Observations ``[N, D]`` (``N`` at most the capacity).
        action: Actions ``[N, A]``.
        reward: Rewards ``[N]``.
        next_obs: Next observations ``[N, D]``.
        done: Termination flags ``[N]``.

    Returns:
        The buffers with the transitions written.
    """
    n = reward.shape[0]
    if n > buffer.capacity:
        raise ConfigError(f"cannot add {n} transitions to a buffer of {buffer.capacity}")
    slots = (buffer.added[task] + jnp.arange(n)) % buffer.capacity
    new = (obs, action, reward, next_obs, done)
    fields = {
        name: getattr(buffer, name).at[task, slots].set(jnp.asarray(value, jnp.float32))
        for name, value in zip(("obs", "action", "reward", "next_obs", "done"), new, strict=True)
    }
    return TaskReplay(**fields, added=buffer.added.at[task].add(n))


def replay_sample(
    buffer: TaskReplay,
    key: jax.Array,
    tasks: jax.Array,
    batch: int,
    recent: int | None = None,
) -> TaskReplay:
    """Uniform samples with replacement from each of ``tasks``' buffers.

    Args:
        buffer: The buffers; every sampled task must hold at least one transition.
        key: PRNG key.
        tasks: Task indices ``[M]``.
        batch: Transitions per task.
        recent: Sample only from the newest ``recent`` transitions of each task (PEARL's
            context batches); ``None``: from all it holds (RL batches).

    Returns:
        A :class:`TaskReplay` of the samples: fields ``[M, batch, ...]``; ``added`` is the
        number of transitions each task's draw was made from ``[M]``.
    """
    held = buffer.size()[tasks]
    pool = held if recent is None else jnp.minimum(held, recent)
    u = jax.random.uniform(key, (tasks.shape[0], batch))
    back = jnp.minimum((u * pool[:, None]).astype(jnp.int32), pool[:, None] - 1)
    # the newest transition sits just before the write position; step back from it
    slots = (buffer.added[tasks][:, None] - 1 - back) % buffer.capacity
    rows = tasks[:, None]
    return TaskReplay(
        obs=buffer.obs[rows, slots],
        action=buffer.action[rows, slots],
        reward=buffer.reward[rows, slots],
        next_obs=buffer.next_obs[rows, slots],
        done=buffer.done[rows, slots],
        added=pool,
    )


def replay_extend(
    buffer: TaskReplay,
    tasks: jax.Array,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    next_obs: jax.Array,
    done: jax.Array,
    valid: jax.Array | None = None,
) -> TaskReplay:
    """Appends up to ``N`` transitions to each of ``S`` distinct tasks at once.

    Rows where ``valid`` is false (steps after an episode ended in a fixed-length collection)
    are skipped, so each task receives exactly its valid transitions, in order.

    Args:
        buffer: The buffers.
        tasks: Distinct task indices ``[S]``.
        obs: Observations ``[S, N, D]`` (``N`` at most the capacity).
        action: Actions ``[S, N, A]``.
        reward: Rewards ``[S, N]``.
        next_obs: Next observations ``[S, N, D]``.
        done: Termination flags ``[S, N]``.
        valid: Which rows to add ``[S, N]`` (``None``: all).

    Returns:
        The buffers with the transitions written.

    Raises:
        ConfigError: ``N`` exceeds the capacity.
    """
    n = reward.shape[1]
    if n > buffer.capacity:
        raise ConfigError(f"cannot add {n} transitions to a buffer of {buffer.capacity}")
    valid = jnp.ones(reward.shape, bool) if valid is None else valid.astype(bool)
    offset = jnp.cumsum(valid, axis=1) - 1
    slots = (buffer.added[tasks][:, None] + offset) % buffer.capacity
    slots = jnp.where(valid, slots, buffer.capacity)  # out of range: dropped by the scatter
    rows = tasks[:, None]
    new = (obs, action, reward, next_obs, done)
    fields = {
        name: getattr(buffer, name)
        .at[rows, slots]
        .set(jnp.asarray(value, jnp.float32), mode="drop")
        for name, value in zip(("obs", "action", "reward", "next_obs", "done"), new, strict=True)
    }
    added = buffer.added.at[tasks].add(valid.sum(axis=1).astype(jnp.int32))
    return TaskReplay(**fields, added=added)


def replay_clear(buffer: TaskReplay, tasks: jax.Array) -> TaskReplay:
    """Empties the buffers of ``tasks`` ``[S]`` (their old rows are overwritten as new come)."""
    return buffer._replace(added=buffer.added.at[tasks].set(0))


class SequenceReplay(NamedTuple):
    """A ring buffer of fixed-length segments of experience, for recurrent off-policy learners.

    Each segment is ``L`` consecutive steps of one environment as the collector produced them
    (trials may start inside it: ``start``), with the ``L + 1``-th observation that follows its
    last step and the policy's memory before its first (a stored carry, as in R2D2), so a
    learner can recompute the memory at every step with its current weights.

    Attributes:
        obs: Observations ``[C, L + 1, D]`` (the last one follows the segment).
        start: The memory is reset before this step ``[C, L + 1]`` (bool).
        carry: The memory before the first step ``[C, H]``.
        action: Actions ``[C, L, A]``.
        reward: Rewards ``[C, L]``.
        done: Termination flags ``[C, L]``.
        added: Segments ever added (int32 scalar); the next write is at ``added % C``.
    """

    obs: jax.Array
    start: jax.Array
    carry: jax.Array
    action: jax.Array
    reward: jax.Array
    done: jax.Array
    added: jax.Array

    @property
    def capacity(self) -> int:
        """Segments kept."""
        return self.reward.shape[0]

    def size(self) -> jax.Array:
        """Segments held (int32 scalar)."""
        return jnp.minimum(self.added, self.capacity)


def sequence_replay_bytes(
    capacity: int, length: int, obs_dim: int, act_dim: int, carry_dim: int
) -> int:
    """Bytes :func:`sequence_replay_init` allocates."""
    per_segment = 4 * ((length + 1) * obs_dim + carry_dim + length * (act_dim + 2))
    return capacity * (per_segment + (length + 1)) + 4


def sequence_replay_init(
    capacity: int, length: int, obs_dim: int, act_dim: int, carry_dim: int
) -> SequenceReplay:
    """An empty buffer of ``capacity`` segments of ``length`` steps.

    Raises:
        ConfigError: A non-positive size.
    """
    if min(capacity, length, obs_dim, act_dim, carry_dim) <= 0:
        raise ConfigError(
            f"replay sizes must be positive, got capacity={capacity}, length={length}, "
            f"obs_dim={obs_dim}, act_dim={act_dim}, carry_dim={carry_dim}"
        )
    c, n = capacity, length
    return SequenceReplay(
        obs=jnp.zeros((c, n + 1, obs_dim), jnp.float32),
        start=jnp.zeros((c, n + 1), bool),
        carry=jnp.zeros((c, carry_dim), jnp.float32),
        action=jnp.zeros((c, n, act_dim), jnp.float32),
        reward=jnp.zeros((c, n), jnp.float32),
        done=jnp.zeros((c, n), jnp.float32),
        added=jnp.zeros((), jnp.int32),
    )


def sequence_replay_add(buffer: SequenceReplay, segments: SequenceReplay) -> SequenceReplay:
    """Appends ``N`` segments (a :class:`SequenceReplay` whose fields lead with ``[N]``).

    The oldest segments are overwritten when the buffer is full; ``segments.added`` is
    ignored.

    Raises:
        ConfigError: More segments than the capacity, or segments of another length.
    """
    n = segments.reward.shape[0]
    if n > buffer.capacity:
        raise ConfigError(f"cannot add {n} segments to a buffer of {buffer.capacity}")
    if segments.reward.shape[1:] != buffer.reward.shape[1:]:
        raise ConfigError(
            f"segments of {segments.reward.shape[1]} steps do not fit a buffer of "
            f"{buffer.reward.shape[1]}-step segments"
        )
    slots = (buffer.added + jnp.arange(n)) % buffer.capacity
    fields = {
        name: getattr(buffer, name)
        .at[slots]
        .set(jnp.asarray(getattr(segments, name), getattr(buffer, name).dtype))
        for name in SequenceReplay._fields[:-1]
    }
    return SequenceReplay(**fields, added=buffer.added + n)


def sequence_replay_sample(buffer: SequenceReplay, key: jax.Array, batch: int) -> SequenceReplay:
    """``batch`` segments drawn uniformly with replacement from those held (at least one).

    Returns:
        A :class:`SequenceReplay` of the samples (fields ``[batch, ...]``; ``added`` is the
        number of segments the draw was made from).
    """
    held = buffer.size()
    idx = jax.random.randint(key, (batch,), 0, jnp.maximum(held, 1))
    rows = {name: getattr(buffer, name)[idx] for name in SequenceReplay._fields[:-1]}
    return SequenceReplay(**rows, added=held)
