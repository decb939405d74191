"""Supervised few-shot task distributions (MAML's regression and classification benchmarks).

A few-shot task is a function to learn from ``K`` labelled examples (per class, for N-way
classification). The distribution is pure data plus pure functions, like the RL tasks:
``sample(key, n)`` draws task parameters, ``sets(key, task, support, query)`` draws disjoint
labelled support and query sets of one task, ``test_tasks(n)`` is a fixed, seeded held-out set
(for classification: of held-out classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.errors import ConfigError

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
        name: Registry name, e.g. ``"sinusoid-k10"`` or ``"fewshot-glyphs-5way-1shot"``.
        description: One line for ``quickstudy tasks``.
        target: The target function or labels, as text.
        shots: Labelled support examples ``K`` (per class for classification).
        input_shape: Shape of one input, e.g. ``(1,)`` or ``(28, 28, 1)``.
        output_dim: Size of one target (regression) or the number of classes ``N``.
        loss: ``"mse"`` (regression) or ``"xent"`` (classification, one-hot targets).
        sampler: ``sampler(key, n) -> params`` with leaves ``[n, ...]``: meta-training tasks.
        sets: ``sets(key, params, support, query) -> (Batch, Batch)`` of one (unbatched) task;
            disjoint draws; counts are per class for classification.
        features: ``features(params) -> [F]``, the task's parameters as network inputs (oracle);
            ``None`` where no oracle is defined.
        test_sampler: Draws held-out tasks (default: ``sampler``); seeded with ``test_seed``.
        max_query: Most query examples a task has after its support set (per class), if finite.
        test_seed: Seed of the held-out tasks.
        num_test: Default number of held-out tasks.
    """

    name: str
    description: str
    target: str
    shots: int
    input_shape: tuple[int, ...]
    output_dim: int
    loss: str
    sampler: Callable[[jax.Array, int], PyTree]
    sets: Callable[[jax.Array, PyTree, int, int], tuple[Batch, Batch]]
    features: Callable[[PyTree], jax.Array] | None = None
    test_sampler: Callable[[jax.Array, int], PyTree] | None = None
    max_query: int | None = None
    test_seed: int = 2_147_483_647
    num_test: int = 600

    @property
    def num_features(self) -> int:
        """Size of ``features(params)`` (0 without an oracle)."""
        if self.features is None:
            return 0
        return int(self.features(self.sample_one(jax.random.key(0))).shape[0])

    def sample(self, key: jax.Array, n: int) -> PyTree:
        """Draws ``n`` meta-training tasks (leaves ``[n, ...]``); jittable."""
        return self.sampler(key, n)

    def sample_one(self, key: jax.Array) -> PyTree:
        """Draws one meta-training task (unbatched leaves)."""
        return jax.tree.map(lambda x: x[0], self.sample(key, 1))

    def test_tasks(self, n: int | None = None) -> PyTree:
        """The fixed held-out tasks (leaves ``[n, ...]``); the same on every call and machine."""
        sampler = self.test_sampler or self.sampler
        return sampler(jax.random.key(self.test_seed), self.num_test if n is None else n)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for docs, the CLI and run directories."""
        return {
            "name": self.name,
            "description": self.description,
            "reward": self.target,
            "shots": self.shots,
            "loss": self.loss,
            "split": "continuous" if self.test_sampler is None else "held-out classes",
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


def sinusoid_sets(
    key: jax.Array, params: SinusoidParams, support: int, query: int
) -> tuple[Batch, Batch]:
    """Independent support and query points of one sinusoid."""
    k_s, k_q = jax.random.split(key)
    return sinusoid_points(k_s, params, support), sinusoid_points(k_q, params, query)


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
        input_shape=(1,),
        output_dim=1,
        loss="mse",
        sampler=sample_sinusoid,
        sets=sinusoid_sets,
        features=sinusoid_features,
    )


class ClassTask(NamedTuple):
    """One N-way task: which classes, in which label order, rotated by how much.

    Attributes:
        classes: Class ids ``[N]`` (label ``i`` is ``classes[i]``).
        rotations: Quarter turns applied to every image of class ``i`` ``[N]`` (Omniglot
            augmentation: a rotated character is a new class).
    """

    classes: jax.Array
    rotations: jax.Array


def _class_sampler(first: int, count: int, ways: int, rotate: bool):
    def sample(key: jax.Array, n: int) -> ClassTask:
        k_cls, k_rot = jax.random.split(key)
        keys = jax.random.split(k_cls, n)
        classes = jax.vmap(lambda k: jax.random.choice(k, count, (ways,), replace=False))(keys)
        rotations = (
            jax.random.randint(k_rot, (n, ways), 0, 4) if rotate else jnp.zeros((n, ways), int)
        )
        return ClassTask(classes.astype(jnp.int32) + first, rotations.astype(jnp.int32))

    return sample


def classification(
    name: str,
    description: str,
    ways: int,
    shots: int,
    image: Callable[[jax.Array, jax.Array], jax.Array],
    image_shape: tuple[int, int, int],
    num_train_classes: int,
    num_classes: int,
    drawings: int,
    rotate: bool = True,
) -> FewShotTasks:
    """An N-way K-shot classification distribution over a fixed set of classes.

    Args:
        name: Registry name.
        description: One line for ``quickstudy tasks``.
        ways: ``N`` classes per task.
        shots: ``K`` support images per class.
        image: ``image(class_id, drawing) -> [H, W, C]`` float image (jittable).
        image_shape: ``(H, W, C)``.
        num_train_classes: Classes ``0..num_train_classes-1`` are for meta-training, the rest
            for meta-testing.
        num_classes: Total classes.
        drawings: Images per class.
        rotate: Rotate each class of a task by a random multiple of 90 degrees.

    Returns:
        The distribution; its query sets hold at most ``drawings - shots`` images per class.
    """
    num_test_classes = num_classes - num_train_classes
    for split, count in (("meta-training", num_train_classes), ("meta-test", num_test_classes)):
        if count < ways:
            raise ConfigError(f"{name}: {count} {split} classes, fewer than the {ways} ways")

    def rotated(img, k):
        return jax.lax.switch(k, [lambda x, r=r: jnp.rot90(x, r) for r in range(4)], img)

    def sets(key: jax.Array, task: ClassTask, support: int, query: int) -> tuple[Batch, Batch]:
        keys = jax.random.split(key, ways)

        def per_class(k, c, rot):
            order = jax.random.permutation(k, drawings)[: support + query]
            return jax.vmap(lambda j: rotated(image(c, j), rot))(order)

        imgs = jax.vmap(per_class)(keys, task.classes, task.rotations)  # [N, S+Q, H, W, C]
        labels = jnp.broadcast_to(jnp.eye(ways)[:, None, :], (ways, support + query, ways))

        def flat(x):
            return x.reshape(-1, *x.shape[2:])

        return (
            Batch(flat(imgs[:, :support]), flat(labels[:, :support])),
            Batch(flat(imgs[:, support:]), flat(labels[:, support:])),
        )

    return FewShotTasks(
        name=name,
        description=description,
        target="one-hot class label; metric: query accuracy after k gradient steps",
        shots=shots,
        input_shape=image_shape,
        output_dim=ways,
        loss="xent",
        sampler=_class_sampler(0, num_train_classes, ways, rotate),
        sets=sets,
        test_sampler=_class_sampler(
            num_train_classes, num_classes - num_train_classes, ways, rotate
        ),
        max_query=drawings - shots,
    )


def glyphs(ways: int, shots: int) -> FewShotTasks:
    """N-way K-shot classification of procedural glyphs (see :mod:`quickstudy.tasks.glyphs`)."""
    from quickstudy.tasks import glyphs as g

    return classification(
        name=f"fewshot-glyphs-{ways}way-{shots}shot",
        description=(
            f"Procedural Omniglot stand-in: {g.NUM_CLASSES} generated characters x "
            f"{g.DRAWINGS} drawings, 28x28, {g.NUM_TRAIN_CLASSES} train / "
            f"{g.NUM_CLASSES - g.NUM_TRAIN_CLASSES} test classes, rotations; {ways}-way "
            f"{shots}-shot."
        ),
        ways=ways,
        shots=shots,
        image=g.render,
        image_shape=(g.SIZE, g.SIZE, 1),
        num_train_classes=g.NUM_TRAIN_CLASSES,
        num_classes=g.NUM_CLASSES,
        drawings=g.DRAWINGS,
    )
