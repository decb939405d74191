"""MAML: model-agnostic meta-learning (Finn, Abbeel & Levine 2017), supervised few-shot learning.

The meta-learner is an initialisation θ (and, for Meta-SGD, per-parameter step sizes α; Li et al.
2017). A task adapts it with ``k`` gradient steps on its ``K`` support points,
``θ'_i = θ - α ∇_θ L_i(θ)`` (repeated), and the meta-objective is the loss of ``θ'_i`` on fresh
query points of the same task, differentiated *through* the inner steps (second order by default).

The inner-loop helpers (:func:`inner_step`, :func:`adapt`) take any ``loss_fn(params, batch)`` and
are what MAML for RL reuses.

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
from quickstudy.networks.conv import ConvNet
from quickstudy.networks.mlp import MLP
from quickstudy.tasks.fewshot import Batch, FewShotTasks

PyTree = Any
LossFn = Callable[[PyTree, Any], jax.Array]


def inner_step(
    loss_fn: LossFn,
    params: PyTree,
    batch: Any,
    step_size: float | jax.Array | PyTree,
    *,
    first_order: bool = False,
) -> PyTree:
    """One gradient step of the inner loop, ``θ' = θ - α ∇_θ loss_fn(θ, batch)``.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        params: Parameters θ (any pytree).
        batch: The task's adaptation data.
        step_size: α: a scalar, or a pytree shaped like ``params`` (Meta-SGD's per-parameter
            step sizes).
        first_order: Treat the gradient as a constant (first-order MAML): the meta-gradient then
            ignores the second-order term ``-α ∇²L(θ)``.

    Returns:
        The adapted parameters θ' (same structure as ``params``).
    """
    grads = jax.grad(loss_fn)(params, batch)
    if first_order:
        grads = jax.lax.stop_gradient(grads)
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(step_size)):
        return jax.tree.map(lambda p, g: p - step_size * g, params, grads)
    return jax.tree.map(lambda p, g, a: p - a * g, params, grads, step_size)


def adapt(
    loss_fn: LossFn,
    params: PyTree,
    batch: Any,
    num_steps: int,
    step_size: float | jax.Array | PyTree,
    *,
    first_order: bool = False,
    remat: bool = True,
) -> PyTree:
    """``num_steps`` inner gradient steps on the same batch, differentiable end to end.

    The steps run in a ``lax.scan``. Reverse-mode memory: without ``remat`` the backward pass
    keeps every step's residuals (activations and Hessian-vector intermediates), ``O(k)`` times one
    step's; with ``remat`` (the default) each step is recomputed in the backward pass from its input
    parameters, so only the ``k`` intermediate parameter sets are stored (``O(k |θ|)``) plus one
    step's residuals, at the cost of one extra forward-and-gradient per step.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        params: Initial parameters θ.
        batch: Adaptation data (the support set), reused by every step.
        num_steps: Number of steps ``k`` (static; 0 returns ``params``).
        step_size: α, scalar or per-parameter pytree.
        first_order: First-order MAML (see :func:`inner_step`).
        remat: Rematerialise each step in the backward pass (see above).

    Returns:
        The adapted parameters after ``k`` steps.
    """
    if num_steps == 0:
        return params

    def step(p, _):
        return inner_step(loss_fn, p, batch, step_size, first_order=first_order), None

    if remat:
        step = jax.checkpoint(step)
    params, _ = jax.lax.scan(step, params, None, length=num_steps)
    return params


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
        inner_lr: Inner step size α (the paper: 0.01), also used for meta-test fine-tuning.
        meta_lr: Adam step size of the outer loop.
        first_order: First-order MAML (no second-order term in the meta-gradient).
        learn_inner_lr: Meta-SGD: learn a per-parameter step size, initialised to ``inner_lr``.
        hidden_sizes: Hidden layer widths of the ReLU MLP (vector inputs).
        conv_channels: Filters per convolution of the 4-block CNN (image inputs).
        query_points: Query points per task (per class for classification) during
            meta-training (0: the task's ``K`` shots).
        test_steps: Gradient steps recorded at meta-test (0..test_steps).
        test_query_points: Query points per held-out task at meta-test (more points only lower
            the variance of the same expected MSE); per class for classification, capped at the
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
        for name in ("total_steps", "meta_batch_size", "test_query_points", "conv_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("inner_steps", "query_points", "test_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("inner_lr", "meta_lr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if self.variant not in ("maml", "pretrained", "oracle"):
            raise ConfigError(
                f"variant must be 'maml', 'pretrained' or 'oracle', got {self.variant!r}"
            )
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


class MetaTestLosses(NamedTuple):
    """Query losses (and accuracies) of held-out tasks.

    Attributes:
        losses: Query loss after ``k`` gradient steps, ``[N, test_steps + 1]`` (column 0: before
            adaptation).
        accuracy: Query accuracy, same shape (NaN for regression).
    """

    losses: jax.Array
    accuracy: jax.Array


class MAML(NamedTuple):
    """The pure functions of one MAML configuration on one few-shot task distribution.

    Attributes:
        config: The configuration.
        tasks: The task distribution.
        network: The MLP (vector inputs) or CNN (images).
        num_updates: Meta-iterations (``config.total_steps``).
        steps_per_update: 1 (a step of ``--total-steps`` is a meta-iteration).
        init: ``init(key) -> MAMLState``.
        update: ``update(state) -> (state, metrics)``: one meta-iteration.
        train: ``train(key) -> (state, metrics)``: all meta-iterations in one ``lax.scan``.
        evaluate: ``evaluate(params, key, test_tasks, num_steps) -> MetaTestLosses``.
        predict: ``predict(net_params, x, task) -> y``, the network on inputs ``[P, D]``.
        loss: ``loss(net_params, batch, task) -> scalar``, the query/support loss.
    """

    config: MAMLConfig
    tasks: FewShotTasks
    network: nn.Module
    num_updates: int
    steps_per_update: int
    init: Callable[[jax.Array], MAMLState]
    update: Callable[[MAMLState], tuple[MAMLState, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[MAMLState, dict[str, jax.Array]]]
    evaluate: Callable[[PyTree, jax.Array, PyTree, int], MetaTestLosses]
    predict: Callable[[PyTree, jax.Array, PyTree], jax.Array]
    loss: Callable[[PyTree, Batch, PyTree], jax.Array]


def make_maml(config: MAMLConfig, tasks: FewShotTasks) -> MAML:
    """Builds supervised MAML for ``tasks`` (see :class:`MAML`).

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

    def train(key: jax.Array) -> tuple[MAMLState, dict[str, jax.Array]]:
        state = init(key)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=config.total_steps)

    def evaluate(meta: PyTree, key: jax.Array, test_tasks: PyTree, num_steps: int):
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
        return MetaTestLosses(losses, accs)

    return MAML(
        config=config,
        tasks=tasks,
        network=network,
        num_updates=config.total_steps,
        steps_per_update=1,
        init=init,
        update=update,
        train=train,
        evaluate=evaluate,
        predict=predict,
        loss=loss,
    )
