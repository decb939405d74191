"""SNAIL's named recipes (``quickstudy train snail --preset NAME``), measured in docs/results."""

from __future__ import annotations

from quickstudy.presets import rl2
from quickstudy.types import Preset

_FROM_RL2_MDP = ("head_hidden_size", "task_critic", "reward_coef", "rollout_len", "ppo")
"""The fields of RL²'s ``mdp`` recipe that SNAIL shares (the rest size RL²'s GRUs)."""

MDP = Preset(
    description=(
        "the tabular-MDP recipe (docs/results/snail.md): RL²'s mdp preset on one TC and one "
        "attention block (a ReLU layer of 256 before the heads, reward prediction, a critic "
        "torso of its own that reads the task, 25-step rollouts, RL²'s PPO settings); 154.1 on "
        "mdp-s10-a5-n10 at 8 M steps, where RL²'s settings without the reward head and the "
        "ReLU layer gave 114.4"
    ),
    overrides={
        **{name: rl2.MDP.overrides[name] for name in _FROM_RL2_MDP},
        "blocks": ("tc", "attention"),
        "separate_critic": True,
    },
)

PRESETS = {"mdp": MDP}
