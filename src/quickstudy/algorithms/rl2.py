"""RL²: fast reinforcement learning via slow reinforcement learning (Duan et al. 2016).

RL² = trial wrapper + recurrent actor-critic + PPO. The policy sees ``obs ⊕ prev action ⊕ prev
reward ⊕ done`` and keeps its memory across the ``K`` episodes of a trial, so adaptation to a task
happens in its activations; the outer loop maximises the trial's total reward.
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

from quickstudy.envs.base import Discrete
from quickstudy.errors import ConfigError
from quickstudy.learners.ppo import (
    PPOBatch,
    PPOConfig,
    make_optimizer,
    ppo_loss,
    ppo_objective,
    ppo_update,
)
from quickstudy.networks.distributions import Distribution
from quickstudy.networks.recurrent import HEAD_ACTIVATIONS, PARAM_GROUPS, RecurrentActorCritic
from quickstudy.rollout.unroll import RolloutState, TrialResults, init_rollout, run_trials, unroll
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import Trial, WithTaskFeatures

PyTree = Any


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """RL² with PPO.

    Attributes:
        total_steps: Environment steps of meta-training.
        episodes: Episodes per trial K (0: the task's default).
        num_envs: Trials collected in parallel.
        rollout_len: Steps per environment per update (0: one full trial).
        hidden_size: Recurrent state size (the paper: 256; 64 learns as well here, 4x faster).
        cell: Recurrent cell.
        critic_hidden_size: State size of the critic's own core (0: ``hidden_size``); a
            smaller one saves time when the policy core is wide, above all with
            ``task_critic``, whose value head reads the task directly.
        head_hidden_size: Width of a hidden layer between the policy core and its heads (0:
            none, the heads are linear in the core's state, as in the paper).
        head_activation: Nonlinearity of that layer and of the task-informed critic's
            hidden layer. Most ReLU units of both ended dead (zero gradient on every input)
            in the tabular-MDP runs; SiLU and tanh units cannot die.
        separate_critic: Give the value function its own recurrent core (twice the compute).
        learning_rate: Adam step size.
        num_epochs: PPO passes per batch.
        num_minibatches: PPO minibatches per pass (over trials).
        clip_eps: PPO ratio clip.
        value_clip_eps: Clip of the value prediction around the old one (0: no clipping;
            in reward units, so it only suits normalised rewards).
        vf_coef: Value-loss weight.
        ent_coef: Entropy-bonus weight.
        max_grad_norm: Gradient-norm clip.
        clip_per_network: Clip the policy's and the critic's gradients each by its own norm
            (needs ``separate_critic``). With one global norm the critic's gradients, often
            10-30x the policy's, set how far the clip shrinks the policy's step, and that
            factor swings with the critic's error from minibatch to minibatch.
        gamma: Discount.
        gae_lambda: GAE lambda (0.3 in the RL² paper; 0.7 learned faster on bandit-k5-n100).
        anneal_lr: Decay the learning rate linearly to zero over training.
        task_critic: Asymmetric critic: the value head also reads the true task parameters
            (:class:`~quickstudy.tasks.trial.WithTaskFeatures`) during training; the policy never
            sees them, so meta-testing is unchanged. Lowers the variance of the advantages.
        critic_progress: The task-informed critic also reads the fraction of the trial's
            episodes already finished (needs ``task_critic``). With ``rollout_len`` shorter
            than a trial the critic's memory is cut mid-trial and cannot count the time left
            itself; its value error then grows several-fold.
        adam_eps: Adam's denominator epsilon (default: the common PPO value). The global
            gradient-norm clip, set by the critic's large gradients, leaves most of the
            policy core's recurrent weights with gradients below 1e-5, where this epsilon
            shrinks their steps several-fold. 1e-8 made no difference without a reward
            head, but with ``reward_coef`` it learned the tabular MDPs faster.
        reward_coef: Weight of an auxiliary loss that trains a head on the policy core to
            predict each step's reward from the history and the action taken (0: off). The
            best such prediction is the posterior mean reward of that action, so the loss
            pushes the memory towards the task's reward estimates the policy needs; it uses
            only what the agent observes and leaves the policy's inputs unchanged.
        next_obs_coef: Weight of an auxiliary loss that trains a head on the policy core to
            predict the next inner observation from the history and the action taken
            (:func:`next_observation_loss`; 0: off). On tabular MDPs its best prediction is
            the posterior predictive of the transition, so it pushes the memory towards the
            transition model a planner needs, as ``reward_coef`` does for the rewards.
        reward_target: What the reward head learns. ``"observed"``: the reward received for
            the action taken. ``"expected"``: the task's mean reward of *every* action in
            the current state (privileged, like ``task_critic``, which it needs; discrete
            actions; the environment must define ``expected_rewards``). Its best prediction
            from the history is the posterior mean of each action's reward, the same table,
            but the target carries no reward noise and covers every action, not one:
            belief supervision in the manner of Humplik et al. 2019.
    """

    total_steps: int = 1_000_000
    episodes: int = 0
    num_envs: int = 128
    rollout_len: int = 0
    hidden_size: int = 64
    cell: Literal["gru", "lstm"] = "gru"
    critic_hidden_size: int = 0
    head_hidden_size: int = 0
    head_activation: Literal["relu", "silu", "tanh"] = "relu"
    separate_critic: bool = True
    learning_rate: float = 2e-3
    num_epochs: int = 4
    num_minibatches: int = 4
    clip_eps: float = 0.2
    value_clip_eps: float = 0.0
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    clip_per_network: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.7
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    task_critic: bool = False
    critic_progress: bool = False
    reward_coef: float = 0.0
    next_obs_coef: float = 0.0
    reward_target: Literal["observed", "expected"] = "observed"

    def __post_init__(self):
        positive = ("total_steps", "num_envs", "hidden_size", "num_epochs", "num_minibatches")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("episodes", "rollout_len", "critic_hidden_size", "head_hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("learning_rate", "clip_eps", "max_grad_norm", "adam_eps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("vf_coef", "ent_coef", "value_clip_eps", "reward_coef", "next_obs_coef"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"{name} must lie in [0, 1], got {value!r}")
        if self.head_activation not in HEAD_ACTIVATIONS:
            raise ConfigError(
                f"head_activation must be one of {', '.join(map(repr, HEAD_ACTIVATIONS))}, "
                f"got {self.head_activation!r}"
            )
        if self.cell not in ("gru", "lstm"):
            raise ConfigError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        if self.clip_per_network and not self.separate_critic:
            raise ConfigError("clip_per_network needs separate_critic (a shared core is in both)")
        if self.critic_progress and not self.task_critic:
            raise ConfigError("critic_progress needs task_critic (it extends the task critic)")
        if self.reward_target not in ("observed", "expected"):
            raise ConfigError(
                f"reward_target must be 'observed' or 'expected', got {self.reward_target!r}"
            )
        if self.reward_target == "expected" and not (self.task_critic and self.reward_coef > 0):
            raise ConfigError(
                "reward_target='expected' needs task_critic (privileged targets) and a "
                "positive reward_coef"
            )
        if self.num_envs % self.num_minibatches:
            raise ConfigError(
                f"num_envs ({self.num_envs}) must be divisible by num_minibatches "
                f"({self.num_minibatches})"
            )

    def ppo(self) -> PPOConfig:
        """The PPO learner's configuration."""
        return PPOConfig(
            learning_rate=self.learning_rate,
            num_epochs=self.num_epochs,
            num_minibatches=self.num_minibatches,
            clip_eps=self.clip_eps,
            value_clip_eps=self.value_clip_eps,
            vf_coef=self.vf_coef,
            ent_coef=self.ent_coef,
            max_grad_norm=self.max_grad_norm,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            adam_eps=self.adam_eps,
        )


class RL2State(NamedTuple):
    """Everything needed to continue training bit-exactly.

    Attributes:
        params: Policy parameters.
        opt_state: Optimizer state.
        rollout: Environments, tasks and policy memory in flight.
        key: PRNG key.
        update: Number of updates done (int32 scalar).
    """

    params: PyTree
    opt_state: optax.OptState
    rollout: RolloutState
    key: jax.Array
    update: jax.Array


class RL2(NamedTuple):
    """The pure functions of one RL² configuration on one task distribution.

    Attributes:
        config: The configuration.
        tasks: The task distribution.
        trial: Its trial wrapper.
        env: What the policy is rolled out in: the trial, with the task's parameters appended
            to the observation when ``config.task_critic``.
        network: The recurrent actor-critic module.
        episodes: Episodes per trial.
        rollout_len: Steps per environment per update.
        num_updates: Updates in ``config.total_steps``.
        steps_per_update: Environment steps collected per update.
        init: ``init(key) -> RL2State``.
        update: ``update(state) -> (state, metrics)``, one meta-iteration (collect + PPO).
        train: ``train(key) -> (state, metrics)``: init + all updates in one ``lax.scan``;
            ``jax.vmap`` over keys trains several seeds at once.
        evaluate: ``evaluate(params, key, tasks) -> TrialResults``: one trial per task.
    """

    config: RL2Config
    tasks: TaskDistribution
    trial: Trial
    env: Trial | WithTaskFeatures
    network: RecurrentActorCritic
    episodes: int
    rollout_len: int
    num_updates: int
    steps_per_update: int
    init: Callable[[jax.Array], RL2State]
    update: Callable[[RL2State], tuple[RL2State, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[RL2State, dict[str, jax.Array]]]
    evaluate: Callable[[PyTree, jax.Array, PyTree], TrialResults]


def next_observation_loss(
    predicted: jax.Array, obs: jax.Array, start: jax.Array, obs_dim: int, done_index: int
) -> jax.Array:
    """Squared error of predicted next inner observations, where the next one is observed.

    The target of step ``t`` is the inner observation in ``obs[t + 1]`` (its first
    ``obs_dim`` entries). Steps without one are left out: the last step of the sequence,
    steps that end an episode (the next observation is then the reset one, flagged by
    ``obs[t + 1, done_index]``) and steps before a new trial (``start[t + 1]``). For a
    one-hot state this is the Brier score, minimised by the predictive distribution.

    Args:
        predicted: Predictions ``[T, B, obs_dim]``.
        obs: Trial observations ``[T, B, F]`` (:class:`~quickstudy.tasks.trial.Trial`).
        start: ``[T, B]`` bool, true at the first step of a trial.
        obs_dim: Width of the inner observation at the front of ``obs``.
        done_index: Position of the episode-done flag in ``obs``.

    Returns:
        The mean over valid steps of the squared error summed over the observation.
    """
    target = obs[1:, :, :obs_dim]
    valid = (obs[1:, :, done_index] == 0) & ~start[1:]
    err = jnp.square(predicted[:-1] - target).sum(-1)
    return jnp.sum(err * valid) / jnp.maximum(valid.sum(), 1)


def model_prediction_loss(
    params: PyTree,
    batch: PPOBatch,
    apply_fn: Callable,
    dist: Distribution,
    config: PPOConfig,
    *,
    network: RecurrentActorCritic,
    reward_coef: float,
    expected: bool = False,
    next_obs_coef: float = 0.0,
    obs_dim: int = 0,
    done_index: int = -1,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO loss plus the model heads' errors (one forward pass).

    ``reward_coef`` x the reward head's squared error: its target is the reward received for
    the action taken, or with ``expected`` the mean reward of every action, read from the
    last ``A`` entries of the observation (:class:`~quickstudy.tasks.trial.WithTaskFeatures`
    with ``expected_rewards``; the network hands those entries to its value head only, never
    to the policy). ``next_obs_coef`` x :func:`next_observation_loss` of the next-observation
    head.

    Args:
        params: Network parameters.
        batch: Minibatch of sequences ``[T, B, ...]``.
        apply_fn: Unused (the network's :meth:`forward` is applied instead).
        dist: Action distribution.
        config: PPO hyperparameters.
        network: A :class:`RecurrentActorCritic` with the heads whose weight is positive.
        reward_coef: Weight of the reward head's error (0: the network has no reward head).
        expected: Learn every action's expected reward (discrete actions) instead of the
            reward received.
        next_obs_coef: Weight of the next-observation head's error (0: no such head).
        obs_dim: Width of the inner observation (the network's ``next_obs_dim``).
        done_index: Position of the episode-done flag in the observation.

    Returns:
        The scalar loss and PPO's diagnostics plus ``reward_loss`` and ``next_obs_loss``
        for the heads in use.
    """
    del apply_fn
    action = None if expected else batch.action
    _, out, value, predicted, next_obs = network.apply(
        params, batch.h0, batch.obs, batch.start, action, method=network.forward
    )
    loss, aux = ppo_objective(out, value, batch, dist, config)
    if reward_coef > 0:
        target = batch.obs[..., -network.action_dim :] if expected else batch.reward
        aux["reward_loss"] = jnp.square(predicted - target).mean()
        loss = loss + reward_coef * aux["reward_loss"]
    if next_obs_coef > 0:
        aux["next_obs_loss"] = next_observation_loss(
            next_obs, batch.obs, batch.start, obs_dim, done_index
        )
        loss = loss + next_obs_coef * aux["next_obs_loss"]
    return loss, aux


def make_rl2(config: RL2Config, tasks: TaskDistribution) -> RL2:
    """Builds RL² for ``tasks`` (see :class:`RL2`).

    Raises:
        ConfigError: ``tasks`` is not an RL task distribution.
    """
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError(
            f"rl2 trains on RL task distributions; {tasks.name} is a supervised few-shot task "
            f"(use maml)"
        )
    episodes = config.episodes or tasks.episodes
    trial = Trial(tasks.env, episodes)
    horizon = tasks.env.horizon
    trial_len = episodes * horizon
    rollout_len = config.rollout_len or trial_len
    num_updates = max(1, config.total_steps // (config.num_envs * rollout_len))
    example = tasks.sample_one(jax.random.key(0))
    space = trial.action_space(example)
    discrete = isinstance(space, Discrete)
    expected = config.reward_target == "expected"
    if expected and not (discrete and hasattr(tasks.env, "expected_rewards")):
        raise ConfigError(
            f"reward_target='expected' needs discrete actions and an environment that "
            f"defines expected_rewards; {tasks.name} is not such a task"
        )
    inner_dim = math.prod(tasks.env.observation_space(example).shape)
    trial_dim = trial.observation_space(example).shape[0]
    if config.task_critic:
        env = WithTaskFeatures(trial, config.critic_progress, expected_rewards=expected)
    else:
        env = trial
    network = RecurrentActorCritic(
        action_dim=space.n if discrete else space.shape[0],
        discrete=discrete,
        hidden_size=config.hidden_size,
        cell=config.cell,
        separate_critic=config.separate_critic,
        policy_obs_dim=trial_dim if config.task_critic else 0,
        reward_head=config.reward_coef > 0,
        critic_hidden_size=config.critic_hidden_size,
        head_hidden_size=config.head_hidden_size,
        head_activation=config.head_activation,
        next_obs_dim=inner_dim if config.next_obs_coef > 0 else 0,
    )
    dist = network.distribution
    obs_dim = env.observation_space(example).shape[0]
    ppo = config.ppo()
    if config.anneal_lr:
        schedule = optax.linear_schedule(
            config.learning_rate, 0.0, num_updates * ppo.num_epochs * ppo.num_minibatches
        )
        ppo = dataclasses.replace(ppo, learning_rate=schedule)
    if config.clip_per_network:
        optimizer = make_optimizer(ppo, RecurrentActorCritic.param_groups, PARAM_GROUPS)
    else:
        optimizer = make_optimizer(ppo)
    apply_fn = network.apply
    if config.reward_coef > 0 or config.next_obs_coef > 0:
        loss_fn = functools.partial(
            model_prediction_loss,
            network=network,
            reward_coef=config.reward_coef,
            expected=expected,
            next_obs_coef=config.next_obs_coef,
            obs_dim=inner_dim,
            done_index=trial_dim - 1,
        )
    else:
        loss_fn = ppo_loss

    def init(key: jax.Array) -> RL2State:
        k_net, k_env, key = jax.random.split(key, 3)
        h0 = network.initial_state(1)
        params = network.init(k_net, h0, jnp.zeros((1, 1, obs_dim)), jnp.ones((1, 1), bool))
        rollout = init_rollout(k_env, env, tasks.sample, network.initial_state(config.num_envs))
        return RL2State(params, optimizer.init(params), rollout, key, jnp.zeros((), jnp.int32))

    def update(state: RL2State) -> tuple[RL2State, dict[str, jax.Array]]:
        key, k_roll, k_ppo = jax.random.split(state.key, 3)
        h0 = state.rollout.hidden
        rollout, traj = unroll(
            k_roll, state.rollout, state.params, apply_fn, dist, env, tasks.sample, rollout_len
        )
        params, opt_state, metrics = ppo_update(
            k_ppo, state.params, state.opt_state, traj, h0, apply_fn, dist, optimizer, ppo, loss_fn
        )
        done = traj.terminated | traj.truncated
        num_done = done.sum()
        metrics["trial_return"] = jnp.where(
            num_done > 0, traj.completed_return.sum() / jnp.maximum(num_done, 1), jnp.nan
        )
        metrics["trials_completed"] = num_done.astype(jnp.float32)
        metrics["reward_per_step"] = traj.reward.mean()
        return RL2State(params, opt_state, rollout, key, state.update + 1), metrics

    def train(key: jax.Array) -> tuple[RL2State, dict[str, jax.Array]]:
        state = init(key)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=num_updates)

    def evaluate(params: PyTree, key: jax.Array, test_tasks: PyTree) -> TrialResults:
        n = jax.tree.leaves(test_tasks)[0].shape[0]
        return run_trials(
            key,
            test_tasks,
            params,
            apply_fn,
            dist,
            env,
            network.initial_state(n),
            episodes,
            trial_len,
        )

    return RL2(
        config=config,
        tasks=tasks,
        trial=trial,
        env=env,
        network=network,
        episodes=episodes,
        rollout_len=rollout_len,
        num_updates=num_updates,
        steps_per_update=config.num_envs * rollout_len,
        init=init,
        update=update,
        train=train,
        evaluate=evaluate,
    )
