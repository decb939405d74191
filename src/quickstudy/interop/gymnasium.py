"""Every task distribution as a ``gymnasium.Env`` and a Gymnasium vector env.

::

    env = TaskEnv("cheetah-vel")                 # one environment; a training task per reset
    env.set_task(env.sample_tasks(1, split="test")[0])   # or reset(options={"task": task})
    vec = TaskVectorEnv("nav2d", num_envs=16)    # natively batched, same-step autoreset

A task is one row of the distribution's parameters (a pytree of NumPy arrays, e.g.
``GoalParams(goal=array([0.1, -0.3]))``). Without a set task, each ``reset`` draws a fresh
meta-training task; a task passed to ``set_task`` or ``reset(options={"task": ...})`` stays
until another is set (``set_task(None)`` goes back to drawing). Pure-JAX environments are
stepped by jitted functions, host ones (MuJoCo) natively; randomness comes from the
environment's ``np_random``, so ``reset(seed=...)`` makes it reproducible.

The other direction, any Gymnasium environment as a task distribution, is
:func:`quickstudy.tasks.gymnasium_import.from_gymnasium` (re-exported here).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from quickstudy.envs.base import Box, Discrete, TimeStep, is_host
from quickstudy.tasks import make as make_task
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.gymnasium_import import from_gymnasium
from quickstudy.tasks.trial import tree_rows
from quickstudy.types import PyTree

__all__ = ["TaskEnv", "TaskVectorEnv", "from_gymnasium", "to_gymnasium_space"]


def to_gymnasium_space(space: Box | Discrete) -> gymnasium.spaces.Space:
    """The Gymnasium space of a quickstudy :class:`Box` or :class:`Discrete`."""
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(space.n)
    return gymnasium.spaces.Box(space.low, space.high, space.shape, np.float32)


def _task_distribution(task: str | TaskDistribution) -> TaskDistribution:
    dist = make_task(task) if isinstance(task, str) else task
    if not isinstance(dist, TaskDistribution):
        raise TypeError(f"{dist.name} is a supervised few-shot task, not an environment")
    return dist


class _Batch:
    """Batched reset/step of a task distribution's environment on NumPy arrays."""

    def __init__(self, dist: TaskDistribution):
        self.dist, self.env = dist, dist.env
        self.host = is_host(self.env)
        if not self.host:
            env = self.env
            self._reset = jax.jit(jax.vmap(env.reset))
            self._step = jax.jit(jax.vmap(env.step))

    def sample_tasks(self, rng: np.random.Generator, n: int, split: str) -> PyTree:
        if split == "test":
            held_out = jax.device_get(self.dist.test_tasks())
            idx = rng.integers(0, len(jax.tree.leaves(held_out)[0]), n)
            return tree_rows(held_out, idx)
        if split != "train":
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        key = jax.random.key(int(rng.integers(2**31)))
        return jax.device_get(self.dist.sample(key, n))

    def _keys(self, rng: np.random.Generator, n: int) -> jax.Array:
        return jax.random.split(jax.random.key(int(rng.integers(2**31))), n)

    def reset(self, rng: np.random.Generator, tasks: PyTree) -> tuple[Any, TimeStep]:
        if self.host:
            return self.env.reset(rng, tasks)
        n = len(jax.tree.leaves(tasks)[0])
        state, ts = self._reset(self._keys(rng, n), tasks)
        return state, jax.device_get(ts)

    def step(self, rng, state, action, tasks) -> tuple[Any, TimeStep]:
        if self.host:
            return self.env.step(rng, state, action, tasks)
        n = len(jax.tree.leaves(tasks)[0])
        state, ts = self._step(self._keys(rng, n), state, jnp.asarray(action), tasks)
        return state, jax.device_get(ts)


def _one(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: np.asarray(x)[None], tree)


def _info(ts: TimeStep, i: int | None = None) -> dict[str, Any]:
    return {k: (np.asarray(v) if i is None else np.asarray(v)[i]) for k, v in ts.info.items()}


class TaskEnv(gymnasium.Env):
    """One environment of a task distribution, as a ``gymnasium.Env``.

    Args:
        task: A registered task name or a :class:`~quickstudy.tasks.TaskDistribution`.
        split: Where the tasks drawn at reset come from: ``"train"`` (fresh meta-training
            tasks) or ``"test"`` (the held-out set).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, task: str | TaskDistribution, split: str = "train"):
        self.dist = _task_distribution(task)
        self.split = split
        self._batch = _Batch(self.dist)
        example = self.dist.sample_one(jax.random.key(0))
        self.observation_space = to_gymnasium_space(self.dist.env.observation_space(example))
        self.action_space = to_gymnasium_space(self.dist.env.action_space(example))
        self._fixed: PyTree | None = None
        self.task: PyTree | None = None
        self._state = None

    def sample_tasks(self, n: int, split: str | None = None) -> list[PyTree]:
        """``n`` tasks from the meta-training distribution or the held-out set."""
        tasks = self._batch.sample_tasks(self.np_random, n, split or self.split)
        return [jax.tree.map(lambda x, i=i: np.asarray(x)[i], tasks) for i in range(n)]

    def set_task(self, task: PyTree | None) -> None:
        """Fixes the task of the following episodes (``None``: draw one per reset)."""
        self._fixed = task

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode on the set task, ``options["task"]``, or a freshly drawn one."""
        super().reset(seed=seed)
        if options and "task" in options:
            self._fixed = options["task"]
        if self._fixed is None:
            self.task = self.sample_tasks(1)[0]
        else:
            self.task = self._fixed
        self._state, ts = self._batch.reset(self.np_random, _one(self.task))
        return np.asarray(ts.obs[0], np.float32), _info(ts, 0)

    def step(self, action):
        """One step of the current episode."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action)[None]
        self._state, ts = self._batch.step(self.np_random, self._state, action, _one(self.task))
        return (
            np.asarray(ts.obs[0], np.float32),
            float(ts.reward[0]),
            bool(ts.terminated[0]),
            bool(ts.truncated[0]),
            _info(ts, 0),
        )


class TaskVectorEnv(VectorEnv):
    """``num_envs`` environments of a task distribution stepped as one batch.

    Each environment has its own task, drawn at its reset (from ``split``) unless tasks were
    set with :meth:`set_tasks`. Episodes that end are reset in the same step
    (``AutoresetMode.SAME_STEP``): the returned observation starts the next episode and
    ``info["final_obs"]``/``info["final_info"]`` hold the last one's.
    """

    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: str | TaskDistribution, num_envs: int, split: str = "train"):
        self.dist = _task_distribution(task)
        self.num_envs, self.split = num_envs, split
        self._batch = _Batch(self.dist)
        example = self.dist.sample_one(jax.random.key(0))
        self.single_observation_space = to_gymnasium_space(self.dist.env.observation_space(example))
        self.single_action_space = to_gymnasium_space(self.dist.env.action_space(example))
        self.observation_space = gymnasium.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self._fixed: PyTree | None = None
        self.tasks: PyTree | None = None
        self._state = None

    def set_tasks(self, tasks: PyTree | None) -> None:
        """Fixes every environment's task (leaves ``[num_envs, ...]``; ``None``: draw them)."""
        self._fixed = tasks

    def _draw(self, n: int) -> PyTree:
        return self._batch.sample_tasks(self.np_random, n, self.split)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Resets every environment (``options["tasks"]`` sets the tasks, as ``set_tasks``)."""
        super().reset(seed=seed)
        if options and "tasks" in options:
            self._fixed = options["tasks"]
        self.tasks = self._fixed if self._fixed is not None else self._draw(self.num_envs)
        self._state, ts = self._batch.reset(self.np_random, self.tasks)
        return np.asarray(ts.obs, np.float32), _info(ts)

    def step(self, actions):
        """Steps every environment; ended episodes restart at once on a new (or fixed) task."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        state, ts = self._batch.step(self.np_random, self._state, np.asarray(actions), self.tasks)
        obs = np.asarray(ts.obs, np.float32)
        terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
        info = _info(ts)
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            fresh = tree_rows(self._fixed, idx) if self._fixed is not None else self._draw(len(idx))
            self.tasks = _set_rows(self.tasks, idx, fresh)
            new_state, ts_reset = self._batch.reset(self.np_random, fresh)
            state = _set_rows(state, idx, new_state)
            info["final_obs"] = np.where(done[:, None], obs, 0.0).astype(np.float32)
            info["final_info"] = {k: v.copy() for k, v in info.items() if k != "final_obs"}
            obs = obs.copy()
            obs[idx] = np.asarray(ts_reset.obs, np.float32)
        self._state = state
        return obs, np.asarray(ts.reward, np.float32), terminated, truncated, info


def _set_rows(tree: PyTree, idx: np.ndarray, rows: PyTree) -> PyTree:
    def put(x, r):
        x = np.array(x)
        x[idx] = np.asarray(r)
        return x

    return jax.tree.map(put, tree, rows)
