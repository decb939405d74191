"""Reproduce MAML's sinusoid regression: MAML, its variants and baselines on the same test tasks.

For every shot count ``K``: meta-train each method (or reuse / resume a cached run), then record
the query MSE of the same 600 held-out tasks after 0..10 gradient steps. Writes ``table.md`` (ours
beside the published numbers), ``table.json`` and ``figure.png`` (one adaptation-curve panel per
``K``); finished cells are saved under ``<out>/cells/`` so an interrupted reproduction resumes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from quickstudy import runner
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.evaluation.plots import plot_adaptation_panels
from quickstudy.evaluation.stats import per_index_summary
from quickstudy.presets.maml_tables import (
    LABELS,
    SINUSOID_CELLS,
    SINUSOID_ITERATIONS,
    SINUSOID_TEST_STEPS,
    SINUSOID_TEST_TASKS,
    SINUSOID_VARIANTS,
    SinusoidCell,
    sinusoid_config,
)
from quickstudy.reproduce import Log, TrainHook, git_commit, run_cells, train_or_reuse
from quickstudy.tracking import read_json, write_json_atomic

TABLES = ("maml-sinusoid",)


@dataclasses.dataclass(frozen=True)
class SinusoidSettings:
    """What to reproduce and how.

    Attributes:
        out_dir: Output directory (cells, table, figure).
        cells: Task names of the cells to run (empty: all).
        budget: Meta-iterations per method (``None``: the paper's 70k).
        trials: Held-out tasks (the paper: 600).
        seed: Seed of training and of the meta-test.
        cache_dir: Where runs are kept and reused (default: ``<out_dir>/runs``).
        methods: Methods to run (empty: all of ``SINUSOID_VARIANTS``).
    """

    out_dir: Path
    cells: tuple[str, ...] = ()
    budget: int | None = None
    trials: int = SINUSOID_TEST_TASKS
    seed: int = 0
    cache_dir: Path | None = None
    methods: tuple[str, ...] = ()

    def __post_init__(self):
        valid = [cell.task for cell in SINUSOID_CELLS]
        unknown = [c for c in self.cells if c not in valid]
        if unknown:
            raise UnknownNameError(
                f"unknown cell(s) {', '.join(unknown)} for maml-sinusoid. Valid cells: "
                f"{', '.join(valid)}"
            )
        unknown = [m for m in self.methods if m not in SINUSOID_VARIANTS]
        if unknown:
            raise UnknownNameError(
                f"unknown method(s) {', '.join(unknown)}. Valid methods: "
                f"{', '.join(SINUSOID_VARIANTS)}"
            )
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget <= 0):
            raise ConfigError(f"budget must be a positive integer, got {self.budget!r}")
        if not isinstance(self.trials, int) or self.trials < 2:
            raise ConfigError(f"trials must be an integer >= 2, got {self.trials!r}")

    @property
    def selected(self) -> tuple[SinusoidCell, ...]:
        """The cells to run, in order of shots."""
        return tuple(c for c in SINUSOID_CELLS if not self.cells or c.task in self.cells)

    @property
    def selected_methods(self) -> tuple[str, ...]:
        """The methods to run."""
        return tuple(m for m in SINUSOID_VARIANTS if not self.methods or m in self.methods)

    @property
    def iterations(self) -> int:
        """Meta-iterations per method."""
        return self.budget or SINUSOID_ITERATIONS

    @property
    def run_cache(self) -> Path:
        """Directory of the training runs."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / "runs"


def run_method(
    cell: SinusoidCell,
    method: str,
    settings: SinusoidSettings,
    log: Log,
    train_hook: TrainHook | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Trains one method on one cell (or reuses its cached run) and meta-tests it.

    Returns:
        Query MSE per held-out task after 0..10 steps ``[trials, 11]`` and a record.
    """
    config = sinusoid_config(method, settings.iterations)
    name = f"{method}-{cell.task}-iters{settings.iterations}-seed{settings.seed}"
    path = settings.run_cache / name
    run_settings = runner.RunSettings(
        seed=settings.seed, chunk_updates=1000, checkpoint_every=10, eval_tasks=settings.trials
    )
    run, params, train_seconds = train_or_reuse(
        "maml", cell.task, config, path, run_settings, log, train_hook
    )
    runner.evaluate(
        run, params, episodes=SINUSOID_TEST_STEPS, num_tasks=settings.trials, seed=settings.seed
    )
    losses = np.load(path / "eval" / "results.npz")["losses"].astype(np.float64)
    return losses, {"run_dir": str(path), "train_seconds": train_seconds}


def _cell_paths(settings: SinusoidSettings, cell: SinusoidCell) -> tuple[Path, Path]:
    base = Path(settings.out_dir) / "cells" / cell.task
    return base.with_suffix(".json"), base.with_suffix(".npz")


def run_cell(
    cell: SinusoidCell, settings: SinusoidSettings, log: Log, train_hook: TrainHook | None = None
) -> dict[str, Any]:
    """Every selected method on one cell; saves ``cells/<task>.json`` and ``.npz``."""
    json_path, npz_path = _cell_paths(settings, cell)
    methods = settings.selected_methods
    if json_path.exists() and npz_path.exists():
        record = read_json(json_path)
        if (
            record.get("trials") == settings.trials
            and record.get("seed") == settings.seed
            and record.get("iterations") == settings.iterations
            and tuple(record.get("methods", {})) == methods
        ):
            log(f"{cell.task}: done earlier, reusing {json_path}")
            return record
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    losses: dict[str, np.ndarray] = {}
    for method in methods:
        x, info = run_method(cell, method, settings, log, train_hook)
        losses[method] = x
        results[method] = {"per_step": per_index_summary(x), **info}
        one = results[method]["per_step"][1]
        log(
            f"{cell.task}: {LABELS[method]:17s} MSE after 1 step {one['mean']:.3f} ± "
            f"{one['se']:.3f}, after {SINUSOID_TEST_STEPS} "
            f"{results[method]['per_step'][-1]['mean']:.3f}  "
            f"(published {cell.paper_one_step.get(method, '—')})"
        )
    record = {
        "task": cell.task,
        "shots": cell.shots,
        "trials": settings.trials,
        "seed": settings.seed,
        "iterations": settings.iterations,
        "seconds": time.perf_counter() - t0,
        "commit": git_commit(),
        "paper_one_step": cell.paper_one_step,
        "target_one_step": cell.target_one_step,
        "methods": results,
    }
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **{m.replace("-", "_"): x for m, x in losses.items()})
    write_json_atomic(json_path, record)
    return record


def _entry(row: dict[str, Any]) -> str:
    return f"{row['mean']:.3f} ± {row['se']:.3f}"


def write_outputs(
    settings: SinusoidSettings, records: list[dict[str, Any]], prov: dict[str, Any]
) -> None:
    """Writes ``table.md``, ``table.json`` and ``figure.png`` from the finished cells."""
    out = Path(settings.out_dir)
    steps = SINUSOID_TEST_STEPS
    lines = [
        "### MAML sinusoid regression: query MSE on held-out tasks",
        "",
        "| method | "
        + " | ".join(f"{r['shots']}-shot: 0 / 1 / {steps} steps" for r in records)
        + " |",
        "|---" * (len(records) + 1) + "|",
    ]
    for method in settings.selected_methods:
        entries = []
        for r in records:
            res = r["methods"].get(method)
            if res is None:
                entries.append("—")
                continue
            per = res["per_step"]
            ref = r["paper_one_step"].get(method)
            one = _entry(per[1]) + (f" ({ref:.2f})" if ref is not None else "")
            entries.append(f"{per[0]['mean']:.3f} / {one} / {_entry(per[steps])}")
        lines.append(f"| {LABELS[method]} | " + " | ".join(entries) + " |")
    lines += [
        "",
        f"Entries: mean query MSE over {settings.trials} held-out tasks (100 query points each) "
        f"after 0, 1 and {steps} gradient steps (α = 0.01) on the K support points, ± s.e.; "
        "in brackets the published 1-step value (Meta-SGD paper, Table 1). For reference: "
        "predicting 0 gives ≈ 4.25, the best task-agnostic predictor ≈ 3.0; learn2learn's MAML "
        "on this kind of machine gave 10-shot 1-step 0.44 (10k) and 0.36 (20k meta-iterations).",
        "",
        "| shots | target (MAML, 1 step) | ours | met | training seconds per method |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        maml = r["methods"].get("maml")
        target = r["target_one_step"]
        ours = maml["per_step"][1]["mean"] if maml else None
        met = "—" if target is None or ours is None else ("yes" if ours <= target else "no")
        seconds = ", ".join(
            f"{LABELS[m]} {res['train_seconds']:.0f}" for m, res in r["methods"].items()
        )
        lines.append(
            f"| {r['shots']} | {'—' if target is None else f'≤ {target}'} | "
            f"{'—' if ours is None else f'{ours:.3f}'} | {met} | {seconds} |"
        )
    lines += ["", "Produced by:", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in prov.items()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    write_json_atomic(out / "table.json", {"provenance": prov, "cells": records})
    panels = [
        (
            f"{r['shots']}-shot",
            {LABELS[m]: res["per_step"] for m, res in r["methods"].items()},
        )
        for r in records
    ]
    plot_adaptation_panels(
        panels,
        out / "figure.png",
        xs=np.arange(steps + 1),
        xlabel="gradient steps at meta-test",
        ylabel="query MSE",
        title="MAML sinusoid regression (held-out tasks, 95% CI)",
        log_y=True,
    )


def reproduce_sinusoid(
    settings: SinusoidSettings,
    log: Log = lambda _: None,
    train_hook: TrainHook | None = None,
    command: str = "",
) -> list[dict[str, Any]]:
    """Runs (or resumes) the sinusoid reproduction and writes its outputs.

    Args:
        settings: What to run.
        log: Receives one line per finished method and per training phase.
        train_hook: Trains a run (default: :func:`quickstudy.runner.train`).
        command: The command line, recorded in the outputs.

    Returns:
        The cell records in order of shots.
    """
    return run_cells(
        settings.out_dir,
        settings.selected,
        lambda cell: run_cell(cell, settings, log, train_hook),
        lambda records, prov: write_outputs(settings, records, prov),
        command,
        log,
    )
