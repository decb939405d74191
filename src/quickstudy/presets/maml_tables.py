"""MAML's published results (Finn et al. 2017) and the configurations that reproduce them.

* ``maml-sinusoid`` (§5.1): the MAML paper shows sinusoid results as curves only; the numbers beside
  ours are the 1-step MAML and Meta-SGD figures of the Meta-SGD paper (Li et al. 2017, Table 1) and,
  for 10 shots, learn2learn's MAML with the same settings on this kind of machine (0.36 after 20k
  meta-iterations; see ``shared/REFERENCE.md`` §3).
* ``maml-nav2d`` (§5.3, 2-D navigation): mean return over 40 held-out goals after 0, 1, 2 gradient
  steps, from the paper's data (REFERENCE.md §3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from quickstudy.algorithms.maml import MAMLConfig
from quickstudy.algorithms.maml_rl import MAMLRLConfig


@dataclasses.dataclass(frozen=True)
class MAMLCell:
    """One setting of a MAML table.

    Attributes:
        task: Registered task name.
        label: Row/panel label.
        paper: Published value per method, per number of gradient steps (``{method: {k: v}}``).
        targets: This project's targets for MAML, per number of gradient steps (``{k: v}``).
    """

    task: str
    label: str
    paper: dict[str, dict[int, float]]
    targets: dict[int, float]


@dataclasses.dataclass(frozen=True)
class MAMLTable:
    """A MAML experiment: algorithm, methods, cells, budget and meta-test protocol.

    Attributes:
        name: Table name for ``quickstudy reproduce``.
        title: Heading.
        algo: Registered algorithm (``maml`` or ``maml-rl``).
        methods: Method -> config overrides; ``None`` marks an untrained method (the initial
            parameters, fine-tuned at meta-test: random initialisation).
        labels: Method -> display name.
        cells: The settings.
        budget: Default training budget per method (``total_steps`` of the config).
        test_tasks: Held-out tasks.
        test_steps: Gradient steps recorded at meta-test (0..test_steps).
        metric: ``"mse"`` (lower is better) or ``"return"`` (higher is better).
        base: Config fields shared by every method.
        note: Text under the table (protocol and sources).
    """

    name: str
    title: str
    algo: str
    methods: dict[str, dict[str, Any] | None]
    labels: dict[str, str]
    cells: tuple[MAMLCell, ...]
    budget: int
    test_tasks: int
    test_steps: int
    metric: str
    base: dict[str, Any]
    note: str

    @property
    def higher_is_better(self) -> bool:
        """Whether larger values of the metric are better."""
        return self.metric == "return"

    def config(self, method: str, budget: int | None = None) -> MAMLConfig | MAMLRLConfig:
        """The configuration of ``method`` with ``budget`` (default: the table's)."""
        cls = MAMLConfig if self.algo == "maml" else MAMLRLConfig
        overrides = self.methods[method] or {}
        return cls(
            total_steps=budget or self.budget,
            test_steps=self.test_steps,
            **{**self.base, **overrides},
        )


MAML_SINUSOID = MAMLTable(
    name="maml-sinusoid",
    title="MAML sinusoid regression: query MSE on held-out tasks",
    algo="maml",
    methods={
        "maml": {"variant": "maml"},
        "fomaml": {"variant": "maml", "first_order": True},
        "meta-sgd": {"variant": "maml", "learn_inner_lr": True},
        "pretrained": {"variant": "pretrained"},
        "oracle": {"variant": "oracle"},
    },
    labels={
        "maml": "MAML",
        "fomaml": "first-order MAML",
        "meta-sgd": "Meta-SGD",
        "pretrained": "pretrained",
        "oracle": "oracle",
    },
    cells=(
        MAMLCell("sinusoid-k5", "5-shot", {"maml": {1: 1.13}, "meta-sgd": {1: 0.90}}, {1: 1.1}),
        MAMLCell("sinusoid-k10", "10-shot", {"maml": {1: 0.77}, "meta-sgd": {1: 0.53}}, {1: 0.75}),
        MAMLCell("sinusoid-k20", "20-shot", {"maml": {1: 0.48}, "meta-sgd": {1: 0.31}}, {}),
    ),
    budget=70_000,
    test_tasks=600,
    test_steps=10,
    metric="mse",
    base={},
    note=(
        "Entries: mean query MSE over the held-out tasks (100 query points each) after k gradient "
        "steps (α = 0.01) on the K support points, ± s.e.; in brackets the published value "
        "(Meta-SGD paper, Table 1, 1 step). For reference: predicting 0 gives ≈ 4.25, the best "
        "task-agnostic predictor ≈ 3.0; learn2learn's MAML on this kind of machine gave 10-shot "
        "1-step 0.44 (10k) and 0.36 (20k meta-iterations). Budget: meta-iterations per method "
        "(meta-batch 25)."
    ),
)

MAML_NAV2D = MAMLTable(
    name="maml-nav2d",
    title="MAML 2-D navigation: return on 40 held-out goals after k policy-gradient steps",
    algo="maml-rl",
    methods={
        "maml": {"variant": "maml"},
        # The authors' pretraining: one full-batch Adam step (lr 1e-3) of the policy gradient per
        # batch, which leaves the policy's spread near its initial value.
        "pretrained": {"variant": "pretrained", "outer": "ppo", "ppo_epochs": 1},
        # The same baseline trained with TRPO: its standard deviation shrinks to about 0.1, and
        # the fine-tuning step α = 0.5 then overshoots.
        "pretrained-trpo": {"variant": "pretrained"},
        "random": None,
        "oracle": {"variant": "oracle"},
    },
    labels={
        "maml": "MAML",
        "pretrained": "pretrained",
        "pretrained-trpo": "pretrained (TRPO)",
        "random": "random init",
        "oracle": "oracle",
    },
    cells=(
        MAMLCell(
            "nav2d",
            "nav2d",
            {
                "maml": {0: -40.41, 1: -11.68, 2: -3.33},
                "pretrained": {0: -40.81, 1: -19.73, 2: -11.72},
                "random": {0: -82.66, 1: -57.96, 2: -53.84},
                "oracle": {0: -2.29},
            },
            {1: -15.0, 2: -5.0},
        ),
    ),
    budget=8_000_000,
    test_tasks=40,
    test_steps=3,
    metric="return",
    base={"meta_batch_size": 20},
    note=(
        "Entries: mean episode return over the 40 held-out goals (40 episodes per goal and step) "
        "after k vanilla policy-gradient steps (α = 0.5, then α/2), ± s.e. over goals; in "
        "brackets the paper's value (Finn et al. 2017, 2-D navigation data). Budget: environment "
        "steps of meta-training per method (MAML: 20 tasks x 20 episodes x 100 steps, before and "
        "after adaptation, per meta-iteration; TRPO outer loop, KL ≤ 0.01)."
    ),
)

TABLES = {table.name: table for table in (MAML_SINUSOID, MAML_NAV2D)}
