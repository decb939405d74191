"""The environment contracts: pure functions whose task is a ``params`` pytree.

An environment is a frozen dataclass that holds only *static* sizes (number of arms, horizon) and
exposes pure functions::

    reset(key, params)               -> (state, TimeStep)
    step(key, state, action, params) -> (state, TimeStep)

Everything that varies between tasks (arm means, goals, transition tables) lives in ``params`` as
array leaves, so ``jax.vmap`` over tasks works. ``reset`` never samples a task: task sampling is
the job of :class:`quickstudy.tasks.TaskDistribution`.

Environments stepped outside JAX (native physics) follow :class:`HostEnvironment`: the same two
functions, batched, on NumPy arrays, with a NumPy random generator instead of a key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class TimeStep(NamedTuple):
    """What an environment emits after ``reset`` or ``step``.

    Attributes:
        obs: Observation, shape ``observation_space(params).shape``.
        reward: Scalar reward of the transition (0 after ``reset``).
        terminated: True when the episode reached a terminal state (no bootstrapping).
        truncated: True when the episode was cut by a time limit (bootstrap from ``obs``).
        info: Dict of scalar arrays with a fixed structure for every step (e.g. ``success``).
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Discrete:
    """A finite action or observation space ``{0, ..., n - 1}``."""

    n: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one element: a scalar."""
        return ()

    def sample(self, key: jax.Array) -> jax.Array:
        """Draws one element uniformly."""
        return jax.random.randint(key, (), 0, self.n)

    def contains(self, x: jax.Array) -> jax.Array:
        """Whether ``x`` is a valid element."""
        return (x >= 0) & (x < self.n)


@dataclasses.dataclass(frozen=True)
class Box:
    """A box ``[low, high]^shape`` of real vectors (bounds may be infinite)."""

    low: float
    high: float
    shape: tuple[int, ...]

    def sample(self, key: jax.Array) -> jax.Array:
        """Draws one element uniformly (bounded boxes only; unbounded ones draw N(0, 1))."""
        if math.isfinite(self.low) and math.isfinite(self.high):
            return jax.random.uniform(key, self.shape, minval=self.low, maxval=self.high)
        return jax.random.normal(key, self.shape)

    def contains(self, x: jax.Array) -> jax.Array:
        """Whether ``x`` lies in the box."""
        return jnp.all((x >= self.low) & (x <= self.high))


Space = Discrete | Box


class Environment(Protocol):
    """Structural type of every quickstudy environment (see the module docstring).

    Attributes:
        horizon: Steps before an episode is truncated (static).
    """

    horizon: int

    def reset(self, key: jax.Array, params: PyTree) -> tuple[PyTree, TimeStep]:
        """Starts an episode of the task ``params``."""
        ...

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> tuple[PyTree, TimeStep]:
        """Advances one step."""
        ...

    def observation_space(self, params: PyTree) -> Space:
        """The observation space (static shape)."""
        ...

    def action_space(self, params: PyTree) -> Space:
        """The action space (static shape)."""
        ...


class HostEnvironment(Protocol):
    """A batch of environments stepped on the host (NumPy arrays, outside ``jit``).

    Every array has a leading batch axis: ``reset`` starts ``n`` environments on the tasks
    ``params`` (leaves ``[n, ...]``) and ``step`` advances ``B`` of them, each on its own task,
    so one batch can hold many tasks. The state is a pytree of NumPy arrays (so it can be
    checkpointed and rows of it replaced); ``TimeStep`` fields are NumPy arrays ``[n, ...]``
    (float32 observations and rewards, bool flags). Randomness comes from ``rng``, which the
    caller derives from its JAX key, so runs stay reproducible.

    Attributes:
        host: Always true: marks the protocol (collectors dispatch on it).
        horizon: Steps before an episode is truncated.
    """

    host: ClassVar[bool]
    horizon: int

    def reset(self, rng: np.random.Generator, params: PyTree) -> tuple[PyTree, TimeStep]:
        """Starts ``n`` episodes on the tasks ``params`` (leaves ``[n, ...]``)."""
        ...

    def step(
        self, rng: np.random.Generator, state: PyTree, action: np.ndarray, params: PyTree
    ) -> tuple[PyTree, TimeStep]:
        """Advances every environment of the batch by one step."""
        ...

    def observation_space(self, params: PyTree) -> Space:
        """The observation space of one environment (``params`` of one task)."""
        ...

    def action_space(self, params: PyTree) -> Space:
        """The action space of one environment (``params`` of one task)."""
        ...


def is_host(env: Any) -> bool:
    """Whether ``env`` is stepped on the host (:class:`HostEnvironment`) rather than in JAX."""
    return bool(getattr(env, "host", False))


def tree_select(pred: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Leafwise ``where(pred, on_true, on_false)`` for a scalar ``pred``."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def timestep(
    obs: jax.Array,
    reward: jax.Array | float = 0.0,
    terminated: jax.Array | bool = False,
    truncated: jax.Array | bool = False,
    **info: jax.Array,
) -> TimeStep:
    """Builds a :class:`TimeStep` with canonical dtypes (float32 reward, bool flags)."""
    return TimeStep(
        obs=obs,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.asarray(truncated, bool),
        info={k: jnp.asarray(v) for k, v in info.items()},
    )
