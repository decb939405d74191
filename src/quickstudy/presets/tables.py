"""Paper tables as data: cells, methods, budgets and published values.

A :class:`TableSpec` is everything ``quickstudy reproduce`` needs to run, cache and render one of a
paper's tables; :mod:`quickstudy.reproduce` is the one engine that does it for every table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class Method:
    """One method (a column or a curve) of a table.

    Exactly one of ``algo`` (a registered algorithm, trained or untrained) and ``baseline`` (a
    classical player of :mod:`quickstudy.reproduce.baselines`) is set.

    Attributes:
        label: Display name.
        algo: Registered algorithm name.
        overrides: Config overrides on top of the table's ``base`` (nested dicts for nested
            configs).
        preset: A named recipe of the algorithm, applied before ``overrides``.
        trained: ``False``: the initial parameters are meta-tested (e.g. random init, fine-tuned
            at meta-test); no training budget is spent.
        baseline: Classical method name.
        tuning: Hyperparameter -> grid, tuned per cell on separate trials (baselines).
        points: Points of this method's meta-test (``None``: the table's ``test_points``), for
            tables whose methods count points differently (episodes for RL², gradient steps
            for MAML).
        point: The point a ``sweep`` table reports (``None``: the last).
        train_on_cell: Train on the cell's own task even where the cell names another
            ``train_task`` (an oracle trained on each test setting).
        budget: This method's training budget (``None``: the cell's or the table's).
    """

    label: str
    algo: str | None = None
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    preset: str | None = None
    trained: bool = True
    baseline: str | None = None
    tuning: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    points: int | None = None
    point: int | None = None
    train_on_cell: bool = False
    budget: int | None = None

    def __post_init__(self):
        if (self.algo is None) == (self.baseline is None):
            raise ValueError(f"method {self.label!r}: give exactly one of algo or baseline")

    @property
    def trains(self) -> bool:
        """Whether the method spends a training budget."""
        return self.algo is not None and self.trained


@dataclasses.dataclass(frozen=True)
class Cell:
    """One setting (a row or a panel) of a table.

    Attributes:
        task: Registered task name.
        label: Row or panel label.
        paper: Published value per method: a number (``view="score"``) or ``{point: value}``
            (``view="adaptation"``); ``None`` where the paper has none.
        targets: This project's targets for the table's ``target_method``, per point.
        budget: Training budget of this cell (``None``: the table's).
        overrides: Method -> config overrides for this cell only.
        preset: Method -> named recipe for this cell only.
        train_task: The registered task the trained methods meta-train on (``None``: ``task``).
            The cell meta-tests them on ``task``'s held-out tasks, which must be tasks of the
            same environment: train on level ground, test on a slope. Cells with the same
            ``train_task`` share their training runs.
        x: The cell's position on a ``sweep`` table's x axis (e.g. the slope in degrees).
        budgets: Method -> training budget on this cell only (methods whose budgets differ
            by orders of magnitude from cell to cell).
        methods: The only methods this cell runs (empty: all of the table's); the others show
            "—" in its row.
    """

    task: str
    label: str
    paper: Mapping[str, Any]
    targets: Mapping[int, float] = dataclasses.field(default_factory=dict)
    budget: int | None = None
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    preset: Mapping[str, str] = dataclasses.field(default_factory=dict)
    train_task: str | None = None
    x: float | None = None
    budgets: Mapping[str, int] = dataclasses.field(default_factory=dict)
    methods: tuple[str, ...] = ()

    def runs(self, method: str) -> bool:
        """Whether this cell runs ``method``."""
        return not self.methods or method in self.methods

    def trains_on(self, method: Method) -> str:
        """The task ``method`` meta-trains on in this cell."""
        if self.train_task is None or method.train_on_cell:
            return self.task
        return self.train_task


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """A paper's table or figure.

    Attributes:
        name: ``quickstudy reproduce`` target.
        title: Caption.
        view: ``"curve"``: one number per method and cell (its ``point``) beside its learning
            curve, the meta-test metric against training steps (PEARL's Figure 3);
            ``"score"``: one number per method and cell, the total over a trial's episodes,
            in one table with the best entries in bold (the RL² paper's tables);
            ``"adaptation"``: the metric after each adaptation point, one table and figure
            panel per cell (MAML's curves); ``"sweep"``: one number per method and cell (the
            method's ``point``), cells along an x axis (``Cell.x``), one figure of the metric
            against x (return against slope angle).
        methods: Method name -> :class:`Method`, in column order.
        cells: Rows in the paper's order.
        budget: Training budget per trained method (the algorithm's ``total_steps``).
        test_tasks: Held-out trials or tasks per cell.
        test_points: Points of the meta-test (``None``: the algorithm's default).
        base: Config fields shared by every trained method.
        note: Text under the table.
        decimals: Digits shown.
        target_method: The method whose targets the table checks.
        log_y: Logarithmic y axis of the adaptation figure.
        metric_label: What the adaptation figure's y axis shows.
        higher_is_better: Direction of the metric (for the targets).
        x_label: The x axis of a ``sweep`` figure.
        checks: ``(a, b)`` pairs of methods: a ``sweep`` table states, per cell, whether ``a``
            is above ``b`` (e.g. the meta-learner above the non-adaptive policy).
        curve_points: Meta-tests along each trained method's training, evenly spaced in its
            updates (a ``curve`` table: meta-test metric against training steps, one panel
            per cell; ``Cell.paper`` holds each method's published asymptote).
        efficiency: A ``curve`` table's sample-efficiency check: the training steps this
            method needs to reach each other method's final meta-test metric, as a ratio.
        measure: The meta-test array the table reads: ``"values"`` (the metric) or the name
            of one of its extras, e.g. ``"lengths"`` (steps per episode).
        point_label: An ``adaptation`` table's column header, ``{k}`` the point.
        first_point: The axis position of the meta-test's first column (1 for episodes).
        point_axis: An ``adaptation`` figure's x-axis label.
        normalize: ``(low, high)`` methods of a ``score`` table: each cell's scores are mapped
            to ``(x - low) / (high - low)`` for the table-wide interquartile mean over cells.
    """

    name: str
    title: str
    view: Literal["score", "adaptation", "sweep", "curve"]
    methods: Mapping[str, Method]
    cells: tuple[Cell, ...]
    budget: int
    test_tasks: int
    test_points: int | None = None
    base: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""
    decimals: int = 2
    target_method: str | None = None
    log_y: bool = False
    metric_label: str = "mean episode return"
    higher_is_better: bool = True
    x_label: str = ""
    checks: tuple[tuple[str, str], ...] = ()
    curve_points: int = 0
    efficiency: str | None = None
    measure: str = "values"
    point_label: str = "{k} steps"
    first_point: int = 0
    point_axis: str = "gradient steps at meta-test"
    normalize: tuple[str, str] | None = None

    @property
    def tuned(self) -> bool:
        """Whether any method tunes hyperparameters per cell."""
        return any(m.tuning for m in self.methods.values())

    def cell(self, task: str) -> Cell:
        """The cell of ``task``."""
        for cell in self.cells:
            if cell.task == task:
                return cell
        raise KeyError(task)

    def labels(self) -> dict[str, str]:
        """Method name -> display label."""
        return {name: m.label for name, m in self.methods.items()}
