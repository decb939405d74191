"""PEARL's named recipes and the authors' per-task settings (``quickstudy train pearl``).

The library's defaults are sized for 2 CPU cores ([128, 128, 128] networks, 1000 gradient steps
per iteration); the ``paper`` preset is the authors' configuration for an accelerator. The
per-task settings follow the authors' config files (``katerakelly/oyster``, ``configs/``): the
schedule of each task, its reward scale, context batch and exploration episodes.
"""

from __future__ import annotations

from typing import Any

from quickstudy.types import Preset

PAPER = Preset(
    description=(
        "the authors' networks and schedule (Rakelly and others, 2019): actor and critics [300, "
        "300, 300], encoder [200, 200, 200], meta-batch 16 x 256 transitions, 2000 gradient "
        "steps per iteration; one "
        "step is ~0.18 s on 2 CPU cores (benchmarks/pearl_speed.py): for an accelerator"
    ),
    overrides={
        "meta_batch": 16,
        "batch_size": 256,
        "num_train_steps_per_itr": 2000,
        "sac": {"hidden_sizes": (300, 300, 300)},
        "encoder": {"encoder_hidden": (200, 200, 200)},
    },
)

PRESETS = {"paper": PAPER}

_MUJOCO: dict[str, Any] = {
    "num_initial_steps": 2000,
    "num_steps_prior": 400,
    "num_extra_rl_steps_posterior": 600,
    "exploration_episodes": 2,
}
"""The authors' schedule on their MuJoCo tasks: 2000 initial steps per task, 400 prior and 600
RL-only steps per sampled task, 2 exploration episodes at meta-test. They run 4000 gradient
steps per iteration on ant-dir, ant-goal, humanoid-dir, walker and hopper and their default 2000
on cheetah-dir; the CPU default here keeps 1000 (the "paper" preset 2000)."""

_TASKS: dict[str, dict[str, Any]] = {
    "point-robot": {"num_train_steps_per_itr": 1000, "sac": {"reward_scale": 100.0}},
    "point-robot-random-start": {"num_train_steps_per_itr": 1000, "sac": {"reward_scale": 100.0}},
    "sparse-point-robot": {
        "num_train_steps_per_itr": 1000,
        "num_tasks_sample": 10,
        "num_steps_prior": 100,
        "num_steps_posterior": 900,
        "num_extra_rl_steps_posterior": 0,
        "embedding_batch_size": 1024,
        "dense_critic": True,
        "sac": {"reward_scale": 100.0, "gamma": 0.9},
        "encoder": {"kl_weight": 1.0},
    },
    "cheetah-vel": {**_MUJOCO, "embedding_batch_size": 100},
    "cheetah-dir": {
        **_MUJOCO,
        "num_steps_prior": 1000,
        "num_extra_rl_steps_posterior": 1000,
        "embedding_batch_size": 256,
        "meta_batch": 4,
        "num_tasks_sample": 2,  # the authors draw 5 of their 2 tasks with replacement
    },
    "ant-dir": {**_MUJOCO, "embedding_batch_size": 256, "meta_batch": 4, "num_tasks_sample": 2},
    "ant-goal": {
        **_MUJOCO,
        "embedding_batch_size": 256,
        "meta_batch": 10,
        "encoder": {"kl_weight": 1.0},
    },
    "humanoid-dir": {**_MUJOCO, "embedding_batch_size": 256},
    **{
        name: {
            **_MUJOCO,
            "embedding_batch_size": 100,
            "meta_batch": 10,
            "encoder": {"use_next_obs": True},  # the dynamics vary between tasks
        }
        for name in ("walker-params", "hopper-params")
    },
}
"""The authors' per-task settings that differ from :class:`~quickstudy.algorithms.pearl.
PEARLConfig`'s defaults (their ``default.py`` and each task's JSON)."""


def task_defaults(tasks: Any) -> dict[str, Any]:
    """The authors' settings for ``tasks`` (none for a task they did not run)."""
    return _TASKS.get(getattr(tasks, "name", ""), {})


_RL2_SAC_TASKS: dict[str, dict[str, Any]] = {
    "point-robot": {"sac": {"reward_scale": 100.0}},
    "point-robot-numpy": {"sac": {"reward_scale": 100.0}},
    "point-robot-random-start": {"sac": {"reward_scale": 100.0}},
    "sparse-point-robot": {"sac": {"reward_scale": 100.0}},
    "cheetah-vel": {"train_ratio": 0.2},
    "cheetah-dir": {"train_ratio": 0.2},
}
"""The recurrent SAC baseline on PEARL's tasks: PEARL's reward scales and its ratio of gradient
steps to environment steps (1000 per 2000 steps on the point robot, per 5000 on the cheetahs)."""


def rl2_sac_task_defaults(tasks: Any) -> dict[str, Any]:
    """PEARL's reward scale and update ratio on ``tasks`` for ``rl2-sac``."""
    return _RL2_SAC_TASKS.get(getattr(tasks, "name", ""), {})
