"""SNAIL: a simple neural attentive meta-learner (Mishra et al. 2018), in-context RL.

SNAIL is RL² with another memory: instead of a recurrent state, the policy reads the whole trial
so far through temporal convolutions and causal attention
(:class:`~quickstudy.networks.snail.SNAILActorCritic`). The trials, the collectors, the
learner (PPO, TRPO or A2C) and the meta-test are RL²'s
(:func:`~quickstudy.algorithms.rl2.make_trial_learner`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from quickstudy.algorithms.rl2 import (
    RL2_PPO,
    TrialShape,
    check_trial_config,
    make_trial_learner,
    reward_aux,
)
from quickstudy.errors import ConfigError
from quickstudy.learners.ppo import PPOConfig
from quickstudy.learners.trpo import TrustRegionConfig
from quickstudy.networks.snail import BLOCKS, SNAILActorCritic, snail_policy
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.types import Algorithm, check_fields


@dataclasses.dataclass(frozen=True)
class SNAILConfig:
    """SNAIL (temporal convolutions and attention over multi-episode trials) and its learner.

    Attributes:
        total_steps: Environment steps of meta-training.
        episodes: Episodes per trial K (0: the task's default).
        num_envs: Trials collected in parallel.
        rollout_len: Steps per environment per update (0: one full trial). The cache of the
            trial is carried across the cut, gradients are truncated there.
        filters: Channels of the input layer and of each causal convolution (the paper's 32).
        key_size: Attention key size (the paper's 32 on bandits and MDPs).
        value_size: Attention value size (the paper's 32 on bandits and MDPs).
        blocks: The torso's blocks in order, each ``tc`` (a stack of dilated causal
            convolutions over the trial) or ``attention``. The paper's bandit and MDP network is
            ``tc attention tc attention``.
        separate_critic: Give the value function its own torso (twice the compute).
        memory_len: Trial length the network is sized for (0: the longest trial, episodes x
            horizon). It sets the TC blocks' depth (their receptive field) and the attention
            cache, which keeps a trial's first ``memory_len`` steps; later steps are not
            attended to. A task whose episodes usually end early (at a maze's goal) needs less.
        head_hidden_size: Width of a ReLU layer before the policy's heads (0: none).
        task_critic: Asymmetric critic that also reads the true task parameters (training only).
        reward_coef: Weight of an auxiliary reward-prediction loss (0: off), as RL²'s.
        explore_episodes: Episodes a trial starts with, acted by an exploration head (0: one
            policy). That head is trained only for the return of the episodes after them. Both
            heads read the same memory (E-RL²).
        learner: ``ppo``, ``trpo`` or ``a2c``.
        ppo: The learner's settings (PPO reads all; A2C and TRPO's critic read some).
        trust_region: TRPO's step (``learner="trpo"``).
    """

    total_steps: int = 600_000
    episodes: int = 0
    num_envs: int = 128
    rollout_len: int = 0
    filters: int = 32
    key_size: int = 32
    value_size: int = 32
    blocks: tuple[str, ...] = ("tc", "attention", "tc", "attention")
    separate_critic: bool = False
    memory_len: int = 0
    head_hidden_size: int = 0
    task_critic: bool = False
    reward_coef: float = 0.0
    explore_episodes: int = 0
    learner: Literal["ppo", "trpo", "a2c"] = "ppo"
    ppo: PPOConfig = RL2_PPO
    trust_region: TrustRegionConfig = TrustRegionConfig()

    def __post_init__(self):
        check_fields(
            self,
            positive_int=("total_steps", "num_envs", "filters", "key_size", "value_size"),
            nonneg_int=(
                "episodes",
                "rollout_len",
                "memory_len",
                "head_hidden_size",
                "explore_episodes",
            ),
            nonneg=("reward_coef",),
        )
        if not self.blocks or any(b not in BLOCKS for b in self.blocks):
            raise ConfigError(
                f"blocks must be a non-empty sequence of {', '.join(map(repr, BLOCKS))}, "
                f"got {self.blocks!r}"
            )
        check_trial_config(self)


def make_snail(config: SNAILConfig, tasks: TaskDistribution) -> Algorithm:
    """Builds SNAIL for ``tasks`` (the ``parts`` of :func:`~quickstudy.algorithms.rl2.make_rl2`).

    Raises:
        ConfigError: ``tasks`` is not an RL task distribution, or the config does not suit it.
    """

    def build(shape: TrialShape) -> tuple[Any, Any, list]:
        network = SNAILActorCritic(
            action_dim=shape.action_dim,
            discrete=shape.discrete,
            max_len=config.memory_len or shape.max_len,
            filters=config.filters,
            key_size=config.key_size,
            value_size=config.value_size,
            blocks=tuple(config.blocks),
            separate_critic=config.separate_critic,
            policy_obs_dim=shape.policy_obs_dim,
            image_shape=shape.image_shape,
            explore_head=config.explore_episodes > 0,
            head_hidden_size=config.head_hidden_size,
            reward_head=config.reward_coef > 0,
        )
        return network, snail_policy(network, shape.obs_dim), reward_aux(config, shape)

    return make_trial_learner(config, tasks, build)
