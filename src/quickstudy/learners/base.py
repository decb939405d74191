"""What the on-policy learners share: batches of sequences, advantages, minibatches, optimisers.

A learner sees time-major sequences ``[T, B, ...]`` and the policy's memory before their first
step (``carry0``, any pytree with ``[B, ...]`` leaves). Minibatches split the *sequence* axis
``B``, so every minibatch element is a whole sequence replayed from its stored memory (truncated
backpropagation through time over the collected steps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from quickstudy.objectives.returns import gae
from quickstudy.types import Carry, PolicyOutput, Transition

PyTree = Any


class SequenceBatch(NamedTuple):
    """What the losses of a recurrent on-policy learner read; time-major ``[T, B, ...]``.

    Attributes:
        carry0: The policy's memory before step 0 (``[B, ...]`` leaves).
        obs: Observations.
        start: Memory-reset flags.
        action: Actions taken.
        log_prob: Behaviour log-probabilities.
        value: Behaviour value estimates.
        advantage: GAE advantages.
        target: Value targets (advantage + value).
        reward: Rewards (for auxiliary losses).
    """

    carry0: Carry
    obs: jax.Array
    start: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    reward: jax.Array


class AuxLoss(NamedTuple):
    """An auxiliary loss term a learner adds to its objective with weight ``coef``.

    Attributes:
        name: Metrics key of its value.
        coef: Weight.
        fn: ``fn(out: PolicyOutput, batch: SequenceBatch) -> scalar``.
    """

    name: str
    coef: float
    fn: Callable[[PolicyOutput, SequenceBatch], jax.Array]


def advantages(traj: Transition, gamma: float, gae_lambda: float) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and value targets ``[T, B]`` of a time-major batch (terminated vs truncated).

    Args:
        traj: Experience with ``value`` and ``next_value``.
        gamma: Discount.
        gae_lambda: GAE lambda.
    """
    fn = jax.vmap(gae, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1)
    return fn(
        traj.reward,
        traj.value,
        traj.next_value,
        traj.terminated,
        traj.truncated,
        gamma,
        gae_lambda,
    )


def sequence_batch(
    traj: Transition, carry0: Carry, gamma: float, gae_lambda: float
) -> SequenceBatch:
    """The learner's view of a collected batch, with advantages and value targets."""
    adv, target = advantages(traj, gamma, gae_lambda)
    return SequenceBatch(
        carry0=carry0,
        obs=traj.obs,
        start=traj.start,
        action=traj.action,
        log_prob=traj.log_prob,
        value=traj.value,
        advantage=adv,
        target=target,
        reward=traj.reward,
    )


def group_shuffles(key: jax.Array, size: int, num: int) -> jax.Array:
    """One random order per group of ``num`` consecutive sequences (see `strided_minibatches`).

    Returns:
        ``[size // num, num]``: row ``g`` is a random permutation of ``range(num)``.
    """
    keys = jax.random.split(key, size // num)
    return jax.vmap(lambda k: jax.random.permutation(k, num))(keys)


def strided_minibatches(batch: SequenceBatch, within: jax.Array) -> SequenceBatch:
    """``num`` minibatches that each take one sequence from every group of ``num`` consecutive ones.

    Minibatch ``j`` holds sequence ``g * num + within[g, j]`` of every group ``g``, in group
    order: the same share of every contiguous block of sequences. Written as a reshape of the
    sequence axis into ``[groups, num]`` and a gather along ``num`` only, so that when the batch
    is split over devices (``--devices``) XLA keeps each device's sequences where they are and
    each device computes its part of every minibatch's gradient. A uniform shuffle instead makes
    XLA gather the whole batch onto every device, which then repeats the whole gradient work.

    Args:
        batch: The batch (``carry0`` leaves ``[B, ...]``, the rest ``[T, B, ...]``).
        within: ``[B // num, num]``, row ``g`` a permutation of ``range(num)``.

    Returns:
        A batch whose leaves have a leading minibatch axis ``[num, ...]``.
    """
    groups, num = within.shape

    def split(x: jax.Array, axis: int) -> jax.Array:
        x = x.reshape(x.shape[:axis] + (groups, num) + x.shape[axis + 1 :])
        index = within.reshape((1,) * axis + (groups, num) + (1,) * (x.ndim - axis - 2))
        return jnp.moveaxis(jnp.take_along_axis(x, index, axis=axis + 1), axis + 1, 0)

    carry = jax.tree.map(lambda x: split(x, 0), batch.carry0)
    rest = [jax.tree.map(lambda x: split(x, 1), leaf) for leaf in batch[1:]]
    return SequenceBatch(carry, *rest)


def minibatches(batch: SequenceBatch, perm: jax.Array, num: int) -> SequenceBatch:
    """Shuffles the sequences by ``perm`` and splits them into ``num`` minibatches.

    ``carry0`` leaves ``[B, ...]`` are split on axis 0, every other leaf ``[T, B, ...]`` on
    axis 1, so each minibatch keeps whole sequences with their memory, whatever the carry's
    structure.

    Returns:
        A batch whose leaves have a leading minibatch axis ``[num, ...]``.
    """
    size = perm.shape[0] // num

    def split(x: jax.Array, axis: int) -> jax.Array:
        x = jnp.take(x, perm, axis=axis)
        x = jnp.moveaxis(x, axis, 0).reshape((num, size) + x.shape[:axis] + x.shape[axis + 1 :])
        return jnp.moveaxis(x, 1, axis + 1)

    carry = jax.tree.map(lambda x: split(x, 0), batch.carry0)
    rest = [jax.tree.map(lambda x: split(x, 1), leaf) for leaf in batch[1:]]
    return SequenceBatch(carry, *rest)


def sgd_epochs(
    key: jax.Array,
    params: PyTree,
    opt_state: PyTree,
    batch: SequenceBatch,
    grad_fn: Callable[[PyTree, SequenceBatch], tuple[PyTree, Any]],
    optimizer: optax.GradientTransformation,
    num_epochs: int,
    num_minibatches: int,
    strided: bool = False,
) -> tuple[PyTree, PyTree, Any]:
    """``num_epochs`` passes of one optimiser step per minibatch of reshuffled whole sequences.

    Args:
        key: PRNG key of the shuffles.
        params: Parameters.
        opt_state: The optimiser's state.
        batch: The batch (see :func:`minibatches`).
        grad_fn: ``grad_fn(params, minibatch) -> (grads, aux)``.
        optimizer: The optimiser.
        num_epochs: Passes over the batch.
        num_minibatches: Minibatches per pass.
        strided: Draw each minibatch as one sequence from every group of ``num_minibatches``
            consecutive ones (see :func:`strided_minibatches`) instead of a uniform shuffle.

    Returns:
        The new parameters and optimiser state, and ``aux`` with leading axes
        ``[num_epochs, num_minibatches]``.
    """

    def step(carry, minibatch):
        params, opt_state = carry
        grads, aux = grad_fn(params, minibatch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), aux

    def epoch(carry, key):
        size = batch.reward.shape[1]
        if strided:
            split = strided_minibatches(batch, group_shuffles(key, size, num_minibatches))
        else:
            split = minibatches(batch, jax.random.permutation(key, size), num_minibatches)
        return jax.lax.scan(step, carry, split)

    keys = jax.random.split(key, num_epochs)
    (params, opt_state), aux = jax.lax.scan(epoch, (params, opt_state), keys)
    return params, opt_state, aux


def add_aux_losses(
    loss: jax.Array,
    metrics: dict[str, jax.Array],
    out: PolicyOutput,
    batch: SequenceBatch,
    aux_losses: Sequence[AuxLoss],
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``loss + sum(coef * term)`` over the auxiliary terms; each term's value joins the metrics."""
    for term in aux_losses:
        metrics[term.name] = term.fn(out, batch)
        loss = loss + term.coef * metrics[term.name]
    return loss, metrics


def make_optimizer(
    learning_rate: float | optax.Schedule,
    max_grad_norm: float,
    adam_eps: float,
    param_labels: Callable[[PyTree], PyTree] | None = None,
    groups: Sequence[str] = (),
) -> optax.GradientTransformation:
    """Gradient-norm clipping followed by Adam.

    Args:
        learning_rate: Adam step size or schedule.
        max_grad_norm: Largest gradient norm kept.
        adam_eps: Adam's denominator epsilon.
        param_labels: Maps the parameters to a pytree of the same structure whose leaves
            name a group. Each group's gradient is then clipped to ``max_grad_norm`` by its
            own norm, so one group's large gradients (a critic's) cannot shrink another's
            step. ``None``: one global norm over all parameters.
        groups: Every label ``param_labels`` gives.
    """
    if param_labels is None:
        clip = optax.clip_by_global_norm(max_grad_norm)
    else:
        clip = clip_by_group_norm(max_grad_norm, param_labels, groups)
    return optax.chain(clip, optax.adam(learning_rate, eps=adam_eps))


def clip_by_group_norm(
    max_norm: float, param_labels: Callable[[PyTree], PyTree], groups: Sequence[str]
) -> optax.GradientTransformation:
    """Scale each labelled group of gradients so that its own norm is at most ``max_norm``.

    Args:
        max_norm: The largest norm a group keeps.
        param_labels: Maps a gradient pytree to one of the same structure whose leaves are
            group labels.
        groups: Every label ``param_labels`` gives.
    """
    clip = optax.clip_by_global_norm(max_norm)
    return optax.multi_transform(dict.fromkeys(groups, clip), param_labels)


def linear_decay(learning_rate: float, anneal: bool, num_steps: int) -> float | optax.Schedule:
    """``learning_rate`` decayed linearly to zero over ``num_steps`` optimiser steps, or as is."""
    return optax.linear_schedule(learning_rate, 0.0, num_steps) if anneal else learning_rate
