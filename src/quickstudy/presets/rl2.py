"""RL²'s named recipes (``quickstudy train rl2 --preset NAME``), each measured in docs/results."""

from __future__ import annotations

from quickstudy.types import Preset

MDP = Preset(
    description=(
        "the tabular-MDP recipe (docs/results/rl2.md): GRU 256 with a ReLU layer before the "
        "heads, a GRU 64 critic that reads the task, reward prediction, 25-step rollouts, "
        "Adam's eps 1e-8 and each network's gradient clipped by its own norm at lr 1e-3"
    ),
    overrides={
        "hidden_size": 256,
        "critic_hidden_size": 64,
        "head_hidden_size": 256,
        "task_critic": True,
        "reward_coef": 3.0,
        "rollout_len": 25,
        "ppo": {"adam_eps": 1e-8, "clip_per_network": True, "learning_rate": 1e-3},
    },
)

BANDIT_LONG = Preset(
    description=(
        "GRU 128 for the 100- and 500-pull bandits: it learned bandit-k10-n100 far better per "
        "step than GRU 64 (70.8 vs 65.6 after 5.1 M steps), at 2.6x the cost per step"
    ),
    overrides={"hidden_size": 128},
)

BANDIT_500 = Preset(
    description=(
        "GRU 128 with 20-step rollouts (memory carried, gradients truncated) for the 500-pull "
        "bandits: on bandit-k50-n500 at 6 M steps whole-trial rollouts gave 248.7 (random "
        "play), 50-step 364.3, 20-step 383.4, 10-step 367.0 (docs/results/rl2-tables.md)"
    ),
    overrides={"hidden_size": 128, "rollout_len": 20},
)

BANDIT_100 = Preset(
    description=(
        "the 100-pull bandit recipe (docs/results/performance.md): GRU 128 with a GRU 64 critic "
        "that reads the task, 50-step rollouts, 16 minibatches and 3 epochs; at 10 M steps "
        "76.4 / 81.4 / 80.9 on k = 5 / 10 / 50, and, played for 500 pulls, 391.0 / 423.7 / "
        "425.1 (docs/results/rl2-tables.md)"
    ),
    overrides={
        "hidden_size": 128,
        "critic_hidden_size": 64,
        "task_critic": True,
        "rollout_len": 50,
        "ppo": {"num_minibatches": 16, "num_epochs": 3},
    },
)

PRESETS = {
    "mdp": MDP,
    "bandit-long": BANDIT_LONG,
    "bandit-500": BANDIT_500,
    "bandit-100": BANDIT_100,
}
