"""SNAIL's maze table (Mishra et al. 2018, Table 5) on this library's mazes.

Trained on small mazes, meta-tested on unseen small and large ones: steps to the goal in
episodes 1 and 2 of a trial (a failure counts the episode's cap), for random play, RL² (GRU),
SNAIL and RL² with separate exploration and task heads (E-RL²). Our mazes move on a block grid
with four headings and render at 40 × 30 (or a symbolic window), so only the pattern of the
published numbers carries over: learned ≪ random, episode 2 faster than episode 1, SNAIL ≤ RL².
"""

from __future__ import annotations

from quickstudy.presets.tables import Cell, Method, TableSpec

_PAPER = {
    "small": {
        "random": {1: 188.6, 2: 187.7},
        "rl2": {1: 52.4, 2: 39.1},
        "snail": {1: 50.3, 2: 34.8},
    },
    "large": {
        "random": {1: 420.2, 2: 420.8},
        "rl2": {1: 180.1, 2: 150.6},
        "snail": {1: 140.5, 2: 105.9},
    },
}

SNAIL_CPU = {
    "filters": 16,
    "key_size": 16,
    "value_size": 16,
    "blocks": ("tc", "attention"),
    "memory_len": 500,
    "rollout_len": 500,
}
"""SNAIL sized for a CPU: one TC block of 16 filters and one attention block, over the 500
steps a small-maze trial can last (2 episodes of at most 250), in rollouts of 500 steps."""

METHODS = {
    "random": Method("Random", baseline="random"),
    "rl2": Method("RL² (GRU)", algo="rl2"),
    "snail": Method("SNAIL", algo="snail", overrides=SNAIL_CPU),
    "erl2": Method("E-RL² (π_exp, π_task)", algo="rl2", overrides={"explore_episodes": 1}),
}


def _table(view: str, budget: int) -> TableSpec:
    suffix = "" if view == "rgb" else "-symbolic"
    seen = "first-person RGB" if view == "rgb" else "a symbolic egocentric window"
    return TableSpec(
        name=f"snail-mazes{suffix}",
        title=f"Mazes seen through {seen}: steps to the goal (SNAIL, Table 5)",
        view="adaptation",
        methods=METHODS,
        cells=tuple(
            Cell(
                task=f"maze-{kind}{suffix}",
                label=f"{kind} mazes (unseen)",
                paper=_PAPER[kind],
                train_task=f"maze-small{suffix}",
            )
            for kind in ("small", "large")
        ),
        budget=budget,
        test_tasks=100,
        test_points=2,
        measure="lengths",
        point_label="episode {k}",
        first_point=1,
        point_axis="episode of the trial",
        metric_label="steps to the goal",
        higher_is_better=False,
        decimals=1,
        note=(
            "Entries: mean steps to the goal ± s.e. over 100 unseen mazes, one trial of 2 "
            "episodes each (a failure counts the cap: 250 steps small, 500 large); every method "
            "is trained on the 1000 small training mazes. In brackets: SNAIL's Table 5, whose "
            "3-D mazes differ from ours, so compare the pattern, not the values. SNAIL here is "
            "sized for a CPU (one TC and one attention block, 16 filters)."
        ),
    )


SNAIL_MAZES = _table("rgb", 10_000_000)
SNAIL_MAZES_SYMBOLIC = _table("symbolic", 10_000_000)
TABLES = {table.name: table for table in (SNAIL_MAZES, SNAIL_MAZES_SYMBOLIC)}
