"""Trust-region policy optimisation (Schulman et al. 2015) on pytrees, and a TRPO learner.

:func:`trust_region_update` is one TRPO step on any objective: the natural-gradient direction by
conjugate gradient on Gauss-Newton Fisher-vector products of the policy's distribution
parameters, scaled to the KL bound, then a backtracking line search. MAML-RL's outer loop uses it
on the meta-objective; :func:`make_trpo` uses it for a recurrent actor-critic (the RL² paper's
learner), fitting the critic by Adam regression on the value targets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from quickstudy.errors import ConfigError
from quickstudy.learners.base import (
    AuxLoss,
    SequenceBatch,
    linear_decay,
    make_optimizer,
    sequence_batch,
    sgd_epochs,
)
from quickstudy.learners.ppo import PPOConfig
from quickstudy.objectives.ppo import clipped_value_loss, normalize
from quickstudy.objectives.trust_region import (
    TrustRegionInfo,
    gauss_newton_fvp,
    trust_region_step,
)
from quickstudy.types import Learner, Policy, Transition, Watch, check_fields

PyTree = Any


@dataclasses.dataclass(frozen=True)
class TrustRegionConfig:
    """A trust-region step.

    Attributes:
        max_kl: KL bound δ of the mean KL between the old and the new policy.
        cg_iters: Conjugate-gradient iterations.
        cg_damping: Added to the Fisher-vector product.
        backtrack_ratio: Line-search shrink factor.
        max_backtracks: Line-search steps before the update is skipped.
    """

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15

    def __post_init__(self):
        check_fields(
            self,
            positive=("max_kl",),
            positive_int=("cg_iters", "max_backtracks"),
            nonneg=("cg_damping",),
            unit_open=("backtrack_ratio",),
        )


def trust_region_update(
    params: PyTree,
    loss_fn: Callable[[PyTree], jax.Array],
    kl_fn: Callable[[PyTree], jax.Array],
    dist_fn: Callable[[PyTree], jax.Array],
    fisher: Callable[[jax.Array], jax.Array],
    config: TrustRegionConfig,
) -> tuple[PyTree, TrustRegionInfo]:
    """One TRPO step on a pytree of parameters.

    Args:
        params: Current parameters (any pytree).
        loss_fn: Surrogate loss to minimise, ``params -> scalar``.
        kl_fn: Mean KL from the data-collecting policy, ``params -> scalar``.
        dist_fn: ``params -> distribution parameters`` of every sample (any shape).
        fisher: ``u -> M u``, the Fisher metric of the distribution parameters at the old
            parameters, each sample weighted by its share of the mean KL.
        config: The step's settings.

    Returns:
        The new parameters (the old ones when the line search failed) and diagnostics.
    """
    flat, unravel = ravel_pytree(params)
    new_flat, info = trust_region_step(
        lambda th: loss_fn(unravel(th)),
        lambda th: kl_fn(unravel(th)),
        flat,
        config.max_kl,
        config.cg_iters,
        config.cg_damping,
        config.backtrack_ratio,
        config.max_backtracks,
        fvp=gauss_newton_fvp(lambda th: dist_fn(unravel(th)), flat, fisher),
    )
    return unravel(new_flat), info


def partition(
    params: PyTree, labels: PyTree, group: str
) -> tuple[list[jax.Array], Callable[[list[jax.Array]], PyTree]]:
    """The leaves of ``params`` labelled ``group``, and the function that puts them back.

    Returns:
        ``(leaves, merge)``: ``merge(new_leaves)`` is ``params`` with those leaves replaced.
    """
    leaves, treedef = jax.tree.flatten(params)
    names = jax.tree.leaves(labels)
    chosen = [i for i, name in enumerate(names) if name == group]

    def merge(new: list[jax.Array]) -> PyTree:
        out = list(leaves)
        for i, x in zip(chosen, new, strict=True):
            out[i] = x
        return jax.tree.unflatten(treedef, out)

    return [leaves[i] for i in chosen], merge


def make_trpo(
    trust: TrustRegionConfig,
    config: PPOConfig,
    policy: Policy,
    num_updates: int,
    aux_losses: Sequence[AuxLoss] = (),
) -> Learner:
    """TRPO for a recurrent actor-critic with a separate critic.

    The actor's parameters take one trust-region step per batch on the importance-weighted
    surrogate (advantages standardised with ``normalize_advantages``); the critic's are fitted to
    the GAE value targets with ``num_epochs`` x ``num_minibatches`` Adam steps of the value loss.

    Args:
        trust: The trust-region step.
        config: Discount, GAE and the critic's regression (learning rate, epochs, minibatches,
            value clip, gradient clip; the value loss is minimised alone, so ``vf_coef``,
            ``ent_coef`` and ``clip_eps`` are not read).
        policy: The policy; its ``param_groups`` must separate actor and critic.
        num_updates: Batches in the whole training (for the critic's learning-rate schedule).
        aux_losses: Must be empty (a trust-region step has no room for them).

    Raises:
        ConfigError: The policy shares parameters between actor and critic, or auxiliary
            losses were asked for.
    """
    if policy.param_groups is None:
        raise ConfigError("the trpo learner needs a separate critic (separate_critic=True)")
    if aux_losses:
        names = ", ".join(term.name for term in aux_losses)
        raise ConfigError(f"the trpo learner takes no auxiliary losses ({names}); use ppo or a2c")
    dist = policy.distribution
    steps = num_updates * config.num_epochs * config.num_minibatches
    lr = linear_decay(config.learning_rate, config.anneal_lr, steps)
    critic_opt = make_optimizer(lr, config.max_grad_norm, config.adam_eps)

    def value_loss(params: PyTree, batch: SequenceBatch) -> jax.Array:
        _, out = policy.apply(params, batch.carry0, batch.obs, batch.start)
        return clipped_value_loss(
            out.value, batch.value, batch.target, config.value_clip_eps
        ).mean()

    def update(
        key: jax.Array, params: PyTree, opt_state: PyTree, traj: Transition, carry0: Any
    ) -> tuple[PyTree, PyTree, dict[str, jax.Array]]:
        batch = sequence_batch(traj, carry0, config.gamma, config.gae_lambda)
        adv = normalize(batch.advantage) if config.normalize_advantages else batch.advantage
        actor, merge = partition(params, policy.param_groups(params), "actor")

        def dists(a: list[jax.Array]) -> jax.Array:
            return policy.apply(merge(a), carry0, batch.obs, batch.start)[1].dist

        dist_old = jax.lax.stop_gradient(dists(actor))
        count = batch.reward.size

        def surrogate(a: list[jax.Array]) -> jax.Array:
            ratio = jnp.exp(dist.log_prob(dists(a), batch.action) - batch.log_prob)
            return -jnp.mean(ratio * adv)

        def mean_kl(a: list[jax.Array]) -> jax.Array:
            return dist.kl(dist_old, dists(a)).mean()

        actor, info = trust_region_update(
            actor,
            surrogate,
            mean_kl,
            dists,
            lambda u: dist.fisher_product(dist_old, u) / count,
            trust,
        )
        params = merge(actor)

        def value_grad(params, minibatch):
            loss, grads = jax.value_and_grad(value_loss)(params, minibatch)
            return grads, loss

        params, opt_state, v_losses = sgd_epochs(
            key,
            params,
            opt_state,
            batch,
            value_grad,
            critic_opt,
            config.num_epochs,
            config.num_minibatches,
            config.strided_minibatches,
        )
        metrics = {
            "policy_loss": info.loss_after,
            "value_loss": v_losses.mean(),
            "entropy": dist.entropy(dist_old).mean(),
            "approx_kl": info.kl,
            "backtracks": info.backtracks.astype(jnp.float32),
            "accepted": info.accepted.astype(jnp.float32),
            "value_target_mean": batch.target.mean(),
        }
        return params, opt_state, metrics

    watch = (Watch("approx_kl", above=5 * trust.max_kl), Watch("value_loss", growth=1e4))
    return Learner(init=critic_opt.init, update=update, watch=watch)
