"""RL²'s recurrent policy trained off-policy with SAC: the memory-based baseline of PEARL.

The recurrent family's answer to PEARL's sample efficiency (Heess et al. 2015, "Memory-based
control with recurrent neural networks"; the recurrent baseline of Rakelly et al. 2019): the
policy is RL²'s — a GRU over ``obs ⊕ prev action ⊕ prev reward ⊕ done`` whose memory persists
across the ``K`` episodes of a trial — but it learns from replayed experience with SAC instead
of on-policy from fresh trials.

* **Replay of segments with stored carries.** Every iteration collects ``rollout_len`` steps
  (default: one whole trial) in ``num_envs`` environments with the RL² collectors; each segment
  goes to a :class:`~quickstudy.rollout.replay.SequenceReplay` with the observation that follows
  it and the memory before it (R2D2's stored state). A gradient step recomputes the memory over
  whole sampled segments with the current weights, from the stored carry. With the default
  ``rollout_len`` every segment starts a trial, so the stored carry is the zero state and
  nothing is stale: no burn-in is needed.
* **One recurrent encoder, trained by the critics.** SAC's actor and twin critics are MLPs on
  ``h_t ⊕ x_t`` (memory and current input). The GRU learns from the critics' loss only; the actor
  reads the memory with its gradient stopped, as PEARL's actor reads ``z``. The critics' targets
  read the memory of a Polyak-averaged copy of the GRU (rate ``sac.tau``), as a recurrent DQN's
  target network does: with the online GRU's memory in the targets, the targets of every state
  moved with each step of the GRU, and on ``cheetah-vel`` the critic's loss stayed 5-10x
  PEARL's and the policy did not learn in 160 k steps (``docs/results/pearl.md``).
* **Trials as one continuing stream.** Q-values bootstrap across the episodes of a trial (the
  next episode's first step follows the last one of the previous episode in memory) and across
  the end of a trial too, into the first step of the next trial (a new task, the memory reset):
  nothing is terminal. Stopping at the trial's end (RL²'s finite objective) makes Q depend on
  the steps left in the trial, which the critic does not see; on ``cheetah-vel`` its loss then
  stayed 5-10x PEARL's and the policy did not learn in 134 k steps (``docs/results/pearl.md``).
  This is the usual treatment of a time limit the agent does not observe (Pardo et al. 2018).

The meta-test is RL²'s: a trial of ``points`` episodes per held-out task, the memory kept
throughout; by default the policy acts with the squashed mean (``deterministic_eval``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from quickstudy.algorithms.rl2 import trial_collectors, trial_meta_test, trial_metrics
from quickstudy.envs.base import Box, is_host
from quickstudy.errors import ConfigError
from quickstudy.learners.sac import SACConfig, SACState, Transitions, make_sac
from quickstudy.networks.distributions import TanhGaussian
from quickstudy.networks.recurrent import GRU
from quickstudy.objectives.sac import polyak
from quickstudy.rollout.base import RolloutState
from quickstudy.rollout.replay import (
    SequenceReplay,
    sequence_replay_add,
    sequence_replay_bytes,
    sequence_replay_init,
    sequence_replay_sample,
)
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import HostTrial, Trial
from quickstudy.types import (
    Algorithm,
    Policy,
    PolicyOutput,
    Transition,
    Watch,
    check_fields,
    leaves_of,
)

PyTree = Any
REPLAY_BUDGET = 4 * 2**30
"""Most bytes the replay may take (PEARL's budget)."""

RECURRENT_SAC = SACConfig(
    hidden_sizes=(128, 128, 128), reward_scale=5.0, alpha=1.0, auto_alpha=False
)
"""PEARL's SAC on 2 CPU cores (fixed temperature 1, reward scale 5), for a like-for-like test."""


@dataclasses.dataclass(frozen=True)
class RL2SACConfig:
    """RL²'s recurrent policy and SAC, with a replay of trial segments.

    Attributes:
        total_steps: Environment steps of meta-training.
        episodes: Episodes per trial ``K`` (0: the task's default).
        num_envs: Environments (trials) collected per iteration.
        rollout_len: Steps per environment per iteration, the length of a replayed segment
            (0: one whole trial).
        memory_size: GRU state size (the memory).
        train_ratio: Gradient steps per environment step collected (PEARL's schedules: 0.5 on
            the point robot, 0.2 on the half-cheetah).
        batch_segments: Segments per gradient step (the GRU runs over all their steps).
        batch_steps: Steps per segment in the SAC loss, drawn uniformly.
        replay_size: Transitions the replay keeps (in whole segments).
        encoder_lr: Adam step size of the GRU.
        deterministic_eval: Act with the squashed mean at meta-test.
        sac: The SAC learner on ``h_t ⊕ x_t``.
    """

    total_steps: int = 200_000
    episodes: int = 0
    num_envs: int = 16
    rollout_len: int = 0
    memory_size: int = 128
    train_ratio: float = 0.5
    batch_segments: int = 16
    batch_steps: int = 64
    replay_size: int = 1_000_000
    encoder_lr: float = 3e-4
    deterministic_eval: bool = True
    sac: SACConfig = RECURRENT_SAC

    def __post_init__(self):
        check_fields(
            self,
            positive_int=(
                "total_steps",
                "num_envs",
                "memory_size",
                "batch_segments",
                "batch_steps",
                "replay_size",
            ),
            nonneg_int=("episodes", "rollout_len"),
            positive=("train_ratio", "encoder_lr"),
        )


class RL2SACParams(NamedTuple):
    """The learner: SAC's state, the GRU's parameters, their optimiser state and target copy."""

    sac: SACState
    encoder: PyTree
    encoder_opt: Any
    target_encoder: PyTree


class RL2SACState(NamedTuple):
    """Everything needed to continue training bit-exactly.

    Attributes:
        params: The learner.
        replay: The segments collected so far.
        rollout: Environments, tasks and memory in flight.
        key: PRNG key.
        update: Iterations done (int32 scalar).
    """

    params: RL2SACParams
    replay: SequenceReplay
    rollout: RolloutState
    key: jax.Array
    update: jax.Array


def segment_memory(gru: nn.Module, encoder: PyTree, segments: SequenceReplay) -> jax.Array:
    """The memory at every step of replayed segments, recomputed from their stored carries.

    Args:
        gru: The GRU module.
        encoder: Its parameters.
        segments: Segments ``[B, ...]`` (:class:`~quickstudy.rollout.replay.SequenceReplay`).

    Returns:
        The GRU's state after reading each step's input, and the one after the segment,
        ``[B, L + 1, H]``.
    """
    obs, start = jnp.swapaxes(segments.obs, 0, 1), jnp.swapaxes(segments.start, 0, 1)
    return jnp.swapaxes(gru.apply(encoder, segments.carry, obs, start)[1], 0, 1)


def make_rl2_sac(config: RL2SACConfig, tasks: TaskDistribution) -> Algorithm:
    """Builds the recurrent SAC baseline for a continuous-action task distribution.

    ``parts``: ``policy`` (RL²'s :class:`~quickstudy.types.Policy` contract, a squashed
    Gaussian), ``sac``, ``gru``, ``env`` (the trial environment) and ``policy_params``
    (``RL2SACParams -> policy params``).

    Raises:
        ConfigError: ``tasks`` is not an RL distribution with a bounded continuous action
            space, or the replay would exceed its budget.
    """
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError(f"rl2-sac trains on RL task distributions; {tasks.name} is not one")
    example = tasks.sample_one(jax.random.key(0))
    space = tasks.env.action_space(example)
    if not isinstance(space, Box) or not (math.isfinite(space.low) and math.isfinite(space.high)):
        raise ConfigError(
            f"rl2-sac needs a bounded continuous action space; {tasks.name} has {space}"
        )
    host = is_host(tasks.env)
    episodes = config.episodes or tasks.episodes
    trial_len = episodes * tasks.env.horizon
    rollout_len = config.rollout_len or trial_len
    per_iteration = config.num_envs * rollout_len
    num_updates = max(1, config.total_steps // per_iteration)
    grad_steps = max(1, round(config.train_ratio * per_iteration))
    capacity = max(config.replay_size // rollout_len, config.num_envs)

    def trial_env(k: int):
        return HostTrial(tasks.env, k) if host else Trial(tasks.env, k)

    env = trial_env(episodes)
    obs_dim = Trial(tasks.env, episodes).observation_space(example).shape[0]
    act_dim = int(math.prod(space.shape))
    H = config.memory_size
    replay_need = sequence_replay_bytes(capacity, rollout_len, obs_dim, act_dim, H)
    if replay_need > REPLAY_BUDGET:
        raise ConfigError(
            f"a replay of {capacity:,} segments x {rollout_len} steps needs "
            f"{replay_need / 2**30:.2f} GiB, over the {REPLAY_BUDGET / 2**30:.0f} GiB budget; "
            "lower replay_size, num_envs (the replay holds at least one iteration), "
            "memory_size (each segment stores its carry) or the segment length (rollout_len, "
            "or episodes x the horizon)"
        )

    gru = GRU(H)
    sac = make_sac(config.sac, H + obs_dim, act_dim)
    dist = TanhGaussian(act_dim, float(space.low), float(space.high))
    enc_opt = optax.adam(config.encoder_lr)

    def policy_init(key: jax.Array) -> dict:
        k_gru, k_sac = jax.random.split(key)
        enc = gru.init(k_gru, jnp.zeros((1, H)), jnp.zeros((1, 1, obs_dim)), jnp.ones((1, 1), bool))
        return {"encoder": enc, "actor": sac.init(k_sac).actor}

    def policy_apply(params, carry, obs, start):
        carry, h = gru.apply(params["encoder"], carry, obs, start)
        out = sac.actor_apply(params["actor"], jnp.concatenate([h, obs], -1))
        return carry, PolicyOutput(out, jnp.zeros(obs.shape[:2]), {})

    policy = Policy(
        init=policy_init,
        init_carry=lambda batch: jnp.zeros((batch, H), jnp.float32),
        apply=policy_apply,
        distribution=dist,
    )

    def policy_params(params: RL2SACParams) -> dict:
        return {"encoder": params.encoder, "actor": params.sac.actor}

    def init_learner(key: jax.Array) -> RL2SACParams:
        k_gru, k_sac = jax.random.split(key)
        enc = policy_init(k_gru)["encoder"]
        return RL2SACParams(sac.init(k_sac), enc, enc_opt.init(enc), enc)

    def gradient_step(params: RL2SACParams, replay: SequenceReplay, key: jax.Array):
        k_seg, k_t, k_sac = jax.random.split(key, 3)
        seg = sequence_replay_sample(replay, k_seg, config.batch_segments)
        t = jax.random.randint(k_t, (config.batch_segments, config.batch_steps), 0, rollout_len)

        def at(x, offset=0):  # [B, L(+1), ...] -> the sampled steps, flattened [B·M, ...]
            rows = jnp.take_along_axis(x, (t + offset).reshape(t.shape + (1,) * (x.ndim - 2)), 1)
            return rows.reshape(-1, *x.shape[2:])

        h, encode_vjp = jax.vjp(lambda enc: at(segment_memory(gru, enc, seg)), params.encoder)
        h_next = at(segment_memory(gru, params.target_encoder, seg), 1)
        batch = Transitions(
            obs=jnp.concatenate([h, at(seg.obs)], -1),
            action=at(seg.action),
            reward=at(seg.reward),
            next_obs=jnp.concatenate([h_next, at(seg.obs, 1)], -1),
            done=at(seg.done),
        )
        sac_state, metrics, g_obs = sac.update_with_obs_grad(params.sac, batch, k_sac)
        (grads,) = encode_vjp(g_obs[:, :H])
        updates, opt_state = enc_opt.update(grads, params.encoder_opt)
        encoder = optax.apply_updates(params.encoder, updates)
        target = jax.tree.map(
            lambda t, o: polyak(t, o, config.sac.tau), params.target_encoder, encoder
        )
        return RL2SACParams(sac_state, encoder, opt_state, target), metrics

    def learn(params, replay, traj: Transition, carry0, last_obs, last_start, key):
        """Adds the segments just collected, then takes the iteration's gradient steps."""
        segments = SequenceReplay(
            obs=jnp.swapaxes(jnp.concatenate([traj.obs, last_obs[None]], 0), 0, 1),
            start=jnp.swapaxes(jnp.concatenate([traj.start, last_start[None]], 0), 0, 1),
            carry=carry0,
            action=jnp.swapaxes(dist.unit(traj.action), 0, 1),
            reward=jnp.swapaxes(traj.reward, 0, 1),
            done=jnp.zeros_like(jnp.swapaxes(traj.reward, 0, 1)),  # a continuing stream
            added=jnp.zeros((), jnp.int32),
        )
        replay = sequence_replay_add(replay, segments)
        params, metrics = jax.lax.scan(
            lambda p, k: gradient_step(p, replay, k), params, jax.random.split(key, grad_steps)
        )
        return params, replay, {**jax.tree.map(jnp.mean, metrics), **trial_metrics(traj)}

    jit, start, collect, play = trial_collectors(tasks, env, policy)
    learn, init_learner_jit = jit(learn), jit(init_learner)
    split3 = jit(lambda key: tuple(jax.random.split(key, 3)))

    def init(key: jax.Array) -> RL2SACState:
        k_net, k_env, key = split3(key)
        replay = sequence_replay_init(capacity, rollout_len, obs_dim, act_dim, H)
        rollout = start(k_env, policy=policy, batch=config.num_envs)
        zero = jnp.zeros((), jnp.int32)
        return RL2SACState(init_learner_jit(k_net), replay, rollout, key, zero)

    def update(state: RL2SACState) -> tuple[RL2SACState, dict[str, jax.Array]]:
        key, k_roll, k_learn = split3(state.key)
        pp = policy_params(state.params)
        rollout, traj = collect(k_roll, state.rollout, pp, num_steps=rollout_len)
        params, replay, metrics = learn(
            state.params,
            state.replay,
            traj,
            state.rollout.carry,
            jnp.asarray(rollout.obs),
            jnp.asarray(rollout.start),
            k_learn,
        )
        return RL2SACState(params, replay, rollout, key, state.update + 1), metrics

    meta_test = trial_meta_test(
        play, trial_env, tasks.env.horizon, policy_params, config.deterministic_eval
    )

    return Algorithm(
        config=config,
        tasks=tasks,
        init=init,
        update=update,
        meta_test=meta_test,
        num_updates=num_updates,
        steps_per_update=per_iteration,
        jittable=not host,
        progress=("trial_return", "trial return"),
        default_points=episodes,
        derived={
            "episodes": episodes,
            "rollout_len": rollout_len,
            "gradient_steps_per_iteration": grad_steps,
            "replay_segments": capacity,
            "replay_bytes": replay_need,
        },
        parts={
            "policy": policy,
            "sac": sac,
            "gru": gru,
            "env": env,
            "policy_params": policy_params,
        },
        watch=(Watch("critic_loss", growth=1e4),),
        data_axes=lambda state: leaves_of(state, "rollout", "replay"),
    )
