"""MAML's sinusoid-regression results (Finn et al. 2017, §5.1) and the reference numbers to beat.

The MAML paper shows sinusoid results as curves only; the numbers beside ours are the 1-step MAML
figures of the Meta-SGD paper (Li et al. 2017, Table 1: 5/10/20-shot 1.13/0.77/0.48) and, for
10 shots, learn2learn's MAML with the same settings on this kind of machine (0.36 after 20k
meta-iterations; see ``shared/REFERENCE.md`` §3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from quickstudy.algorithms.maml import MAMLConfig

SINUSOID_VARIANTS: dict[str, dict[str, Any]] = {
    "maml": {"variant": "maml"},
    "fomaml": {"variant": "maml", "first_order": True},
    "meta-sgd": {"variant": "maml", "learn_inner_lr": True},
    "pretrained": {"variant": "pretrained"},
    "oracle": {"variant": "oracle"},
}
"""Method name -> MAMLConfig overrides (all else: the paper's settings, MAMLConfig's defaults)."""

LABELS = {
    "maml": "MAML",
    "fomaml": "first-order MAML",
    "meta-sgd": "Meta-SGD",
    "pretrained": "pretrained",
    "oracle": "oracle",
}


@dataclasses.dataclass(frozen=True)
class SinusoidCell:
    """One shot count of the sinusoid experiment.

    Attributes:
        task: Registered task name (``sinusoid-k{K}``).
        shots: ``K``.
        paper_one_step: Published query MSE after one step, method -> value (Meta-SGD paper).
        target_one_step: The issue's target for MAML after one step (``None``: no target).
    """

    task: str
    shots: int
    paper_one_step: dict[str, float]
    target_one_step: float | None


SINUSOID_CELLS = (
    SinusoidCell("sinusoid-k5", 5, {"maml": 1.13, "meta-sgd": 0.90}, 1.1),
    SinusoidCell("sinusoid-k10", 10, {"maml": 0.77, "meta-sgd": 0.53}, 0.75),
    SinusoidCell("sinusoid-k20", 20, {"maml": 0.48, "meta-sgd": 0.31}, None),
)
SINUSOID_ITERATIONS = 70_000
"""Meta-iterations per method (the paper's 70k; pretrained and oracle get the same)."""
SINUSOID_TEST_TASKS = 600
SINUSOID_TEST_STEPS = 10


def sinusoid_config(method: str, iterations: int = SINUSOID_ITERATIONS) -> MAMLConfig:
    """The configuration of ``method`` in the sinusoid reproduction."""
    return MAMLConfig(
        total_steps=iterations, test_steps=SINUSOID_TEST_STEPS, **SINUSOID_VARIANTS[method]
    )
