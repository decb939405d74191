"""PPO for recurrent policies over whole sequences (Schulman et al. 2017).

Minibatches split the *environment* axis, so every minibatch element is a complete time-major
sequence replayed from its stored initial memory (truncated BPTT over the unroll).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from quickstudy.networks.distributions import Distribution
from quickstudy.objectives.ppo import (
    approx_kl,
    clipped_surrogate,
    clipped_value_loss,
    normalize,
)
from quickstudy.objectives.returns import gae
from quickstudy.rollout.unroll import ApplyFn, Trajectory

PyTree = Any


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters.

    Attributes:
        learning_rate: Adam step size.
        num_epochs: Passes over each batch.
        num_minibatches: Minibatches per pass (split over environments).
        clip_eps: Policy ratio clip.
        value_clip_eps: Value clip around the old prediction (<= 0 disables).
        vf_coef: Weight of the value loss.
        ent_coef: Weight of the entropy bonus.
        max_grad_norm: Global gradient-norm clip.
        gamma: Discount.
        gae_lambda: GAE lambda.
        normalize_advantages: Standardise advantages per minibatch.
        adam_eps: Adam's denominator epsilon.
    """

    learning_rate: float = 3e-4
    num_epochs: int = 4
    num_minibatches: int = 4
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    adam_eps: float = 1e-5


class PPOBatch(NamedTuple):
    """Inputs of the PPO loss; time-major ``[T, B, ...]`` except ``h0`` ``[B, S]``."""

    h0: jax.Array
    obs: jax.Array
    start: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    reward: jax.Array


LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def make_optimizer(
    config: PPOConfig,
    param_labels: Callable[[PyTree], PyTree] | None = None,
    groups: Sequence[str] = (),
) -> optax.GradientTransformation:
    """Gradient-norm clipping followed by Adam.

    Args:
        config: Hyperparameters (``max_grad_norm``, ``learning_rate``, ``adam_eps``).
        param_labels: Maps the parameters to a pytree of the same structure whose leaves
            name a group. Each group's gradient is then clipped to ``max_grad_norm`` by its
            own norm, so one group's large gradients (a critic's) cannot shrink another's
            step. ``None``: one global norm over all parameters.
        groups: Every label ``param_labels`` gives.
    """
    if param_labels is None:
        clip = optax.clip_by_global_norm(config.max_grad_norm)
    else:
        clip = clip_by_group_norm(config.max_grad_norm, param_labels, groups)
    return optax.chain(clip, optax.adam(config.learning_rate, eps=config.adam_eps))


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


def ppo_loss(
    net_params: PyTree,
    batch: PPOBatch,
    apply_fn: ApplyFn,
    dist: Distribution,
    config: PPOConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss of one minibatch of sequences.

    Returns:
        The scalar loss and a dict of diagnostics (policy/value loss, entropy, KL, clip fraction).
    """
    _, out, value = apply_fn(net_params, batch.h0, batch.obs, batch.start)
    return ppo_objective(out, value, batch, dist, config)


def ppo_objective(
    out: jax.Array,
    value: jax.Array,
    batch: PPOBatch,
    dist: Distribution,
    config: PPOConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The PPO loss given the network's outputs on ``batch`` (see :func:`ppo_loss`).

    Args:
        out: Distribution parameters ``[T, B, P]``.
        value: Value predictions ``[T, B]``.
        batch: The minibatch they were computed on.
        dist: The action distribution.
        config: Hyperparameters.
    """
    log_prob = dist.log_prob(out, batch.action)
    adv = normalize(batch.advantage) if config.normalize_advantages else batch.advantage
    pg_loss = clipped_surrogate(log_prob, batch.log_prob, adv, config.clip_eps).mean()
    v_loss = clipped_value_loss(value, batch.value, batch.target, config.value_clip_eps).mean()
    entropy = dist.entropy(out).mean()
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    ratio = jnp.exp(log_prob - batch.log_prob)
    aux = {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        "approx_kl": approx_kl(log_prob, batch.log_prob).mean(),
        "clip_fraction": (jnp.abs(ratio - 1.0) > config.clip_eps).mean(),
    }
    return loss, aux


def advantages(traj: Trajectory, config: PPOConfig) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and value targets ``[T, B]`` of a time-major trajectory."""
    fn = jax.vmap(gae, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1)
    return fn(
        traj.reward,
        traj.value,
        traj.v_next,
        traj.terminated,
        traj.truncated,
        config.gamma,
        config.gae_lambda,
    )


def ppo_update(
    key: jax.Array,
    net_params: PyTree,
    opt_state: optax.OptState,
    traj: Trajectory,
    h0: jax.Array,
    apply_fn: ApplyFn,
    dist: Distribution,
    optimizer: optax.GradientTransformation,
    config: PPOConfig,
    loss_fn: LossFn = ppo_loss,
) -> tuple[PyTree, optax.OptState, dict[str, jax.Array]]:
    """Runs ``num_epochs`` x ``num_minibatches`` PPO steps on one batch of sequences.

    Args:
        key: PRNG key for minibatch shuffling.
        net_params: Policy parameters.
        opt_state: Optimizer state.
        traj: Experience ``[T, B, ...]``.
        h0: Memory at the start of the unroll ``[B, S]``.
        apply_fn: The recurrent policy.
        dist: Its action distribution.
        optimizer: From :func:`make_optimizer`.
        config: Hyperparameters.
        loss_fn: ``loss_fn(params, minibatch, apply_fn, dist, config) -> (loss, diagnostics)``;
            :func:`ppo_loss`, or one that adds auxiliary terms to :func:`ppo_objective`.

    Returns:
        New parameters, optimizer state, and the mean of the loss diagnostics.
    """
    adv, target = advantages(traj, config)
    batch = PPOBatch(
        h0=h0,
        obs=traj.obs,
        start=traj.start,
        action=traj.action,
        log_prob=traj.log_prob,
        value=traj.value,
        advantage=adv,
        target=target,
        reward=traj.reward,
    )
    num_envs = h0.shape[0]
    mb = config.num_minibatches
    grad_fn = jax.grad(loss_fn, has_aux=True)

    def take(perm):
        # [B, ...] leaves index axis 0, [T, B, ...] leaves axis 1 -> [M, ..., B / M, ...]
        def split(x, axis):
            x = jnp.take(x, perm, axis=axis)
            x = jnp.moveaxis(x, axis, 0).reshape(
                (mb, num_envs // mb) + x.shape[:axis] + x.shape[axis + 1 :]
            )
            return jnp.moveaxis(x, 1, axis + 1)

        return PPOBatch(
            *(
                split(x, 0 if name == "h0" else 1)
                for name, x in zip(PPOBatch._fields, batch, strict=True)
            )
        )

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        grads, aux = grad_fn(params, minibatch, apply_fn, dist, config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), aux

    def epoch(carry, key):
        minibatches = take(jax.random.permutation(key, num_envs))
        return jax.lax.scan(minibatch_step, carry, minibatches)

    (net_params, opt_state), aux = jax.lax.scan(
        epoch, (net_params, opt_state), jax.random.split(key, config.num_epochs)
    )
    metrics = jax.tree.map(jnp.mean, aux)
    metrics["value_target_mean"] = target.mean()
    return net_params, opt_state, metrics
