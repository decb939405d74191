"""Supervised few-shot task distributions (MAML's regression benchmark).

A few-shot task is a function to learn from ``K`` labelled examples. The distribution is pure data
plus pure functions, like the RL tasks: ``sample(key, n)`` draws task parameters, ``sample_points``
draws labelled points of one task, ``test_tasks(n)`` is a fixed, seeded held-out set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any


class SinusoidParams(NamedTuple):
    """One sinusoid task ``y = A sin(x - phi)`` (leaves may carry a leading batch axis).

    Attributes:
        amplitude: ``A``.
        phase: ``phi``.
    """

    amplitude: jax.Array
    phase: jax.Array


class Batch(NamedTuple):
    """Labelled points of one task.

    Attributes:
        x: Inputs ``[P, input_dim]``.
        y: Targets ``[P, output_dim]``.
    """

    x: jax.Array
    y: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class FewShotTasks:
    """A named distribution over supervised few-shot tasks.

    Attributes:
        name: Registry name, e.g. ``"sinusoid-k10"``.
        description: One line for ``quickstudy tasks``.
        target: The target function, as text.
        shots: Labelled support examples ``K`` per task.
        input_dim: Size of one input.
        output_dim: Size of one target.
        loss: ``"mse"`` (regression).
        sampler: ``sampler(key, n) -> params`` with leaves ``[n]``.
        points: ``points(key, params, p) -> Batch`` of ``p`` points of one (unbatched) task.
        features: ``features(params) -> [F]``, the task's parameters as network inputs (oracle).
        test_seed: Seed of the held-out tasks.
        num_test: Default number of held-out tasks.
    """

    name: str
    description: str
    target: str
    shots: int
    input_dim: int
    output_dim: int
    loss: str
    sampler: Callable[[jax.Array, int], PyTree]
    points: Callable[[jax.Array, PyTree, int], Batch]
    features: Callable[[PyTree], jax.Array]
    test_seed: int = 2_147_483_647
    num_test: int = 600

    @property
    def num_features(self) -> int:
        """Size of ``features(params)``."""
        return int(self.features(self.sample_one(jax.random.key(0))).shape[0])

    def sample(self, key: jax.Array, n: int) -> PyTree:
        """Draws ``n`` meta-training tasks (leaves ``[n]``); jittable."""
        return self.sampler(key, n)

    def sample_one(self, key: jax.Array) -> PyTree:
        """Draws one meta-training task (unbatched leaves)."""
        return jax.tree.map(lambda x: x[0], self.sample(key, 1))

    def test_tasks(self, n: int | None = None) -> PyTree:
        """The fixed held-out tasks (leaves ``[n]``); the same on every call and machine."""
        return self.sampler(jax.random.key(self.test_seed), self.num_test if n is None else n)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for docs, the CLI and run directories."""
        return {
            "name": self.name,
            "description": self.description,
            "reward": self.target,
            "shots": self.shots,
            "loss": self.loss,
            "split": "continuous",
            "num_test": self.num_test,
        }


AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, float(jnp.pi))
INPUT_RANGE = (-5.0, 5.0)


def sample_sinusoid(key: jax.Array, n: int) -> SinusoidParams:
    """Draws ``n`` sinusoids: ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]`` (Finn et al. 2017, §5.1)."""
    k_a, k_p = jax.random.split(key)
    return SinusoidParams(
        jax.random.uniform(k_a, (n,), minval=AMPLITUDE_RANGE[0], maxval=AMPLITUDE_RANGE[1]),
        jax.random.uniform(k_p, (n,), minval=PHASE_RANGE[0], maxval=PHASE_RANGE[1]),
    )


def sinusoid_points(key: jax.Array, params: SinusoidParams, p: int) -> Batch:
    """``p`` points of one sinusoid: ``x ~ U[-5, 5]``, ``y = A sin(x - phi)``; shapes ``[p, 1]``."""
    x = jax.random.uniform(key, (p, 1), minval=INPUT_RANGE[0], maxval=INPUT_RANGE[1])
    return Batch(x, params.amplitude * jnp.sin(x - params.phase))


def sinusoid_features(params: SinusoidParams) -> jax.Array:
    """``[A, phi]``: what the oracle is told about the task."""
    return jnp.stack([params.amplitude, params.phase])


def sinusoid(shots: int) -> FewShotTasks:
    """MAML's sinusoid regression with ``shots`` support points per task."""
    return FewShotTasks(
        name=f"sinusoid-k{shots}",
        description=(
            f"MAML sinusoid regression: A ~ U[0.1,5], phi ~ U[0,pi], x ~ U[-5,5]; "
            f"{shots}-shot (support and query {shots} points each)."
        ),
        target="y = A sin(x - phi); metric: query MSE after k gradient steps",
        shots=shots,
        input_dim=1,
        output_dim=1,
        loss="mse",
        sampler=sample_sinusoid,
        points=sinusoid_points,
        features=sinusoid_features,
    )
