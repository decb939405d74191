"""The RL² paper's bandit and tabular-MDP tables (Duan et al. 2016, Tables 1 and 2).

Published values, the grid of settings, the baselines' tuning grids and the default RL² training
budget per setting, for ``quickstudy reproduce rl2-bandits`` and ``quickstudy reproduce rl2-mdps``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from quickstudy.algorithms import bandit_baselines, mdp_baselines

BANDIT_METHODS = (*bandit_baselines.ALGORITHMS, "rl2")
MDP_METHODS = (*mdp_baselines.ALGORITHMS, "rl2")

LABELS = {
    "random": "Random",
    "gittins": "Gittins",
    "thompson": "TS",
    "optimistic-thompson": "OTS",
    "ucb1": "UCB1",
    "epsilon-greedy": "ε-Greedy",
    "greedy": "Greedy",
    "psrl": "PSRL",
    "opsrl": "OPSRL",
    "ucrl2": "UCRL2",
    "beb": "BEB",
    "rl2": "RL²",
}

# (n, k) -> published values in BANDIT_METHODS order; None where the paper has no RL² entry.
_BANDIT_PAPER = {
    (10, 5): (5.0, 6.6, 5.7, 6.5, 6.7, 6.6, 6.6, 6.7),
    (10, 10): (5.0, 6.6, 5.5, 6.2, 6.7, 6.6, 6.6, 6.7),
    (10, 50): (5.1, 6.5, 5.2, 5.5, 6.6, 6.5, 6.5, None),
    (100, 5): (49.9, 78.3, 74.7, 77.9, 78.0, 75.4, 74.8, 78.7),
    (100, 10): (49.9, 82.8, 76.7, 81.4, 82.4, 77.4, 77.1, 83.5),
    (100, 50): (49.8, 85.2, 64.5, 67.7, 84.3, 78.3, 78.0, None),
    (500, 5): (249.8, 405.8, 402.0, 406.7, 405.8, 388.2, 380.6, None),
    (500, 10): (249.0, 437.8, 429.5, 438.9, 437.1, 408.0, 395.0, None),
    (500, 50): (249.6, 463.7, 427.2, 437.6, 457.6, 413.6, 402.8, None),
}

# n -> published values in MDP_METHODS order.
_MDP_PAPER = {
    10: (100.1, 138.1, 144.1, 146.6, 150.2, 132.8, 134.8, 156.2),
    25: (250.2, 408.8, 425.2, 424.1, 427.8, 377.3, 368.8, 445.7),
    50: (499.7, 904.4, 930.7, 918.9, 917.8, 823.3, 769.3, None),
    75: (749.9, 1417.1, 1449.2, 1427.6, 1422.6, 1293.9, 1172.9, None),
    100: (999.4, 1939.5, 1973.9, 1942.1, 1935.1, 1778.2, 1578.5, None),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One setting of a table.

    Attributes:
        task: Registered task name.
        label: Row label, e.g. ``"n=100, k=10"``.
        paper: Published value per method (``None``: no published entry).
        rl2_steps: Default RL² meta-training budget in environment steps.
        rl2_overrides: ``RL2Config`` fields that differ from its defaults in this cell.
    """

    task: str
    label: str
    paper: dict[str, float | None]
    rl2_steps: int
    rl2_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Table:
    """One of the paper's tables.

    Attributes:
        name: ``reproduce`` target, e.g. ``"rl2-bandits"``.
        title: Caption.
        kind: ``"bandit"`` or ``"mdp"``.
        methods: Columns in the paper's order (``"rl2"`` last).
        cells: Rows in the paper's order.
        tuning: Method -> hyperparameter -> grid, tuned per cell on separate trials.
    """

    name: str
    title: str
    kind: str
    methods: tuple[str, ...]
    cells: tuple[Cell, ...]
    tuning: dict[str, dict[str, tuple[Any, ...]]]

    def cell(self, task: str) -> Cell:
        """The cell of ``task``."""
        for cell in self.cells:
            if cell.task == task:
                return cell
        raise KeyError(task)


# exp(linspace(ln 1e-4, ln 1, 21)), the RL² authors' grid for UCRL2's and BEB's scaling.
_LOG_GRID = tuple(float(f"{10 ** (-4 + 4 * i / 20):.4g}") for i in range(21))


# Budgets that fit the whole table in about an hour on 2 CPU cores. GRU 128 learned bandit-k10-n100
# far better per step than GRU 64 (70.8 vs 65.6 after 5.1 M steps; 79.4 after 14 M), at 2.6x the
# cost per step; the 10-pull cells need neither.
def _bandit_budget(n: int) -> int:
    return 2_000_000 if n == 10 else 6_000_000


def _bandit_overrides(n: int) -> dict[str, Any]:
    return {} if n == 10 else {"hidden_size": 128}


RL2_BANDITS = Table(
    name="rl2-bandits",
    title="Bernoulli bandits: total reward per trial of n pulls (RL², Table 1)",
    kind="bandit",
    methods=BANDIT_METHODS,
    cells=tuple(
        Cell(
            task=f"bandit-k{k}-n{n}",
            label=f"n={n}, k={k}",
            paper=dict(zip(BANDIT_METHODS, values, strict=True)),
            rl2_steps=_bandit_budget(n),
            rl2_overrides=_bandit_overrides(n),
        )
        for (n, k), values in _BANDIT_PAPER.items()
    ),
    tuning={
        "epsilon-greedy": {"epsilon": tuple(i / 10 for i in range(11))},
        "ucb1": {"c": tuple(i / 10 for i in range(11))},
        "gittins": {"gamma": (0.9, 0.99, 0.999, 0.9999)},
        "optimistic-thompson": {"num_samples": (1, 2, 3, 5, 10, 20)},
    },
)

# The best RL² recipe found on the two cells with published RL² values (docs/results/rl2.md,
# "The critic's share of the clip"): GRU 256 with a ReLU layer before the heads, a GRU 64 critic
# that sees the task, reward prediction, 25-step rollouts, Adam's eps 1e-8 and each network's
# gradient clipped by its own norm at lr 1e-3. 7.5-8 M steps take 21-25 minutes per cell on
# 2 CPU cores, about two hours for the whole table with the baselines.
MDP_RECIPE: dict[str, Any] = {
    "hidden_size": 256,
    "critic_hidden_size": 64,
    "head_hidden_size": 256,
    "task_critic": True,
    "reward_coef": 3.0,
    "rollout_len": 25,
    "adam_eps": 1e-8,
    "clip_per_network": True,
    "learning_rate": 1e-3,
}


def _mdp_budget(n: int) -> int:
    return 8_000_000 if n == 10 else 7_500_000


RL2_MDPS = Table(
    name="rl2-mdps",
    title="Tabular MDPs: total reward per trial of n episodes (RL², Table 2)",
    kind="mdp",
    methods=MDP_METHODS,
    cells=tuple(
        Cell(
            task=f"mdp-s10-a5-n{n}",
            label=f"n={n}",
            paper=dict(zip(MDP_METHODS, values, strict=True)),
            rl2_steps=_mdp_budget(n),
            rl2_overrides=MDP_RECIPE,
        )
        for n, values in _MDP_PAPER.items()
    ),
    tuning={
        "epsilon-greedy": {"epsilon": tuple(i / 10 for i in range(1, 11))},
        "opsrl": {"num_samples": (1, 2, 3, 5, 10, 15, 20)},
        "ucrl2": {"scaling": _LOG_GRID},
        "beb": {"scaling": _LOG_GRID},
    },
)

TABLES = {table.name: table for table in (RL2_BANDITS, RL2_MDPS)}
