"""PEARL's gradient step: the context encoder trained through the critic, SAC on ``(s, z)``.

One meta-batch of ``M`` tasks (Rakelly et al. 2019, Algorithm 1, inner loop):

1. each task's context batch (its recent transitions) goes through the encoder to ``q(z | c)``;
   ``z`` is sampled with the reparameterisation trick;
2. the critics regress on ``(s, z)`` of each task's RL batch; the gradient of their loss with
   respect to ``z``, plus ``kl_weight`` times that of ``KL(q(z|c) || N(0, I))``, trains the
   encoder (the information bottleneck);
3. the actor and the temperature take SAC's step on ``(s, z)`` with ``z`` held fixed (PEARL does
   not let the actor's loss shape the encoder).

This module is the update only; data collection, the replay and the meta-test loop build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from quickstudy.learners.sac import SAC, SACState, Transitions
from quickstudy.networks.context import ContextEncoder, kl_to_standard_normal, sample_z

PyTree = Any


@dataclasses.dataclass(frozen=True)
class PEARLUpdateConfig:
    """Settings of the encoder's part of the update.

    Attributes:
        latent_dim: Size of z (PEARL: 5).
        encoder_hidden: Hidden widths of the per-transition encoder (PEARL: 200, 200, 200).
        encoder_lr: Adam step size of the encoder (PEARL: 3e-4).
        kl_weight: Weight of the KL term (PEARL's ``kl_lambda``: 0.1), which is summed over
            the meta-batch's tasks while the critic loss is a mean over all transitions (as in
            the authors' code).
        use_next_obs: Put ``s'`` in the context (for tasks whose dynamics vary).
    """

    latent_dim: int = 5
    encoder_hidden: tuple[int, ...] = (200, 200, 200)
    encoder_lr: float = 3e-4
    kl_weight: float = 0.1
    use_next_obs: bool = False


class PEARLParams(NamedTuple):
    """The learner's state: SAC's and the encoder's with its optimiser."""

    sac: SACState
    encoder: PyTree
    encoder_opt: Any


def context_features(batch: Transitions, use_next_obs: bool) -> jax.Array:
    """A transition as the encoder reads it: ``s ⊕ a ⊕ r [⊕ s']`` ``[..., C]``."""
    parts = [batch.obs, batch.action, batch.reward[..., None]]
    if use_next_obs:
        parts.append(batch.next_obs)
    return jnp.concatenate(parts, axis=-1)


def with_z(batch: Transitions, z: jax.Array) -> Transitions:
    """Each task's transitions ``[M, B, ...]`` with its ``z`` ``[M, Z]`` appended to s and s'.

    Returns:
        The transitions flattened to ``[M·B, ...]``.
    """
    m, b = batch.reward.shape
    tiled = jnp.broadcast_to(z[:, None, :], (m, b, z.shape[-1]))
    flat = lambda x: x.reshape(m * b, *x.shape[2:])  # noqa: E731
    return Transitions(
        obs=flat(jnp.concatenate([batch.obs, tiled], -1)),
        action=flat(batch.action),
        reward=flat(batch.reward),
        next_obs=flat(jnp.concatenate([batch.next_obs, tiled], -1)),
        done=flat(batch.done),
    )


def make_pearl_update(
    config: PEARLUpdateConfig, sac: SAC, context_dim: int
) -> tuple[Callable, Callable, Callable]:
    """``(init, update, posterior)`` of PEARL's learner around a SAC on ``obs_dim + latent``.

    ``init(key) -> PEARLParams``; ``update(params, context, rl_batch, key) -> (params,
    metrics)`` with ``[M, Nc]`` context and ``[M, B]`` RL transitions of ``M`` tasks;
    ``posterior(encoder, context, mask) -> (mean, variance)`` ``[M, Z]``, where ``context`` is
    transitions or their features (:func:`context_features`).

    Returns:
        The three functions.
    """
    encoder = ContextEncoder(tuple(config.encoder_hidden), config.latent_dim)
    opt = optax.adam(config.encoder_lr)

    def init(key: jax.Array) -> PEARLParams:
        k_sac, k_enc = jax.random.split(key)
        enc = encoder.init(k_enc, jnp.zeros((1, 1, context_dim)))
        return PEARLParams(sac.init(k_sac), enc, opt.init(enc))

    def posterior(enc: PyTree, context: Transitions | jax.Array, mask: jax.Array | None = None):
        if not isinstance(context, jax.Array):  # transitions, not yet their features
            context = context_features(context, config.use_next_obs)
        return encoder.apply(enc, context, mask)

    def update(params: PEARLParams, context: Transitions, rl_batch: Transitions, key: jax.Array):
        k_z, k_sac = jax.random.split(key)

        def encode(enc):
            mean, var = posterior(enc, context)
            return sample_z(k_z, mean, var), kl_to_standard_normal(mean, var).sum()

        (z, kl), encode_vjp = jax.vjp(encode, params.encoder)
        # One critic pass: SAC's step, and the critic loss's gradient w.r.t. (s, z) before it.
        sac_state, metrics, g_obs = sac.update_with_obs_grad(params.sac, with_z(rl_batch, z), k_sac)
        m, b = rl_batch.reward.shape
        g_z = g_obs[:, -config.latent_dim :].reshape(m, b, -1).sum(axis=1)
        (enc_grads,) = encode_vjp((g_z, jnp.asarray(config.kl_weight, kl.dtype)))
        updates, enc_opt = opt.update(enc_grads, params.encoder_opt)
        enc = optax.apply_updates(params.encoder, updates)
        return PEARLParams(sac_state, enc, enc_opt), {**metrics, "kl": kl / m}

    return init, update, posterior
