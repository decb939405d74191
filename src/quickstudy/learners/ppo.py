"""PPO for recurrent policies over whole sequences (Schulman et al. 2017).

``num_epochs`` passes over each batch, each in ``num_minibatches`` minibatches of whole sequences
(see :mod:`quickstudy.learners.base`), with the clipped surrogate, a (clipped) value loss and an
entropy bonus, plus any auxiliary terms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from quickstudy.errors import ConfigError
from quickstudy.learners.base import (
    AuxLoss,
    SequenceBatch,
    add_aux_losses,
    linear_decay,
    make_optimizer,
    sequence_batch,
    sgd_epochs,
)
from quickstudy.learners.split import network_mesh, split_sgd_epochs
from quickstudy.objectives.ppo import approx_kl, clipped_surrogate, clipped_value_loss, normalize
from quickstudy.types import (
    PARAM_GROUPS,
    Learner,
    Policy,
    PolicyOutput,
    Transition,
    Watch,
    check_fields,
)

PyTree = Any


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of the on-policy actor-critic learners (PPO; A2C and TRPO read some).

    Attributes:
        learning_rate: Adam step size (A2C's too; TRPO's for its critic).
        num_epochs: Passes over each batch (PPO; TRPO's critic).
        num_minibatches: Minibatches per pass, split over sequences (PPO; TRPO's critic).
        clip_eps: Policy ratio clip (PPO).
        value_clip_eps: Clip of the value prediction around the old one (0: none). It is in
            reward units, so it only suits normalised rewards.
        vf_coef: Weight of the value loss.
        ent_coef: Weight of the entropy bonus (PPO, A2C).
        max_grad_norm: Gradient-norm clip.
        clip_per_network: Clip the actor's and the critic's gradients each by its own norm.
            Needs a separate critic. With one global norm the critic's gradients, often
            10-30x the policy's, set how far the clip shrinks the policy's step.
        gamma: Discount.
        gae_lambda: GAE lambda.
        normalize_advantages: Standardise advantages per minibatch.
        adam_eps: Adam's denominator epsilon.
        anneal_lr: Decay the learning rate linearly to zero over training.
        strided_minibatches: Shuffle within groups so that minibatches split over devices.
            Each minibatch takes one sequence from every group of ``num_minibatches``
            consecutive ones, instead of a uniform shuffle of all of them. Sequences are
            i.i.d., so both are valid; with the batch split over devices (``--devices``) only
            this one lets each device compute the gradient of its own sequences, where a
            uniform shuffle repeats the whole gradient computation on every device.
        split_networks: Compute the policy's and the critic's gradients on two devices at once.
            PPO only; needs a separate critic and two devices (on a CPU,
            ``XLA_FLAGS=--xla_force_host_platform_device_count=2``). Same result up to the
            order of float sums; see :mod:`quickstudy.learners.split`.
    """

    learning_rate: float = 3e-4
    num_epochs: int = 4
    num_minibatches: int = 4
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    clip_per_network: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    adam_eps: float = 1e-5
    anneal_lr: bool = True
    strided_minibatches: bool = False
    split_networks: bool = False

    def __post_init__(self):
        check_fields(
            self,
            positive_int=("num_epochs", "num_minibatches"),
            positive=("learning_rate", "clip_eps", "max_grad_norm", "adam_eps"),
            nonneg=("value_clip_eps", "vf_coef", "ent_coef"),
            unit=("gamma", "gae_lambda"),
        )


def ppo_objective(
    out: PolicyOutput, batch: SequenceBatch, dist: Any, config: PPOConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The PPO loss given the policy's outputs on ``batch``.

    Args:
        out: The policy's outputs on ``batch.obs`` (``dist`` ``[T, B, P]``, ``value``
            ``[T, B]``).
        batch: The minibatch.
        dist: The action distribution.
        config: Hyperparameters.

    Returns:
        The scalar loss and diagnostics (policy/value loss, entropy, KL, clip fraction).
    """
    log_prob = dist.log_prob(out.dist, batch.action)
    adv = normalize(batch.advantage) if config.normalize_advantages else batch.advantage
    pg_loss = clipped_surrogate(log_prob, batch.log_prob, adv, config.clip_eps).mean()
    v_loss = clipped_value_loss(out.value, batch.value, batch.target, config.value_clip_eps).mean()
    entropy = dist.entropy(out.dist).mean()
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


def ppo_loss(
    params: PyTree,
    batch: SequenceBatch,
    policy: Policy,
    config: PPOConfig,
    aux_losses: Sequence[AuxLoss] = (),
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO loss of one minibatch of sequences, replayed from their stored memory, plus aux terms."""
    _, out = policy.apply(params, batch.carry0, batch.obs, batch.start)
    loss, metrics = ppo_objective(out, batch, policy.distribution, config)
    return add_aux_losses(loss, metrics, out, batch, aux_losses)


def group_optimizer(
    config: PPOConfig, policy: Policy, learning_rate: float | optax.Schedule
) -> optax.GradientTransformation:
    """Clip (globally, or per network with ``clip_per_network``) and Adam.

    Raises:
        ConfigError: ``clip_per_network`` with a policy that has no separate critic.
    """
    if not config.clip_per_network:
        return make_optimizer(learning_rate, config.max_grad_norm, config.adam_eps)
    if policy.param_groups is None:
        raise ConfigError("clip_per_network needs a separate critic (a shared core is in both)")
    return make_optimizer(
        learning_rate, config.max_grad_norm, config.adam_eps, policy.param_groups, PARAM_GROUPS
    )


def make_ppo(
    config: PPOConfig, policy: Policy, num_updates: int, aux_losses: Sequence[AuxLoss] = ()
) -> Learner:
    """PPO as an ``(init, update)`` pair (see :class:`~quickstudy.types.Learner`).

    Args:
        config: Hyperparameters.
        policy: The policy it trains.
        num_updates: Batches in the whole training (for the learning-rate schedule).
        aux_losses: Auxiliary terms added to the loss.
    """
    steps = num_updates * config.num_epochs * config.num_minibatches
    optimizer = group_optimizer(
        config, policy, linear_decay(config.learning_rate, config.anneal_lr, steps)
    )
    grad_fn = jax.grad(ppo_loss, has_aux=True)
    if config.split_networks:
        if policy.param_groups is None:
            raise ConfigError("split_networks needs a separate critic (a shared core is in both)")
        mesh = network_mesh()
        clip = None if config.clip_per_network else config.max_grad_norm

    def epochs(key, params, opt_state, batch):
        grads = lambda p, mb: grad_fn(p, mb, policy, config, aux_losses)  # noqa: E731
        if config.split_networks:
            return split_sgd_epochs(
                key, params, opt_state, batch, grads, optimizer, policy.param_groups(params),
                clip, config.num_epochs, config.num_minibatches, mesh, config.strided_minibatches,
            )  # fmt: skip
        return sgd_epochs(
            key, params, opt_state, batch, grads, optimizer, config.num_epochs,
            config.num_minibatches, config.strided_minibatches,
        )  # fmt: skip

    def update(
        key: jax.Array, params: PyTree, opt_state: PyTree, traj: Transition, carry0: Any
    ) -> tuple[PyTree, PyTree, dict[str, jax.Array]]:
        batch = sequence_batch(traj, carry0, config.gamma, config.gae_lambda)
        params, opt_state, aux = epochs(key, params, opt_state, batch)
        metrics = jax.tree.map(jnp.mean, aux)
        metrics["value_target_mean"] = batch.target.mean()
        return params, opt_state, metrics

    return Learner(
        init=optimizer.init,
        update=update,
        watch=(Watch("approx_kl", above=1.0), Watch("value_loss", growth=1e4)),
    )
