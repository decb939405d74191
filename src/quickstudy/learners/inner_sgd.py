"""The differentiable inner loop of gradient-based meta-learning (MAML; Finn et al. 2017).

``θ' = θ - α ∇_θ L(θ)``, repeated, with the meta-gradient flowing through every step (second order
by default). Supervised MAML adapts on a support set, MAML-RL on sampled episodes; both use these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

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
