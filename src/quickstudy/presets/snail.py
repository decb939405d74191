"""SNAIL's named recipes (``quickstudy train snail --preset NAME``), measured in docs/results."""

from __future__ import annotations

from quickstudy.types import Preset

MDP = Preset(
    description=(
        "the tabular-MDP recipe (docs/results/snail.md): one TC and one attention block, a "
        "ReLU layer of 256 before the heads, reward prediction, a critic torso of its own that "
        "reads the task, 25-step rollouts and RL²'s mdp PPO settings; 154.1 on mdp-s10-a5-n10 "
        "at 8 M steps, where RL²'s settings without the reward head and the ReLU layer gave 114.4"
    ),
    overrides={
        "blocks": ("tc", "attention"),
        "head_hidden_size": 256,
        "reward_coef": 3.0,
        "separate_critic": True,
        "task_critic": True,
        "rollout_len": 25,
        "ppo": {"adam_eps": 1e-8, "clip_per_network": True, "learning_rate": 1e-3},
    },
)

PRESETS = {"mdp": MDP}
