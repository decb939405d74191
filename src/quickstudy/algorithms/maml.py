"""MAML: model-agnostic meta-learning (Finn, Abbeel & Levine 2017), supervised few-shot learning.

The meta-learner is an initialisation θ (and, for Meta-SGD, per-parameter step sizes α; Li et al.
2017). A task adapts it with ``k`` gradient steps on its ``K`` support points,
``θ'_i = θ - α ∇_θ L_i(θ)`` (repeated), and the meta-objective is the loss of ``θ'_i`` on fresh
query points of the same task, differentiated *through* the inner steps (second order by default).

The inner loop (:mod:`quickstudy.learners.inner_sgd`) takes any ``loss_fn(params, batch)``; MAML
for RL uses the same one.

Baselines on the same protocol (select with ``MAMLConfig.variant``):

* ``pretrained``: one network regressed jointly on all tasks (the meta-objective with zero inner
  steps), fine-tuned at meta-test with the same inner steps.
* ``oracle``: the network also receives the task's parameters (for sinusoids ``A`` and ``φ``) as
  inputs; trained like ``pretrained``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from quickstudy.errors import ConfigError
from quickstudy.learners.inner_sgd import adapt, inner_step
from quickstudy.networks.conv import ConvNet
from quickstudy.networks.mlp import MLP
from quickstudy.tasks.fewshot import Batch, FewShotTasks
from quickstudy.types import Algorithm, MetaTestResult, Watch, check_choice, check_fields

PyTree = Any


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over all elements."""
    return jnp.mean(jnp.square(pred - target))


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """Supervised MAML (and its pretrained / oracle baselines).

    Attributes:
        total_steps: Meta-iterations (one Adam step on a meta-batch each).
        variant: ``maml``, ``pretrained`` (joint regression, fine-tuned at test) or ``oracle``
            (task parameters as extra inputs).
        meta_batch_size: Tasks per meta-iteration.
        inner_steps: Inner gradient steps during meta-training (MAML only).
        inner_lr: Inner step size α, also used for meta-test fine-tuning. The paper's is 0.01.
        meta_lr: Adam step size of the outer loop.
        first_order: First-order MAML (no second-order term in the meta-gradient).
        learn_inner_lr: Meta-SGD: learn a per-parameter step size, initialised to ``inner_lr``.
        hidden_sizes: Hidden layer widths of the ReLU MLP (vector inputs).
        conv_channels: Filters per convolution of the 4-block CNN (image inputs).
        query_points: Query points per task in meta-training (0: K, the task's shots). Per
            class for classification.
        test_steps: Gradient steps at meta-test (the loss is recorded after 0 to this many).
        test_query_points: Query points per held-out task at meta-test. More points only lower
            the variance of the same expected loss. Per class for classification, capped at the
            examples a class has besides its shots.
        remat: Recompute inner steps in the backward pass (memory O(k·|θ|); see ``adapt``).
    """

    total_steps: int = 70_000
    variant: Literal["maml", "pretrained", "oracle"] = "maml"
    meta_batch_size: int = 25
    inner_steps: int = 1
    inner_lr: float = 0.01
    meta_lr: float = 1e-3
    first_order: bool = False
    learn_inner_lr: bool = False
    hidden_sizes: tuple[int, ...] = (40, 40)
    conv_channels: int = 64
    query_points: int = 0
    test_steps: int = 10
    test_query_points: int = 100
    remat: bool = True

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):  # as read back from config.json
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        check_fields(
            self,
            positive_int=("total_steps", "meta_batch_size", "test_query_points", "conv_channels"),
            nonneg_int=("inner_steps", "query_points", "test_steps"),
            positive=("inner_lr", "meta_lr"),
        )
        check_choice(self, "variant", ("maml", "pretrained", "oracle"))
        if not self.hidden_sizes or any(
            not isinstance(w, int) or isinstance(w, bool) or w <= 0 for w in self.hidden_sizes
        ):
            raise ConfigError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")
        if self.learn_inner_lr and self.variant != "maml":
            raise ConfigError("learn_inner_lr (Meta-SGD) needs variant='maml'")

    @property
    def train_inner_steps(self) -> int:
        """Inner steps inside the meta-objective (0 for the baselines)."""
        return self.inner_steps if self.variant == "maml" else 0


class MAMLState(NamedTuple):
    """Meta-training state.

    Attributes:
        params: Meta-parameters: ``{"net": θ}`` plus ``"alpha"`` (shaped like θ) for Meta-SGD.
        opt_state: Adam state.
        key: PRNG key.
        update: Meta-iterations done (int32 scalar).
    """

    params: PyTree
    opt_state: optax.OptState
    key: jax.Array
    update: jax.Array


def make_maml(config: MAMLConfig, tasks: FewShotTasks) -> Algorithm:
    """Builds supervised MAML for ``tasks``.

    One update is one meta-iteration (``steps_per_update`` 1). The meta-test adapts each held-out
    task with ``points`` gradient steps on its support set and records the query loss (MSE) or
    accuracy after 0..points steps. ``parts``: ``network``, ``predict(net_params, x, task)`` and
    ``loss(net_params, batch, task)``.

    Raises:
        ConfigError: ``tasks`` is not a supervised few-shot distribution.
    """
    if not isinstance(tasks, FewShotTasks):
        raise ConfigError(
            f"maml trains on supervised few-shot tasks (e.g. sinusoid-k10); {tasks.name} is an "
            f"RL task distribution (use maml-rl or rl2)"
        )
    if tasks.loss not in ("mse", "xent"):
        raise ConfigError(f"maml supports 'mse' and 'xent', {tasks.name} uses {tasks.loss!r}")
    oracle = config.variant == "oracle"
    if oracle and tasks.features is None:
        raise ConfigError(f"variant 'oracle' needs task features; {tasks.name} defines none")
    classify = tasks.loss == "xent"
    images = len(tasks.input_shape) == 3
    if images:
        network: nn.Module = ConvNet(tasks.output_dim, channels=config.conv_channels)
    else:
        network = MLP(tuple(config.hidden_sizes), tasks.output_dim)
    num_features = tasks.num_features if oracle else 0
    example_x = jnp.zeros((1, *tasks.input_shape[:-1], tasks.input_shape[-1] + num_features))
    shots = tasks.shots
    query = config.query_points or shots
    test_query = config.test_query_points
    if tasks.max_query is not None:
        if query > tasks.max_query:
            raise ConfigError(
                f"query_points ({query}) exceeds the {tasks.max_query} examples per class that "
                f"{tasks.name} has besides its {shots} shots"
            )
        test_query = min(test_query, tasks.max_query)
    train_steps = config.train_inner_steps
    optimizer = optax.adam(config.meta_lr)
    # Trace one task's data now, so that missing data files are reported before any training.
    jax.eval_shape(lambda k: tasks.sets(k, tasks.sample_one(k), shots, query), jax.random.key(0))

    def over_tasks(fn: Callable, *args: Any) -> Any:
        # Per-task adapted convolution kernels under vmap become grouped convolutions, which
        # XLA runs slowly on CPU; a sequential map keeps them plain convolutions.
        return jax.lax.map(lambda a: fn(*a), args) if images else jax.vmap(fn)(*args)

    def predict(net: PyTree, x: jax.Array, task: PyTree) -> jax.Array:
        if oracle:
            feats = jnp.broadcast_to(tasks.features(task), (x.shape[0], num_features))
            x = jnp.concatenate([x, feats], axis=-1)
        return network.apply(net, x)

    def loss(net: PyTree, batch: Batch, task: PyTree) -> jax.Array:
        out = predict(net, batch.x, task)
        if classify:
            return -jnp.mean(jnp.sum(batch.y * jax.nn.log_softmax(out), axis=-1))
        return mse(out, batch.y)

    def accuracy(net: PyTree, batch: Batch, task: PyTree) -> jax.Array:
        out = predict(net, batch.x, task)
        return jnp.mean(jnp.argmax(out, -1) == jnp.argmax(batch.y, -1))

    def step_size(meta: PyTree) -> Any:
        return meta["alpha"] if config.learn_inner_lr else config.inner_lr

    def task_objective(meta: PyTree, task: PyTree, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        support, query_batch = tasks.sets(key, task, shots, query)

        def support_loss(net, batch):
            return loss(net, batch, task)

        adapted = adapt(
            support_loss,
            meta["net"],
            support,
            train_steps,
            step_size(meta),
            first_order=config.first_order,
            remat=config.remat,
        )
        return loss(adapted, query_batch, task), support_loss(meta["net"], support)

    def meta_loss(meta: PyTree, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        k_tasks, k_points = jax.random.split(key)
        batch_tasks = tasks.sample(k_tasks, config.meta_batch_size)
        keys = jax.random.split(k_points, config.meta_batch_size)
        post, pre = over_tasks(lambda t, k: task_objective(meta, t, k), batch_tasks, keys)
        return post.mean(), {"query_loss": post.mean(), "support_loss_before": pre.mean()}

    def init(key: jax.Array) -> MAMLState:
        k_net, key = jax.random.split(key)
        net = network.init(k_net, example_x)
        meta = {"net": net}
        if config.learn_inner_lr:
            meta["alpha"] = jax.tree.map(lambda p: jnp.full_like(p, config.inner_lr), net)
        return MAMLState(meta, optimizer.init(meta), key, jnp.zeros((), jnp.int32))

    def update(state: MAMLState) -> tuple[MAMLState, dict[str, jax.Array]]:
        key, k_loss = jax.random.split(state.key)
        grads, metrics = jax.grad(meta_loss, has_aux=True)(state.params, k_loss)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return MAMLState(params, opt_state, key, state.update + 1), metrics

    def meta_test(meta: PyTree, key: jax.Array, test_tasks: PyTree, num_steps: int):
        n = jax.tree.leaves(test_tasks)[0].shape[0]
        alpha = step_size(meta)

        def one(task, task_key):
            support, query_batch = tasks.sets(task_key, task, shots, test_query)

            def support_loss(net, batch):
                return loss(net, batch, task)

            def scores(net):
                acc = accuracy(net, query_batch, task) if classify else jnp.nan
                return loss(net, query_batch, task), acc

            def step(net, _):
                return inner_step(support_loss, net, support, alpha), scores(net)

            net, (qs, accs) = jax.lax.scan(step, meta["net"], None, length=num_steps)
            q, acc = scores(net)
            return jnp.concatenate([qs, q[None]]), jnp.concatenate([accs, jnp.asarray(acc)[None]])

        keys = jax.random.split(key, n)
        losses, accs = over_tasks(one, test_tasks, keys)
        if classify:
            return MetaTestResult(
                accs, extras={"losses": losses}, metric="accuracy", axis="gradient step"
            )
        return MetaTestResult(
            losses, metric=tasks.loss, axis="gradient step", higher_is_better=False
        )

    return Algorithm(
        config=config,
        tasks=tasks,
        init=init,
        update=update,
        meta_test=meta_test,
        num_updates=config.total_steps,
        steps_per_update=1,
        jittable=True,
        progress=("query_loss", "query loss"),
        default_points=config.test_steps,
        step_unit="meta-iterations",
        variant=config.variant,
        progress_point=config.train_inner_steps,
        parts={"network": network, "predict": predict, "loss": loss},
        axis="gradient step",
        watch=(Watch("query_loss", growth=1e4), Watch("grad_norm", growth=1e4)),
    )
