"""Any Gymnasium environment plus a task sampler as a task distribution.

::

    tasks = from_gymnasium(
        "pendulum-gravity",
        make_env=lambda: gymnasium.make("Pendulum-v1"),
        sample_tasks=lambda rng, n: {"g": rng.uniform(5.0, 15.0, n)},
        set_task=lambda env, task: setattr(env.unwrapped, "g", float(task["g"])),
        horizon=200,
    )

gives a :class:`~quickstudy.tasks.TaskDistribution` stepped on the host that the host-stepping
algorithms train on like any other (``pendulum-gravity`` is registered this way). Gymnasium
environments keep their state inside Python objects, so a run resumed from a checkpoint
restarts the episodes that were in flight: they end as truncated at the first step after the
resume.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable
from typing import ClassVar

import gymnasium
import jax
import numpy as np

from quickstudy.envs.base import Box, Discrete, TimeStep
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.types import PyTree


@dataclasses.dataclass(frozen=True, eq=False)
class GymnasiumHost:
    """A batch of Gymnasium environments behind the host protocol.

    The state of row ``i`` is the id of the Gymnasium environment playing it; ``reset`` takes
    environments from a pool (creating them as needed) and an environment returns to the pool
    once no row refers to it. An id the pool does not know (a state restored from a
    checkpoint) is replaced by a fresh environment on the same task, and its episode ends as
    truncated.

    Attributes:
        make_env: Creates one environment: ``make_env()``, or ``make_env(kind)`` with ``kind``.
        set_task: ``(env, task)`` puts the environment on ``task`` (one row of the params).
        horizon: Steps before an episode is truncated (applied here, whatever the env does).
        kind: ``task -> key`` when tasks need different environment classes (Meta-World's
            ML10/ML45): environments are pooled per key.
        success_key: The ``info`` entry reported as ``info["success"]`` (``None``: none).
    """

    make_env: Callable[..., gymnasium.Env]
    set_task: Callable[[gymnasium.Env, PyTree], None]
    horizon: int
    kind: Callable[[PyTree], Hashable] | None = None
    success_key: str | None = None
    probe_kind: Hashable = None
    host: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "_pool", {})
        object.__setattr__(self, "_live", set())
        probe = self._make(self.probe_kind)
        object.__setattr__(self, "_spaces", (probe.observation_space, probe.action_space))
        probe.close()

    def _make(self, kind: Hashable) -> gymnasium.Env:
        return self.make_env() if self.kind is None else self.make_env(kind)

    def _info(self, success) -> dict[str, np.ndarray]:
        if self.success_key is None:
            return {}
        return {"success": np.asarray(success, np.float32)}

    def observation_space(self, params: PyTree) -> Box:
        """The wrapped environment's observations, flattened to a vector."""
        space = self._spaces[0]
        return Box(-math.inf, math.inf, (int(np.prod(space.shape)),))

    def action_space(self, params: PyTree) -> Box | Discrete:
        """The wrapped environment's actions (``Discrete`` or a ``Box`` of one bound)."""
        space = self._spaces[1]
        if isinstance(space, gymnasium.spaces.Discrete):
            return Discrete(int(space.n))
        low, high = float(np.min(space.low)), float(np.max(space.high))
        return Box(low, high, space.shape)

    def _acquire(self, kind: Hashable) -> int:
        free = [i for i, (k, _) in self._pool.items() if i not in self._live and k == kind]
        if free:
            env_id = free[0]
        else:
            env_id = len(self._pool)
            self._pool[env_id] = (kind, self._make(kind))
        self._live.add(env_id)
        return env_id

    def _start(self, rng, task) -> tuple[int, np.ndarray]:
        env_id = self._acquire(None if self.kind is None else self.kind(task))
        env = self._pool[env_id][1]
        self.set_task(env, task)
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        return env_id, np.asarray(obs, np.float32).ravel()

    def reset(self, rng: np.random.Generator, params: PyTree) -> tuple[dict, TimeStep]:
        """Starts one episode per row of ``params`` on freshly assigned environments."""
        n = len(jax.tree.leaves(params)[0])
        ids, obs = zip(*(self._start(rng, _row(params, i)) for i in range(n)), strict=True)
        false = np.zeros((n,), bool)
        state = {"env": np.asarray(ids, np.int64), "t": np.zeros((n,), np.int32)}
        info = self._info(np.zeros((n,)))
        return state, TimeStep(np.stack(obs), np.zeros((n,), np.float32), false, false, info)

    def step(self, rng, state: dict, action: np.ndarray, params: PyTree):
        """Steps each row's environment; rows whose environment is unknown restart truncated."""
        ids, t = np.array(state["env"]), state["t"] + 1
        self._live.intersection_update(ids.tolist())
        n = len(ids)
        obs, reward, success = [], np.zeros((n,), np.float32), np.zeros((n,), np.float32)
        terminated, truncated = np.zeros((n,), bool), np.zeros((n,), bool)
        for i in range(n):
            entry = self._pool.get(int(ids[i]))
            env = None if entry is None else entry[1]
            if env is None:  # restored from a checkpoint: a fresh episode, cut here
                ids[i], o = self._start(rng, _row(params, i))
                obs.append(o)
                truncated[i] = True
                continue
            a = action[i]
            if isinstance(env.action_space, gymnasium.spaces.Discrete):
                a = int(a)
            o, r, term, trunc, info = env.step(a)
            if self.success_key is not None:
                success[i] = float(info.get(self.success_key, 0.0))
            obs.append(np.asarray(o, np.float32).ravel())
            reward[i], terminated[i] = r, term
            truncated[i] = (trunc or t[i] >= self.horizon) and not term
        state = {"env": ids, "t": t.astype(np.int32)}
        ts = TimeStep(np.stack(obs), reward, terminated, truncated, self._info(success))
        return state, ts


def _row(params: PyTree, i: int) -> PyTree:
    return jax.tree.map(lambda x: np.asarray(x)[i], params)


def from_gymnasium(
    name: str,
    make_env: Callable[[], gymnasium.Env],
    sample_tasks: Callable[[np.random.Generator, int], PyTree],
    set_task: Callable[[gymnasium.Env, PyTree], None],
    horizon: int,
    episodes: int = 2,
    description: str = "",
    reward: str = "the wrapped environment's",
    num_test: int = 100,
    test_seed: int = 2_147_483_647,
) -> TaskDistribution:
    """A task distribution over a Gymnasium environment.

    Args:
        name: Name of the distribution (register it with :func:`quickstudy.tasks.register`
            to train on it from the command line).
        make_env: Creates one environment (called as often as the batch needs).
        sample_tasks: ``(rng, n) -> params`` with leaves ``[n, ...]`` (NumPy).
        set_task: ``(env, task)`` puts an environment on one task (a row of the params).
        horizon: Steps before an episode is truncated.
        episodes: Episodes per trial for the in-context learners.
        description: One line for ``quickstudy tasks``.
        reward: The reward, as text.
        num_test: Held-out tasks, drawn once from ``test_seed``.
        test_seed: Seed of the held-out set.
    """

    def sampler(key: jax.Array, n: int) -> PyTree:
        seed = jax.random.randint(key, (), 0, 2**31 - 1)
        shapes = jax.tree.map(_f32_struct, sample_tasks(np.random.default_rng(0), n))

        def draw(s):
            tasks = sample_tasks(np.random.default_rng(int(s)), n)
            return jax.tree.map(lambda x: np.asarray(x, np.float32), tasks)

        return jax.pure_callback(draw, shapes, seed)

    return TaskDistribution(
        name=name,
        env=GymnasiumHost(make_env, set_task, horizon),
        description=description or f"Gymnasium environment with sampled tasks: {name}",
        reward=reward,
        episodes=episodes,
        sampler=sampler,
        num_test=num_test,
        test_seed=test_seed,
    )


def _f32_struct(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), np.float32)
