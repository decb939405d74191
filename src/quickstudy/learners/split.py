"""The policy's and the critic's gradient steps side by side, one network per device.

With a separate critic, the policy loss reads advantages fixed at collection and the value loss
only the critic, so the two networks' gradients share nothing but the global-norm clip. On a
CPU split into two devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) each device
runs on its own thread, and the small recurrent gradient steps of RL² are bound by their number
of kernels, not by arithmetic; so computing each network's gradient on its own device takes
each step's time from the sum of the two to about the larger
(``experiments/actor_critic_devices.py``, ``docs/results/performance.md``).

:func:`split_sgd_epochs` is :func:`~quickstudy.learners.base.sgd_epochs` inside a
``shard_map`` over two devices. Both devices hold every parameter and draw the same
minibatches. At each step device 0 computes the policy's gradient and device 1 the critic's
(the other network's gradient is zero there); one ``psum`` of the squared norms gives the global
norm of the clip; then each device takes the usual clipped Adam step. At the end each network's
parameters and Adam moments are taken from the device that trained it. The result equals
one device's up to the order of float sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from quickstudy.errors import ConfigError
from quickstudy.learners.base import SequenceBatch, sgd_epochs
from quickstudy.types import PARAM_GROUPS

PyTree = Any
AXIS = "network"
"""Name of the mesh axis whose two devices hold the two networks."""

CRITIC_METRICS = frozenset({"value_loss"})
"""Metrics of the loss that only the critic's parameters move (the rest are the policy's)."""


def network_mesh() -> Mesh:
    """A 1-D mesh of the first two devices, axis :data:`AXIS`.

    Raises:
        ConfigError: JAX sees fewer than two devices (the message says how to make two on a
            CPU).
    """
    devices = jax.devices()
    if len(devices) < 2:
        raise ConfigError(
            f"split_networks needs two devices, but JAX sees {len(devices)} "
            f"({devices[0].platform}); on a CPU, start with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=2"
        )
    return Mesh(np.array(devices[:2]), (AXIS,))


def split_sgd_epochs(
    key: jax.Array,
    params: PyTree,
    opt_state: PyTree,
    batch: SequenceBatch,
    grad_fn: Callable[[PyTree, SequenceBatch], tuple[PyTree, dict[str, jax.Array]]],
    optimizer: optax.GradientTransformation,
    labels: PyTree,
    max_grad_norm: float | None,
    num_epochs: int,
    num_minibatches: int,
    mesh: Mesh,
    strided: bool = False,
    critic_metrics: Sequence[str] = CRITIC_METRICS,
) -> tuple[PyTree, PyTree, dict[str, jax.Array]]:
    """:func:`~quickstudy.learners.base.sgd_epochs` with each network's gradient on its device.

    Args:
        key: PRNG key of the shuffles.
        params: Parameters (both networks).
        opt_state: ``optimizer``'s state.
        batch: The batch.
        grad_fn: ``grad_fn(params, minibatch) -> (grads, metrics)``, the whole loss's gradient.
        optimizer: The optimiser: a clip (global, or one per network) followed by Adam.
        labels: ``"actor"`` or ``"critic"`` per parameter leaf (same structure as ``params``).
        max_grad_norm: The global-norm clip that ``optimizer`` applies, so that it is applied
            to the norm of both networks' gradients; ``None`` when ``optimizer`` clips each
            network by its own norm, which needs no exchange.
        num_epochs: Passes over the batch.
        num_minibatches: Minibatches per pass.
        mesh: Two devices on the axis :data:`AXIS` (see :func:`network_mesh`).
        strided: See :func:`~quickstudy.learners.base.sgd_epochs`.
        critic_metrics: Metric names taken from the critic's device; the others come from
            the policy's.

    Returns:
        The new parameters and optimiser state, replicated on both devices, and the metrics
        with leading axes ``[num_epochs, num_minibatches]``.
    """
    owner = jax.tree.map(PARAM_GROUPS.index, labels)

    def own_gradient(group: str) -> Callable[[PyTree, SequenceBatch], tuple[PyTree, dict]]:
        def mine(name: str) -> bool:
            return (name in critic_metrics) == (group == "critic")

        def fn(p: PyTree, mb: SequenceBatch) -> tuple[PyTree, dict]:
            grads, metrics = grad_fn(p, mb)
            grads = jax.tree.map(
                lambda g, label: g if label == group else jnp.zeros_like(g), grads, labels
            )
            # The other network's metrics are zeros here, so that XLA drops its forward pass.
            metrics = {k: v if mine(k) else jnp.zeros_like(v) for k, v in metrics.items()}
            return grads, metrics

        return fn

    def body(key, params, opt_state, batch):
        me = jax.lax.axis_index(AXIS)
        branches = [own_gradient(group) for group in PARAM_GROUPS]

        def local_grad(p: PyTree, mb: SequenceBatch) -> tuple[PyTree, dict]:
            grads, metrics = jax.lax.switch(me, [lambda b=b: b(p, mb) for b in branches])
            if max_grad_norm is not None:
                norm = jnp.sqrt(jax.lax.psum(optax.tree_utils.tree_norm(grads, squared=True), AXIS))
                keep = norm < max_grad_norm
                grads = jax.tree.map(
                    lambda g: jax.lax.select(keep, g, g / norm * max_grad_norm), grads
                )
            return grads, metrics

        params, opt_state, metrics = sgd_epochs(
            key, params, opt_state, batch, local_grad, optimizer, num_epochs, num_minibatches,
            strided,
        )  # fmt: skip

        def from_owner(x: jax.Array, device: int) -> jax.Array:
            return jax.lax.psum(jnp.where(me == device, x, jnp.zeros_like(x)), AXIS)

        params = jax.tree.map(from_owner, params, owner)
        opt_state = optax.tree_utils.tree_map_params(
            optimizer, from_owner, opt_state, owner, transform_non_params=lambda x: x
        )
        owner_of = {False: PARAM_GROUPS.index("actor"), True: PARAM_GROUPS.index("critic")}
        metrics = {k: from_owner(v, owner_of[k in critic_metrics]) for k, v in metrics.items()}
        return params, opt_state, metrics

    return jax.shard_map(body, mesh=mesh, in_specs=P(), out_specs=P(), check_vma=False)(
        key, params, opt_state, batch
    )
