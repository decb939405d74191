"""The slopes experiment: meta-train on level ground, meta-test on slopes it never saw.

The seed's example of out-of-distribution adaptation: a half-cheetah meta-trained on level ground
only (random target velocities and body masses, ``cheetah-slope``) must run at its target velocity
on ground tilted up or down by 5 to 20 degrees (``cheetah-slope-up<N>`` / ``-down<N>``). Beside
the meta-learners (RL², MAML-RL, PEARL) stand a non-adaptive policy trained on the same
level-ground tasks and, per slope, two oracles trained on that slope that also see the task's
parameters (target velocity, masses, gravity), one with TRPO and one with SAC — where even the
oracles fail, the slope is no test of adaptation. No paper has these numbers: the experiment
exists in no other library.
"""

from __future__ import annotations

from quickstudy.presets.tables import Cell, Method, TableSpec
from quickstudy.tasks.locomotion import SLOPE_ANGLES

# MAML-RL on the gym-convention cheetah, as on maml-cheetah-dir (docs/results/mujoco.md): 20 tasks
# x 10 episodes per meta-iteration, α = 0.1; 20 episodes per task and step at meta-test.
_MAML_RL = {
    "inner_lr": 0.1,
    "meta_batch_size": 20,
    "episodes_per_task": 10,
    "test_episodes": 20,
}

SLOPE_METHODS = {
    # The three on-policy learners get the same 30 M steps, so that a lead over the non-adaptive
    # policy is adaptation and not budget: 10 M left RL² below a 4 M non-adaptive policy on level
    # ground, and a 4 M non-adaptive policy flattered both meta-learners (docs/results/slopes.md).
    "rl2": Method("RL²", algo="rl2", budget=30_000_000),
    "maml": Method(
        "MAML-RL",
        algo="maml-rl",
        overrides={**_MAML_RL, "variant": "maml", "test_steps": 2},
        budget=30_000_000,
    ),
    "non-adaptive": Method(
        "non-adaptive",
        algo="maml-rl",
        overrides={**_MAML_RL, "variant": "pretrained", "test_steps": 0},
        budget=30_000_000,
    ),
    # PEARL with the authors' cheetah-vel schedule; s' in the context, as the masses vary.
    "pearl": Method(
        "PEARL",
        algo="pearl",
        overrides={
            "num_initial_steps": 2000,
            "num_steps_prior": 400,
            "num_extra_rl_steps_posterior": 600,
            "embedding_batch_size": 100,
            "exploration_episodes": 2,
            "encoder": {"use_next_obs": True},
        },
        budget=1_000_000,
    ),
    "oracle": Method(
        "oracle (per slope)",
        algo="maml-rl",
        overrides={**_MAML_RL, "variant": "oracle", "test_steps": 0},
        budget=3_200_000,
        train_on_cell=True,
    ),
    # PEARL's SAC given the task's parameters instead of z, trained on each slope: the off-policy
    # oracle, where TRPO's is weak (level ground at 300 k steps: -29.6 against -188.3 for TRPO's
    # at 3.2 M; docs/results/slopes.md). 200 initial steps per training task, then PEARL's
    # per-iteration collection; ~20 minutes per slope on one core.
    "sac-oracle": Method(
        "SAC oracle (per slope)",
        algo="pearl",
        overrides={
            "variant": "oracle",
            "num_initial_steps": 200,
            "num_steps_prior": 400,
            "num_extra_rl_steps_posterior": 600,
            "exploration_episodes": 0,
        },
        budget=300_000,
        train_on_cell=True,
    ),
}
"""The methods of the slopes figure: each reports its last point (RL²: the second episode of
the trial; MAML-RL: after 2 gradient steps; PEARL: the third episode, after two with z from the
prior; the others: their policy as trained)."""


def _cell(robot: str, degrees: int) -> Cell:
    if degrees == 0:
        task, label = f"{robot}-slope", "level"
    else:
        where = "up" if degrees > 0 else "down"
        task, label = f"{robot}-slope-{where}{abs(degrees)}", f"{abs(degrees)}° {where}hill"
    return Cell(task, label, {}, train_task=f"{robot}-slope", x=float(degrees))


_REWARD = {
    "cheetah": "−|v − v*| − 0.05‖a‖² per step",
    "ant": "−|v − v*| − 0.5‖a‖² − its contact cost + 1 per step, ended early when the ant falls",
}


def slopes_table(robot: str) -> TableSpec:
    """The slopes experiment for one robot (``cheetah`` or ``ant``): ``<robot>-slope`` cells.

    Both robots get the same methods and budgets, so their tables compare across robots.
    """
    name, title = {
        "cheetah": ("slopes", "Half-cheetah trained on level ground, tested on slopes"),
        "ant": ("slopes-ant", "Ant trained on level ground, tested on slopes"),
    }[robot]
    angles = (*(-a for a in SLOPE_ANGLES[::-1]), 0, *SLOPE_ANGLES)
    return TableSpec(
        name=name,
        title=title,
        view="sweep",
        methods=SLOPE_METHODS,
        cells=tuple(_cell(robot, d) for d in angles),
        budget=10_000_000,
        test_tasks=30,
        note=(
            f"Entries: mean episode return (200 steps, {_REWARD[robot]}) over 30 held-out "
            "tasks of each slope (v* ~ U[0, 2], masses × U[0.75, 1.25]), ± s.e. over tasks. RL²: "
            "the second episode of a 2-episode trial; MAML-RL: after 2 policy-gradient steps "
            "(α = 0.1, then α/2) of 20 episodes each; PEARL: the third episode, z sampled from "
            "the posterior of two prior-z episodes; non-adaptive: MAML-RL's pretrained baseline, "
            "no adaptation; oracle: trained on that slope's own tasks with the task's parameters "
            "in its observation (TRPO), SAC oracle: the same with PEARL's SAC. Every method but "
            "the oracles trained on level ground only. Budgets: environment steps of training "
            "per method."
        ),
        decimals=1,
        x_label="slope (degrees; + uphill)",
        checks=(("maml", "non-adaptive"), ("rl2", "non-adaptive"), ("pearl", "non-adaptive")),
    )


SLOPES = slopes_table("cheetah")
SLOPES_ANT = slopes_table("ant")

TABLES = {SLOPES.name: SLOPES, SLOPES_ANT.name: SLOPES_ANT}
