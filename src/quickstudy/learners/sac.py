"""Soft actor-critic as a learner ``(init, update, act)``: the off-policy core of PEARL.

Twin Q-networks with Polyak-averaged target copies, a squashed-Gaussian actor and, optionally,
a learned temperature (SAC v2, Haarnoja et al. 2018b). PEARL's own code uses the first SAC's
extra state-value network and a fixed temperature; the twin-Q form needs no V-network, keeps the
critic loss (the encoder's training signal in PEARL) one regression per Q-network, and with
``auto_alpha=False`` and PEARL's reward scale it plays the same role as a fixed temperature.

The update is a pure function of the state and one batch of transitions, so a caller can ``jit``
it, ``scan`` it over several batches, or add terms to the critic's inputs (PEARL's ``z``) by
concatenating them to the observations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from quickstudy.errors import ConfigError
from quickstudy.networks.mlp import MLP
from quickstudy.objectives.sac import (
    actor_loss,
    critic_loss,
    polyak,
    soft_q_target,
    squashed_gaussian_sample,
    temperature_loss,
)
from quickstudy.types import check_fields

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Soft actor-critic's settings.

    Attributes:
        hidden_sizes: Hidden widths of the actor and of each Q-network (ReLU).
        learning_rate: Adam step size of all three optimisers.
        gamma: Discount.
        tau: Polyak rate of the target Q-networks.
        reward_scale: Multiplies rewards in the Bellman target (PEARL: 5 on most tasks).
        alpha: Fixed entropy temperature (``auto_alpha=False``), or the learned one's start.
        auto_alpha: Learn the temperature towards ``target_entropy``.
        target_entropy: Entropy target per action dimension times the dimension (``None``:
            ``-A``, the usual choice).
    """

    hidden_sizes: tuple[int, ...] = (256, 256)
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    reward_scale: float = 1.0
    alpha: float = 1.0
    auto_alpha: bool = True
    target_entropy: float | None = None

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):  # as read back from config.json
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        check_fields(
            self,
            positive=("learning_rate", "reward_scale", "alpha"),
            unit_open=("gamma",),
        )
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"tau must be in (0, 1], got {self.tau!r}")


class Transitions(NamedTuple):
    """A batch of transitions ``[B, ...]``.

    Attributes:
        obs: Observations (with anything the policy conditions on, e.g. PEARL's z) ``[B, D]``.
        action: Actions in ``[-1, 1]`` ``[B, A]``.
        reward: Rewards ``[B]``.
        next_obs: Next observations ``[B, D]``.
        done: 1 where the episode terminated (not truncated) ``[B]``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    done: jax.Array


class SACState(NamedTuple):
    """Parameters and optimiser states.

    Attributes:
        actor: Actor parameters.
        critic: Parameters of both Q-networks (a leading axis of 2).
        target: Target copies of ``critic``.
        log_alpha: Log temperature (a scalar).
        opt: Optimiser states ``{"actor", "critic", "alpha"}``.
    """

    actor: PyTree
    critic: PyTree
    target: PyTree
    log_alpha: jax.Array
    opt: dict[str, Any]


class SAC(NamedTuple):
    """The learner's functions.

    Attributes:
        init: ``init(key) -> SACState``.
        update: ``update(state, batch, key) -> (state, metrics)``: one gradient step of the
            critics, the actor and the temperature, then the target update.
        act: ``act(actor_params, obs [B, D], key, deterministic) -> actions [B, A]``.
        q_values: ``q_values(critic_params, obs, action) -> [2, B]``.
        critic_grad: ``critic_grad(state, batch, key) -> (loss, grads w.r.t. the critic and the
            observations)``, for callers whose observations carry trainable parts (PEARL's z).
        update_with_obs_grad: ``update`` that also returns the critic loss's gradient w.r.t.
            the observations ``[B, D]`` (taken before the step, from the same computation).
        actor_apply: ``actor_apply(actor_params, obs [..., D]) -> [..., 2A]``: the Gaussian's
            mean and log standard deviation before squashing (a
            :class:`~quickstudy.networks.distributions.TanhGaussian`'s parameters).
    """

    init: Any
    update: Any
    act: Any
    q_values: Any
    critic_grad: Any
    update_with_obs_grad: Any
    actor_apply: Any


class _Actor(nn.Module):
    hidden_sizes: tuple[int, ...]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.act_dim)(obs)
        return out[..., : self.act_dim], out[..., self.act_dim :]


def make_sac(config: SACConfig, obs_dim: int, act_dim: int) -> SAC:
    """Builds SAC for observations ``[D]`` and actions ``[A]`` in ``[-1, 1]``."""
    actor = _Actor(tuple(config.hidden_sizes), act_dim)
    q_net = MLP(tuple(config.hidden_sizes), 1)
    target_entropy = -float(act_dim) if config.target_entropy is None else config.target_entropy
    opt = optax.adam(config.learning_rate)

    def q_values(critic: PyTree, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return jax.vmap(lambda p: q_net.apply(p, x)[..., 0])(critic)

    def sample(actor_params, obs, key):
        mean, log_std = actor.apply(actor_params, obs)
        return squashed_gaussian_sample(key, mean, log_std)

    def act(actor_params: PyTree, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        if deterministic:
            return jnp.tanh(actor.apply(actor_params, obs)[0])
        return sample(actor_params, obs, key)[0]

    def init(key: jax.Array) -> SACState:
        k_actor, k_q = jax.random.split(key)
        obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        actor_params = actor.init(k_actor, obs)
        critic = jax.vmap(lambda k: q_net.init(k, jnp.concatenate([obs, action], -1)))(
            jax.random.split(k_q, 2)
        )
        log_alpha = jnp.asarray(jnp.log(config.alpha), jnp.float32)
        opts = {
            "actor": opt.init(actor_params),
            "critic": opt.init(critic),
            "alpha": opt.init(log_alpha),
        }
        return SACState(actor_params, critic, critic, log_alpha, opts)

    def critic_objective(critic, obs, state, batch, key):
        alpha = jnp.exp(state.log_alpha)
        next_action, next_log_prob = sample(state.actor, batch.next_obs, key)
        next_q = q_values(state.target, batch.next_obs, next_action)
        target = soft_q_target(
            batch.reward,
            batch.done,
            next_q[0],
            next_q[1],
            next_log_prob,
            alpha,
            config.gamma,
            config.reward_scale,
        )
        q = q_values(critic, obs, batch.action)
        return critic_loss(q[0], q[1], target), q

    def critic_value_and_grads(state: SACState, batch: Transitions, key: jax.Array):
        return jax.value_and_grad(critic_objective, argnums=(0, 1), has_aux=True)(
            state.critic, batch.obs, state, batch, key
        )

    def critic_grad(state: SACState, batch: Transitions, key: jax.Array):
        (loss, _), grads = critic_value_and_grads(state, batch, key)
        return loss, grads

    def update(state: SACState, batch: Transitions, key: jax.Array):
        new, metrics, _ = update_with_obs_grad(state, batch, key)
        return new, metrics

    def update_with_obs_grad(state: SACState, batch: Transitions, key: jax.Array):
        k_target, k_actor = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        (q_loss, q), (q_grads, obs_grads) = critic_value_and_grads(state, batch, k_target)
        q_updates, critic_opt = opt.update(q_grads, state.opt["critic"])
        critic = optax.apply_updates(state.critic, q_updates)

        def policy_objective(actor_params):
            action, log_prob = sample(actor_params, batch.obs, k_actor)
            qs = q_values(jax.lax.stop_gradient(critic), batch.obs, action)
            return actor_loss(qs[0], qs[1], log_prob, alpha), log_prob

        (pi_loss, log_prob), pi_grads = jax.value_and_grad(policy_objective, has_aux=True)(
            state.actor
        )
        pi_updates, actor_opt = opt.update(pi_grads, state.opt["actor"])
        actor_params = optax.apply_updates(state.actor, pi_updates)
        log_alpha, alpha_opt, a_loss = state.log_alpha, state.opt["alpha"], jnp.zeros(())
        if config.auto_alpha:
            a_loss, a_grad = jax.value_and_grad(temperature_loss)(
                state.log_alpha, log_prob, target_entropy
            )
            a_update, alpha_opt = opt.update(a_grad, state.opt["alpha"])
            log_alpha = optax.apply_updates(state.log_alpha, a_update)
        target = jax.tree.map(lambda t, o: polyak(t, o, config.tau), state.target, critic)
        new = SACState(
            actor_params,
            critic,
            target,
            log_alpha,
            {"actor": actor_opt, "critic": critic_opt, "alpha": alpha_opt},
        )
        metrics = {
            "critic_loss": q_loss,
            "actor_loss": pi_loss,
            "alpha_loss": a_loss,
            "alpha": jnp.exp(log_alpha),
            "q_mean": q.mean(),
            "entropy": -log_prob.mean(),
        }
        return new, metrics, obs_grads

    def actor_apply(actor_params: PyTree, obs: jax.Array) -> jax.Array:
        return jnp.concatenate(actor.apply(actor_params, obs), axis=-1)

    return SAC(init, update, act, q_values, critic_grad, update_with_obs_grad, actor_apply)
