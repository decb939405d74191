"""Reproduce MAML's experiments: MAML, its variants and baselines on the same held-out tasks.

``maml-sinusoid``: query MSE of 600 held-out sinusoids after 0..10 gradient steps, for 5, 10 and
20 shots. ``maml-nav2d``: return on 40 held-out goals after 0..3 policy-gradient steps. For every
cell each method is meta-trained (or a cached run is reused / resumed), then meta-tested on the
same tasks with the same seed. Writes ``table.md`` (ours beside the published numbers),
``table.json`` and ``figure.png`` (one adaptation-curve panel per cell); finished cells are saved
under ``<out>/cells/`` so an interrupted reproduction resumes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from quickstudy import runner
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.evaluation.plots import plot_adaptation_panels
from quickstudy.evaluation.stats import per_index_summary
from quickstudy.presets.maml_tables import TABLES, MAMLCell, MAMLTable
from quickstudy.reproduce import (
    Log,
    TrainHook,
    as_json,
    config_run_dir,
    git_commit,
    run_cells,
    train_or_reuse,
)
from quickstudy.tracking import read_json, write_json_atomic


@dataclasses.dataclass(frozen=True)
class MAMLSettings:
    """What to reproduce and how.

    Attributes:
        table: ``"maml-sinusoid"`` or ``"maml-nav2d"``.
        out_dir: Output directory (cells, table, figure).
        cells: Task names of the cells to run (empty: all).
        budget: Training budget per method (``None``: the table's; see its note for the unit).
        trials: Held-out tasks (``None``: the table's).
        seed: Seed of training and of the meta-test.
        cache_dir: Where runs are kept and reused (default: ``<out_dir>/runs``).
        methods: Methods to run (empty: all of the table's).
    """

    table: str
    out_dir: Path
    cells: tuple[str, ...] = ()
    budget: int | None = None
    trials: int | None = None
    seed: int = 0
    cache_dir: Path | None = None
    methods: tuple[str, ...] = ()

    def __post_init__(self):
        if self.table not in TABLES:
            raise UnknownNameError(
                f"unknown table {self.table!r}. Valid tables: {', '.join(TABLES)}"
            )
        valid = [cell.task for cell in self.spec.cells]
        unknown = [c for c in self.cells if c not in valid]
        if unknown:
            raise UnknownNameError(
                f"unknown cell(s) {', '.join(unknown)} for {self.table}. Valid cells: "
                f"{', '.join(valid)}"
            )
        unknown = [m for m in self.methods if m not in self.spec.methods]
        if unknown:
            raise UnknownNameError(
                f"unknown method(s) {', '.join(unknown)} for {self.table}. Valid methods: "
                f"{', '.join(self.spec.methods)}"
            )
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget <= 0):
            raise ConfigError(f"budget must be a positive integer, got {self.budget!r}")
        if self.trials is not None and (not isinstance(self.trials, int) or self.trials < 2):
            raise ConfigError(f"trials must be an integer >= 2, got {self.trials!r}")

    @property
    def spec(self) -> MAMLTable:
        """The table being reproduced."""
        return TABLES[self.table]

    @property
    def selected(self) -> tuple[MAMLCell, ...]:
        """The cells to run, in the table's order."""
        return tuple(c for c in self.spec.cells if not self.cells or c.task in self.cells)

    @property
    def selected_methods(self) -> tuple[str, ...]:
        """The methods to run, in the table's order."""
        return tuple(m for m in self.spec.methods if not self.methods or m in self.methods)

    @property
    def num_tasks(self) -> int:
        """Held-out tasks."""
        return self.trials or self.spec.test_tasks

    @property
    def run_cache(self) -> Path:
        """Directory of the training runs."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / "runs"


def _untrained(cell: MAMLCell, method: str, settings: MAMLSettings) -> tuple[np.ndarray, dict]:
    """Meta-test of the initial parameters (random initialisation, fine-tuned)."""
    spec = settings.spec
    algo = runner.build_algorithm(spec.algo, cell.task, spec.config(method, settings.budget))
    params = jax.jit(algo.init)(jax.random.key(settings.seed)).params
    evaluate = jax.jit(algo.evaluate, static_argnums=3)
    tasks = algo.tasks.test_tasks(settings.num_tasks)
    result = evaluate(params, jax.random.key(settings.seed), tasks, spec.test_steps)
    values = result.losses if spec.metric == "mse" else result.returns
    return np.asarray(values, np.float64), {"train_seconds": 0.0}


def run_method(
    cell: MAMLCell,
    method: str,
    settings: MAMLSettings,
    log: Log,
    train_hook: TrainHook | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Trains one method on one cell (or reuses its cached run) and meta-tests it.

    Returns:
        The metric per held-out task after 0..test_steps steps ``[tasks, test_steps + 1]`` and a
        record (run directory, training seconds).
    """
    spec = settings.spec
    if spec.methods[method] is None:
        return _untrained(cell, method, settings)
    config = spec.config(method, settings.budget)
    stem = f"{method}-{cell.task}-budget{config.total_steps}-seed{settings.seed}"
    path = config_run_dir(settings.run_cache, stem, config)
    run_settings = runner.RunSettings(
        seed=settings.seed,
        chunk_updates=1000 if spec.algo == "maml" else 5,
        checkpoint_every=10 if spec.algo == "maml" else 1,
        eval_tasks=settings.num_tasks,
    )
    run, params, train_seconds = train_or_reuse(
        spec.algo, cell.task, config, path, run_settings, log, train_hook
    )
    runner.evaluate(
        run, params, episodes=spec.test_steps, num_tasks=settings.num_tasks, seed=settings.seed
    )
    key = "losses" if spec.metric == "mse" else "returns"
    values = np.load(path / "eval" / "results.npz")[key].astype(np.float64)
    return values, {"run_dir": str(path), "train_seconds": train_seconds}


def _cell_paths(settings: MAMLSettings, cell: MAMLCell) -> tuple[Path, Path]:
    base = Path(settings.out_dir) / "cells" / cell.task
    return base.with_suffix(".json"), base.with_suffix(".npz")


def _configs_record(settings: MAMLSettings) -> dict[str, dict[str, Any] | None]:
    """Each selected method's configuration as its cell file records it (``None``: untrained)."""
    spec = settings.spec
    return {
        m: None if spec.methods[m] is None else as_json(spec.config(m, settings.budget))
        for m in settings.selected_methods
    }


def run_cell(
    cell: MAMLCell, settings: MAMLSettings, log: Log, train_hook: TrainHook | None = None
) -> dict[str, Any]:
    """Every selected method on one cell; saves ``cells/<task>.json`` and ``.npz``."""
    spec = settings.spec
    json_path, npz_path = _cell_paths(settings, cell)
    methods = settings.selected_methods
    budget = settings.budget or spec.budget
    configs = _configs_record(settings)
    if json_path.exists() and npz_path.exists():
        record = read_json(json_path)
        if (
            record.get("trials") == settings.num_tasks
            and record.get("seed") == settings.seed
            and record.get("budget") == budget
            and tuple(record.get("methods", {})) == methods
            and record.get("configs") == configs
        ):
            log(f"{cell.task}: done earlier, reusing {json_path}")
            return record
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    values: dict[str, np.ndarray] = {}
    for method in methods:
        x, info = run_method(cell, method, settings, log, train_hook)
        values[method] = x
        results[method] = {"per_step": per_index_summary(x), **info}
        per = results[method]["per_step"]
        log(
            f"{cell.task}: {spec.labels[method]:17s} "
            + ", ".join(f"{k} steps {per[k]['mean']:.3f} ± {per[k]['se']:.3f}" for k in (0, 1))
            + f", {spec.test_steps} steps {per[-1]['mean']:.3f}"
            + f"  (published {cell.paper.get(method, {})})"
        )
    record = {
        "task": cell.task,
        "label": cell.label,
        "trials": settings.num_tasks,
        "seed": settings.seed,
        "budget": budget,
        "configs": configs,
        "seconds": time.perf_counter() - t0,
        "commit": git_commit(),
        "paper": {m: {str(k): v for k, v in p.items()} for m, p in cell.paper.items()},
        "targets": {str(k): v for k, v in cell.targets.items()},
        "methods": results,
    }
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **{m.replace("-", "_"): x for m, x in values.items()})
    write_json_atomic(json_path, record)
    return record


def _shown_steps(spec: MAMLTable) -> list[int]:
    return sorted({0, 1, 2, spec.test_steps} & set(range(spec.test_steps + 1)))


def write_outputs(
    settings: MAMLSettings, records: list[dict[str, Any]], prov: dict[str, Any]
) -> None:
    """Writes ``table.md``, ``table.json`` and ``figure.png`` from the finished cells."""
    spec = settings.spec
    out = Path(settings.out_dir)
    steps = _shown_steps(spec)
    decimals = 3 if spec.metric == "mse" else 2
    lines = [f"### {spec.title}", ""]
    for r in records:
        lines += [
            f"**{r['label']}** ({r['trials']} held-out tasks)",
            "",
            "| method | " + " | ".join(f"{k} steps" for k in steps) + " | training (s) |",
            "|---" * (len(steps) + 2) + "|",
        ]
        for method in settings.selected_methods:
            res = r["methods"].get(method)
            if res is None:
                continue
            entries = []
            for k in steps:
                row = res["per_step"][k]
                ref = r["paper"].get(method, {}).get(str(k))
                text = (
                    f"{row['mean']:.{decimals}f} ± {row['se']:.{decimals}f}"
                    if np.isfinite(row["mean"])
                    else "diverged (non-finite)"
                )
                entries.append(text + (f" ({ref})" if ref is not None else ""))
            seconds = f"{res['train_seconds']:.0f}" if res.get("run_dir") else "—"
            lines.append(f"| {spec.labels[method]} | " + " | ".join(entries) + f" | {seconds} |")
        lines.append("")
    lines += [spec.note, "", "| setting | MAML target | ours | met |", "|---|---|---|---|"]
    for r in records:
        maml = r["methods"].get("maml")
        for k, target in r["targets"].items():
            if maml is None:
                continue
            ours = maml["per_step"][int(k)]["mean"]
            met = ours >= target if spec.higher_is_better else ours <= target
            bound = "≥" if spec.higher_is_better else "≤"
            lines.append(
                f"| {r['label']}, {k} step(s) | {bound} {target} | {ours:.{decimals}f} | "
                f"{'yes' if met else 'no'} |"
            )
    lines += ["", "Produced by:", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in prov.items()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    write_json_atomic(out / "table.json", {"provenance": prov, "cells": records})
    panels = [
        (r["label"], {spec.labels[m]: res["per_step"] for m, res in r["methods"].items()})
        for r in records
    ]
    results = [res for r in records for res in r["methods"].values()]
    means = np.array([row["mean"] for res in results for row in res["per_step"]])
    starts = np.array([res["per_step"][0]["mean"] for res in results])
    means, starts = means[np.isfinite(means)], starts[np.isfinite(starts)]
    ylim = None
    if means.size and starts.size:  # frame the sensible range; diverging curves leave it
        if spec.metric == "mse":
            ylim = (0.5 * max(means.min(), 1e-6), 3.0 * starts.max())
        else:
            ylim = (1.3 * min(starts.min(), 0.0) - 1.0, max(0.0, means.max()) + 1.0)
    plot_adaptation_panels(
        panels,
        out / "figure.png",
        xs=np.arange(spec.test_steps + 1),
        xlabel="gradient steps at meta-test",
        ylabel="query MSE" if spec.metric == "mse" else "mean episode return",
        title=f"{spec.title} (95% CI)",
        log_y=spec.metric == "mse",
        ylim=ylim,
    )


def reproduce_maml(
    settings: MAMLSettings,
    log: Log = lambda _: None,
    train_hook: TrainHook | None = None,
    command: str = "",
) -> list[dict[str, Any]]:
    """Runs (or resumes) a MAML reproduction and writes its outputs.

    Args:
        settings: What to run.
        log: Receives one line per finished method and per training phase.
        train_hook: Trains a run (default: :func:`quickstudy.runner.train`).
        command: The command line, recorded in the outputs.

    Returns:
        The cell records in the table's order.
    """
    return run_cells(
        settings.out_dir,
        settings.selected,
        lambda cell: run_cell(cell, settings, log, train_hook),
        lambda records, prov: write_outputs(settings, records, prov),
        command,
        log,
    )
