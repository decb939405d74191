"""Advantage actor-critic (A2C; Mnih et al. 2016), the learner of Wang et al. 2016.

"Learning to reinforcement learn" trains its recurrent meta-learner with A2C: one gradient step per
batch of the policy gradient with a learned baseline, a value regression and an entropy bonus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from quickstudy.learners.base import (
    AuxLoss,
    SequenceBatch,
    add_aux_losses,
    linear_decay,
    sequence_batch,
)
from quickstudy.learners.ppo import PPOConfig, group_optimizer
from quickstudy.objectives.ppo import normalize
from quickstudy.types import Learner, Policy, PolicyOutput, Transition, Watch

PyTree = Any


def a2c_objective(
    out: PolicyOutput, batch: SequenceBatch, dist: Any, config: PPOConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-E[log pi(a|h) A] + vf_coef * 0.5 E[(V - G)^2] - ent_coef * H``.

    Args:
        out: The policy's outputs on ``batch.obs``.
        batch: The batch (advantages ``A`` and value targets ``G``).
        dist: The action distribution.
        config: ``vf_coef``, ``ent_coef``, ``normalize_advantages``.

    Returns:
        The scalar loss and diagnostics.
    """
    log_prob = dist.log_prob(out.dist, batch.action)
    adv = normalize(batch.advantage) if config.normalize_advantages else batch.advantage
    pg_loss = -jnp.mean(log_prob * jax.lax.stop_gradient(adv))
    v_loss = 0.5 * jnp.mean(jnp.square(out.value - batch.target))
    entropy = dist.entropy(out.dist).mean()
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    metrics = {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy,
    }
    return loss, metrics


def make_a2c(
    config: PPOConfig, policy: Policy, num_updates: int, aux_losses: Sequence[AuxLoss] = ()
) -> Learner:
    """A2C as an ``(init, update)`` pair: one clipped Adam step on each whole batch.

    Args:
        config: Reads ``learning_rate``, ``anneal_lr``, ``max_grad_norm``,
            ``clip_per_network``, ``adam_eps``, ``vf_coef``, ``ent_coef``, ``gamma``,
            ``gae_lambda`` and ``normalize_advantages`` (not the epochs, minibatches or clips).
        policy: The policy it trains.
        num_updates: Batches in the whole training (for the learning-rate schedule).
        aux_losses: Auxiliary terms added to the loss.
    """
    optimizer = group_optimizer(
        config, policy, linear_decay(config.learning_rate, config.anneal_lr, num_updates)
    )

    def loss_fn(params: PyTree, batch: SequenceBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
        _, out = policy.apply(params, batch.carry0, batch.obs, batch.start)
        loss, metrics = a2c_objective(out, batch, policy.distribution, config)
        return add_aux_losses(loss, metrics, out, batch, aux_losses)

    def update(
        key: jax.Array, params: PyTree, opt_state: PyTree, traj: Transition, carry0: Any
    ) -> tuple[PyTree, PyTree, dict[str, jax.Array]]:
        del key
        batch = sequence_batch(traj, carry0, config.gamma, config.gae_lambda)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["value_target_mean"] = batch.target.mean()
        return optax.apply_updates(params, updates), opt_state, metrics

    return Learner(
        init=optimizer.init,
        update=update,
        watch=(Watch("value_loss", growth=1e4), Watch("grad_norm", growth=1e4)),
    )
