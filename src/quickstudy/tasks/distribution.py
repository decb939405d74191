"""Task distributions p(M): seeded sampling and fixed held-out test sets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.base import Environment

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class TaskDistribution:
    """A named distribution over tasks of one environment.

    Either ``sampler`` draws from a continuous distribution (then the meta-train split is fresh
    draws from the caller's key and the meta-test split is a fixed set drawn from ``test_seed``,
    disjoint from training with probability one, or the given ``test_set``), or
    ``train_set``/``test_set`` hold a finite, seeded split as batched pytrees (then ``sample``
    draws uniformly from ``train_set``).

    Attributes:
        name: Registry name, e.g. ``"bandit-k10-n100"``; a changed definition gets a new name.
        env: The environment whose ``params`` are the tasks.
        description: One line for ``quickstudy tasks``.
        reward: The reward formula, as text.
        episodes: Default number of episodes ``K`` per trial (adaptation budget).
        sampler: ``sampler(key, n) -> params`` with leaves ``[n, ...]`` (continuous p(M)).
        train_set: Finite meta-train tasks, leaves ``[N_train, ...]``.
        test_set: Finite meta-test tasks, leaves ``[N_test, ...]`` (with ``sampler``: held-out
            tasks the sampler cannot draw, such as mazes outside its fixed training set).
        test_seed: Seed of the held-out set for continuous distributions.
        num_test: Default number of held-out tasks for meta-testing.
    """

    name: str
    env: Environment
    description: str
    reward: str
    episodes: int
    sampler: Callable[[jax.Array, int], PyTree] | None = None
    train_set: PyTree | None = None
    test_set: PyTree | None = None
    test_seed: int = 2_147_483_647
    num_test: int = 1000

    def __post_init__(self):
        if (self.sampler is None) == (self.train_set is None):
            raise ValueError(f"{self.name}: give exactly one of `sampler` or `train_set`.")
        if self.train_set is not None and self.test_set is None:
            raise ValueError(f"{self.name}: a finite split needs both `train_set` and `test_set`.")

    @property
    def finite(self) -> bool:
        """Whether the task set is a finite, fixed split."""
        return self.train_set is not None

    def sample(self, key: jax.Array, n: int) -> PyTree:
        """Draws ``n`` meta-training tasks (leaves ``[n, ...]``); jittable."""
        if self.sampler is not None:
            return self.sampler(key, n)
        size = jax.tree.leaves(self.train_set)[0].shape[0]
        idx = jax.random.randint(key, (n,), 0, size)
        return jax.tree.map(lambda x: jnp.asarray(x)[idx], self.train_set)

    def sample_one(self, key: jax.Array) -> PyTree:
        """Draws a single meta-training task (unbatched leaves)."""
        return jax.tree.map(lambda x: x[0], self.sample(key, 1))

    def test_tasks(self, n: int | None = None) -> PyTree:
        """The fixed held-out tasks (leaves ``[n, ...]``); the same on every call and machine.

        Args:
            n: How many; defaults to ``num_test`` (continuous) or the whole test set (finite).
                For a finite set, ``n`` larger than the set cycles through it.
        """
        if self.test_set is not None:
            size = jax.tree.leaves(self.test_set)[0].shape[0]
            idx = np.arange(size if n is None else n) % size
            return jax.tree.map(lambda x: jnp.asarray(x)[idx], self.test_set)
        return self.sampler(jax.random.key(self.test_seed), self.num_test if n is None else n)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for docs, the CLI and run directories."""
        return {
            "name": self.name,
            "description": self.description,
            "reward": self.reward,
            "episodes_per_trial": self.episodes,
            "split": "finite" if self.finite else "continuous",
            "num_test": (
                int(jax.tree.leaves(self.test_set)[0].shape[0])
                if self.test_set is not None
                else self.num_test
            ),
        }
