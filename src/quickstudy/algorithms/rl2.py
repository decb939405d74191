"""RL²: fast reinforcement learning via slow reinforcement learning (Duan et al. 2016).

RL² = trial wrapper + recurrent actor-critic + an on-policy learner. The policy sees ``obs ⊕ prev
action ⊕ prev reward ⊕ done`` and keeps its memory across the ``K`` episodes of a trial, so
adaptation to a task happens in its activations; the outer loop maximises the trial's total
reward. The learner is a choice: PPO (default), TRPO (the RL² paper's) or A2C (Wang et al. 2016,
"Learning to reinforcement learn"). Pure-JAX tasks are collected with ``lax.scan`` inside one
jitted update; host-stepped tasks (:class:`~quickstudy.envs.base.HostEnvironment`) with the host
collector, one jitted policy call per step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from quickstudy.envs.base import Discrete, is_host
from quickstudy.errors import ConfigError
from quickstudy.learners.a2c import make_a2c
from quickstudy.learners.base import AuxLoss
from quickstudy.learners.ppo import PPOConfig, make_ppo
from quickstudy.learners.trpo import TrustRegionConfig, make_trpo
from quickstudy.networks.explore import two_phase_policy
from quickstudy.networks.recurrent import RecurrentActorCritic, recurrent_policy
from quickstudy.objectives.auxiliary import reward_prediction_loss
from quickstudy.rollout.base import RolloutState
from quickstudy.rollout.host import host_run_trials, host_unroll, init_host_rollout, make_host_actor
from quickstudy.rollout.scan import init_rollout, run_trials, unroll
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import HostTrial, Trial, WithTaskFeatures
from quickstudy.types import (
    Algorithm,
    MetaTestResult,
    Policy,
    Transition,
    check_choice,
    check_fields,
    leaves_of,
)

PyTree = Any
LEARNERS = ("ppo", "trpo", "a2c")

RL2_PPO = PPOConfig(learning_rate=2e-3, value_clip_eps=0.0, gae_lambda=0.7)
"""RL²'s learner settings: the paper's GAE λ = 0.3 learned slower than 0.7 on bandit-k5-n100."""


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """RL² (recurrent policy over multi-episode trials) and its learner.

    Attributes:
        total_steps: Environment steps of meta-training.
        episodes: Episodes per trial K (0: the task's default).
        num_envs: Trials collected in parallel.
        rollout_len: Steps per environment per update (0: one full trial). Memory is carried
            across the cut, gradients are truncated there.
        hidden_size: Recurrent state size. The paper's is 256; 64 learns the bandits as well,
            4x faster.
        cell: Recurrent cell.
        critic_hidden_size: State size of the critic's own core (0: ``hidden_size``).
        head_hidden_size: Width of a ReLU layer before the heads (0: none). Without it the
            heads are linear in the core's state, as in the paper.
        separate_critic: Give the value function its own recurrent core (twice the compute).
        task_critic: Asymmetric critic that also reads the true task parameters. Only the
            value head reads them, during training; the policy never sees them, so meta-testing
            is unchanged.
        reward_coef: Weight of an auxiliary reward-prediction loss (0: off). It trains a head
            on the policy's features to predict each step's reward from the history and the
            action taken.
        explore_episodes: Episodes a trial starts with, acted by an exploration head (0: one
            policy). That head is trained only for the return of the episodes after them. Both
            heads read the same memory (E-RL², Stadie and others, 2018).
        learner: ``ppo``, ``trpo`` (the RL² paper's; needs ``separate_critic``) or ``a2c``.
        ppo: The learner's settings (PPO reads all; A2C and TRPO's critic read some).
        trust_region: TRPO's step (``learner="trpo"``).
    """

    total_steps: int = 600_000
    episodes: int = 0
    num_envs: int = 128
    rollout_len: int = 0
    hidden_size: int = 64
    cell: Literal["gru", "lstm"] = "gru"
    critic_hidden_size: int = 0
    head_hidden_size: int = 0
    separate_critic: bool = True
    task_critic: bool = False
    reward_coef: float = 0.0
    explore_episodes: int = 0
    learner: Literal["ppo", "trpo", "a2c"] = "ppo"
    ppo: PPOConfig = RL2_PPO
    trust_region: TrustRegionConfig = TrustRegionConfig()

    def __post_init__(self):
        check_fields(
            self,
            positive_int=("total_steps", "num_envs", "hidden_size"),
            nonneg_int=(
                "episodes",
                "rollout_len",
                "critic_hidden_size",
                "head_hidden_size",
                "explore_episodes",
            ),
            nonneg=("reward_coef",),
        )
        check_choice(self, "cell", ("gru", "lstm"))
        if self.ppo.clip_per_network and not self.separate_critic:
            raise ConfigError("clip_per_network needs separate_critic (a shared core is in both)")
        if self.ppo.split_networks and (not self.separate_critic or self.learner != "ppo"):
            raise ConfigError("split_networks needs learner ppo and separate_critic")
        check_trial_config(self)


class RL2State(NamedTuple):
    """Everything needed to continue training bit-exactly.

    Attributes:
        params: Policy parameters.
        opt_state: The learner's state.
        rollout: Environments, tasks and policy memory in flight.
        key: PRNG key.
        update: Number of updates done (int32 scalar).
    """

    params: PyTree
    opt_state: optax.OptState
    rollout: RolloutState
    key: jax.Array
    update: jax.Array


def trial_metrics(traj: Transition) -> dict[str, jax.Array]:
    """Mean return of the trials that ended in a batch (NaN if none), their count, reward/step."""
    done = traj.terminated | traj.truncated
    num_done = done.sum()
    ended = traj.info["episode_return"].sum() / jnp.maximum(num_done, 1)
    return {
        "trial_return": jnp.where(num_done > 0, ended, jnp.nan),
        "trials_completed": num_done.astype(jnp.float32),
        "reward_per_step": traj.reward.mean(),
    }


def without_exploration_rewards(traj: Transition, explore_episodes: int) -> Transition:
    """``traj`` with the rewards of a trial's first ``explore_episodes`` episodes zeroed.

    The learner's objective for E-RL² (Stadie et al. 2018): an exploration step's return is
    then the (discounted) reward of the task episodes after it, so the exploration policy is
    trained only for what its exploration earns later.
    """
    exploring = traj.info["episode"] < explore_episodes
    return traj._replace(reward=jnp.where(exploring, 0.0, traj.reward))


class TrialShape(NamedTuple):
    """What a trial learner's network is built for.

    Attributes:
        action_dim: Number of discrete actions, or the continuous action dimension.
        discrete: Discrete actions.
        obs_dim: Width of the observations the policy is given (task features included).
        policy_obs_dim: Width of the trial's own observations when task features follow them
            (``task_critic``), else 0.
        max_len: Steps of the longest training trial (episodes x horizon).
        image_shape: ``(H, W, C)`` of an image at the front of the observation (the
            environment's ``image_shape``, e.g. a maze's frame), else ``None``.
    """

    action_dim: int
    discrete: bool
    obs_dim: int
    policy_obs_dim: int
    max_len: int
    image_shape: tuple[int, int, int] | None = None


def check_trial_config(config: Any) -> None:
    """The checks every trial learner's config shares (learner, minibatches).

    Raises:
        ConfigError: A bad field.
    """
    check_choice(config, "learner", LEARNERS)
    if config.learner != "a2c" and config.num_envs % config.ppo.num_minibatches:
        raise ConfigError(
            f"num_envs ({config.num_envs}) must be divisible by num_minibatches "
            f"({config.ppo.num_minibatches})"
        )


def make_rl2(config: RL2Config, tasks: TaskDistribution) -> Algorithm:
    """Builds RL² for ``tasks``.

    The returned :class:`~quickstudy.types.Algorithm` has ``parts`` ``policy``, ``network``,
    ``env`` (what the policy is rolled out in) and ``learner``.

    Raises:
        ConfigError: ``tasks`` is not an RL task distribution, or the config does not suit it.
    """

    def build(shape: TrialShape) -> tuple[Any, Policy, list[AuxLoss]]:
        network = RecurrentActorCritic(
            action_dim=shape.action_dim,
            discrete=shape.discrete,
            hidden_size=config.hidden_size,
            cell=config.cell,
            separate_critic=config.separate_critic,
            policy_obs_dim=shape.policy_obs_dim,
            critic_hidden_size=config.critic_hidden_size,
            head_hidden_size=config.head_hidden_size,
            reward_head=config.reward_coef > 0,
            custom_backward=config.learner != "trpo",  # TRPO's Fisher product: forward mode
            image_shape=shape.image_shape,
            explore_head=config.explore_episodes > 0,
        )
        return network, recurrent_policy(network, shape.obs_dim), reward_aux(config, shape)

    return make_trial_learner(config, tasks, build)


def reward_aux(config: Any, shape: TrialShape) -> list[AuxLoss]:
    """The auxiliary reward-prediction loss of an in-context learner, if ``config`` asks for it.

    Args:
        config: Reads ``reward_coef`` (0: no loss).
        shape: The trial's shapes (whether the actions are discrete).

    Returns:
        ``[]``, or one :class:`AuxLoss` on the network's ``aux["reward"]`` head.
    """
    if config.reward_coef <= 0:
        return []

    def reward_loss(out, batch):
        return reward_prediction_loss(out.aux["reward"], batch.action, batch.reward, shape.discrete)

    return [AuxLoss("reward_loss", config.reward_coef, reward_loss)]


def make_trial_learner(
    config: Any,
    tasks: TaskDistribution,
    build: Callable[[TrialShape], tuple[Any, Policy, list[AuxLoss]]],
) -> Algorithm:
    """An in-context learner: a memory-based policy over K-episode trials, trained on-policy.

    RL² and SNAIL differ only in the network ``build`` makes; the trials, the collectors, the
    learner (PPO, TRPO or A2C) and the meta-test are these.

    Args:
        config: Reads ``total_steps``, ``episodes``, ``num_envs``, ``rollout_len``,
            ``task_critic``, ``explore_episodes``, ``learner``, ``ppo`` and ``trust_region``.
        tasks: The task distribution.
        build: ``build(shape) -> (network, policy, auxiliary losses)``.

    Raises:
        ConfigError: ``tasks`` is not an RL task distribution, or the config does not suit it.
    """
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError(
            f"{type(config).__name__.removesuffix('Config').lower()} trains on RL task "
            f"distributions; {tasks.name} is a supervised few-shot task (use maml)"
        )
    host = is_host(tasks.env)
    if host and config.task_critic:
        raise ConfigError(f"task_critic is not available for host-stepped tasks like {tasks.name}")
    episodes = config.episodes or tasks.episodes
    rollout_len = config.rollout_len or episodes * tasks.env.horizon
    num_updates = max(1, config.total_steps // (config.num_envs * rollout_len))
    example = tasks.sample_one(jax.random.key(0))
    space = tasks.env.action_space(example)
    discrete = isinstance(space, Discrete)

    def trial_env(k: int):
        if host:
            return HostTrial(tasks.env, k)
        return WithTaskFeatures(Trial(tasks.env, k)) if config.task_critic else Trial(tasks.env, k)

    if config.explore_episodes >= episodes:
        raise ConfigError(
            f"explore_episodes ({config.explore_episodes}) must be fewer than the episodes of a "
            f"trial ({episodes})"
        )
    env = trial_env(episodes)
    trial_dim = Trial(tasks.env, episodes).observation_space(example).shape[0]
    network, policy, aux = build(
        TrialShape(
            action_dim=space.n if discrete else math.prod(space.shape),
            discrete=discrete,
            obs_dim=env.observation_space(example).shape[0],
            policy_obs_dim=trial_dim if config.task_critic else 0,
            max_len=episodes * tasks.env.horizon,
            image_shape=getattr(tasks.env, "image_shape", None),
        )
    )
    explore = config.explore_episodes
    if explore:  # the trial observation ends with the done flag
        policy = two_phase_policy(policy, explore, done_index=trial_dim - 1)
    if config.learner == "trpo":
        learner = make_trpo(config.trust_region, config.ppo, policy, num_updates, aux)
    elif config.learner == "a2c":
        learner = make_a2c(config.ppo, policy, num_updates, aux)
    else:
        learner = make_ppo(config.ppo, policy, num_updates, aux)

    def learn(key, params, opt_state, traj, carry0):
        taught = without_exploration_rewards(traj, explore) if explore else traj
        params, opt_state, metrics = learner.update(key, params, opt_state, taught, carry0)
        return params, opt_state, {**metrics, **trial_metrics(traj)}

    jit, start, collect, play = trial_collectors(tasks, env, policy)
    learn, init_params = jit(learn), jit(policy.init)
    split3 = jit(lambda key: tuple(jax.random.split(key, 3)))

    def init(key: jax.Array) -> RL2State:
        k_net, k_env, key = split3(key)
        params = init_params(k_net)
        rollout = start(k_env, policy=policy, batch=config.num_envs)
        return RL2State(params, learner.init(params), rollout, key, jnp.zeros((), jnp.int32))

    def update(state: RL2State) -> tuple[RL2State, dict[str, jax.Array]]:
        key, k_roll, k_learn = split3(state.key)
        rollout, traj = collect(k_roll, state.rollout, state.params, num_steps=rollout_len)
        params, opt_state, metrics = learn(
            k_learn, state.params, state.opt_state, traj, state.rollout.carry
        )
        return RL2State(params, opt_state, rollout, key, state.update + 1), metrics

    meta_test = trial_meta_test(play, trial_env, tasks.env.horizon)

    return Algorithm(
        config=config,
        tasks=tasks,
        init=init,
        update=update,
        meta_test=meta_test,
        num_updates=num_updates,
        steps_per_update=config.num_envs * rollout_len,
        jittable=not host,
        progress=("trial_return", "trial return"),
        default_points=episodes,
        derived={"episodes": episodes, "rollout_len": rollout_len},
        parts={"policy": policy, "network": network, "env": env, "learner": learner},
        watch=learner.watch,
        data_axes=lambda state: leaves_of(state, "rollout"),  # the environments in flight
        device_notes=()
        if config.learner == "a2c" or config.ppo.strided_minibatches
        else (
            "with PPO's uniform minibatch shuffle every device computes every minibatch's "
            "whole gradient; strided_minibatches (--strided-minibatches) splits that work too",
        ),
        own_placement="split_networks puts the two networks on two devices"
        if config.ppo.split_networks  # RL2Config allows it with PPO only
        else None,
    )


class TrialCollectors(NamedTuple):
    """How a trial learner steps its task: the JAX collectors or the host ones.

    Attributes:
        jit: ``jax.jit`` for host-stepped tasks (each piece compiled on its own); the identity
            for pure-JAX tasks, whose whole update the runner compiles.
        start: ``start(key, policy=, batch=) -> RolloutState``.
        collect: ``collect(key, rollout, params, num_steps=) -> (rollout, Transition)``.
        play: ``play(key, tasks, params, trial_env=, episodes=, max_steps=, deterministic=)
            -> TrialResults``, the meta-test's trials.
    """

    jit: Any
    start: Any
    collect: Any
    play: Any


def trial_collectors(tasks: TaskDistribution, env: Any, policy: Any) -> TrialCollectors:
    """The collectors of ``policy`` on the trial environment ``env`` of ``tasks``."""
    if is_host(tasks.env):  # a Python loop steps the environments: jit the other pieces
        actor = make_host_actor(policy)
        sample = jax.jit(tasks.sample, static_argnums=1)
        return TrialCollectors(
            jax.jit,
            functools.partial(init_host_rollout, env=env, sample_tasks=sample),
            functools.partial(host_unroll, actor=actor, env=env, sample_tasks=sample),
            functools.partial(host_run_trials, policy=policy, actor=actor),
        )
    return TrialCollectors(  # pure JAX: the runner jits the whole update (and scans chunks)
        _unchanged,
        functools.partial(init_rollout, env=env, sample_tasks=tasks.sample),
        functools.partial(unroll, policy=policy, env=env, sample_tasks=tasks.sample),
        functools.partial(run_trials, policy=policy),
    )


def trial_meta_test(
    play: Any,
    trial_env: Callable[[int], Any],
    horizon: int,
    policy_params: Callable[[PyTree], PyTree] = lambda params: params,
    deterministic: bool = False,
) -> Callable[..., MetaTestResult]:
    """The meta-test of a trial learner: one trial of ``points`` episodes per held-out task.

    Args:
        play: The collectors' ``play`` (see :class:`TrialCollectors`).
        trial_env: ``trial_env(k)``, the trial environment of ``k`` episodes.
        horizon: The task's episode horizon (a trial lasts at most ``k * horizon`` steps).
        policy_params: Maps the algorithm's parameters to the policy's.
        deterministic: Act with the distribution's mode.

    Returns:
        ``meta_test(params, key, test_tasks, points)``, with episode returns, successes and
        ``extras["lengths"]``.
    """

    def meta_test(params, key, test_tasks, points) -> MetaTestResult:
        res = play(
            key,
            test_tasks,
            policy_params(params),
            trial_env=trial_env(points),
            episodes=points,
            max_steps=points * horizon,
            deterministic=deterministic,
        )
        return MetaTestResult(res.returns, res.success, {"lengths": res.lengths})

    return meta_test


def _unchanged(fn):
    return fn
