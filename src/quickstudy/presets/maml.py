"""Supervised MAML's per-task defaults: the settings that suit a task, applied unless overridden."""

from __future__ import annotations

from typing import Any


def classification_defaults(ways: int) -> dict[str, Any]:
    """MAML settings for N-way image tasks on a CPU.

    The paper's inner step sizes (0.4 for 5-way, 0.1 for 20-way), smaller meta-batches and a short
    budget (MAML trained 60k iterations of 32 / 16 tasks, about a day on this kind of machine).
    """
    return {
        "inner_lr": 0.4 if ways <= 5 else 0.1,
        "meta_batch_size": 8 if ways <= 5 else 4,
        "total_steps": 2000,
        "test_steps": 3,
        "test_query_points": 15,
    }


def task_defaults(tasks: Any) -> dict[str, Any]:
    """``MAMLConfig`` values for ``tasks``: the classification settings for N-way tasks."""
    if getattr(tasks, "loss", None) == "xent":
        return classification_defaults(tasks.output_dim)
    return {}
