"""Reproduce the RL² paper's bandit and MDP tables: classical baselines beside trained RL².

For every cell (setting) of a table: tune the baselines' hyperparameters on trials drawn from a
separate seed, evaluate every method on the task's fixed held-out trials, train RL² (or reuse a
finished run from the cache directory, or resume an interrupted one) and meta-test it on the same
trials. Each finished cell is saved under ``<out>/cells/`` so an interrupted reproduction resumes
where it stopped; ``table.md``, ``table.json`` and ``figure.png`` are rewritten after every cell.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import subprocess
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from quickstudy import runner
from quickstudy import tasks as task_registry
from quickstudy.algorithms import bandit_baselines, mdp_baselines
from quickstudy.algorithms.rl2 import RL2Config
from quickstudy.envs.bandit import BernoulliBandit
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.evaluation.stats import summarize
from quickstudy.evaluation.tables import not_worse_than_best, plot_method_bars, render_markdown
from quickstudy.presets.rl2_tables import LABELS, TABLES, Cell, Table
from quickstudy.tracking import latest_checkpoint, read_json, write_json_atomic

TUNING_SEED = 1_234_567
"""Seed of the tuning trials (the held-out trials come from each task's own test seed)."""


@dataclasses.dataclass(frozen=True)
class ReproduceSettings:
    """What to reproduce and how.

    Attributes:
        table: ``"rl2-bandits"`` or ``"rl2-mdps"``.
        out_dir: Output directory (cells, tables, figure).
        cells: Task names of the cells to run (empty: all, in the paper's order).
        budget: RL² environment steps per cell (``None``: the preset's; 0: skip RL²).
        trials: Held-out trials per cell (the paper: 1000).
        tune_trials: Trials per hyperparameter value when tuning baselines.
        seed: Seed of RL² training and of the baselines' randomness.
        cache_dir: Where RL² runs are kept and reused (default: ``<out_dir>/rl2-runs``).
    """

    table: str
    out_dir: Path
    cells: tuple[str, ...] = ()
    budget: int | None = None
    trials: int = 1000
    tune_trials: int = 500
    seed: int = 0
    cache_dir: Path | None = None

    def __post_init__(self):
        if self.table not in TABLES:
            raise UnknownNameError(
                f"unknown table {self.table!r}. Valid tables: {', '.join(TABLES)}"
            )
        valid = [cell.task for cell in TABLES[self.table].cells]
        unknown = [c for c in self.cells if c not in valid]
        if unknown:
            raise UnknownNameError(
                f"unknown cell(s) {', '.join(unknown)} for {self.table}. Valid cells: "
                f"{', '.join(valid)}"
            )
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget < 0):
            raise ConfigError(f"budget must be a non-negative integer, got {self.budget!r}")
        for name in ("trials", "tune_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                raise ConfigError(f"{name} must be an integer >= 2, got {value!r}")

    @property
    def spec(self) -> Table:
        """The table being reproduced."""
        return TABLES[self.table]

    @property
    def selected(self) -> tuple[Cell, ...]:
        """The cells to run, in the paper's order."""
        return tuple(c for c in self.spec.cells if not self.cells or c.task in self.cells)

    @property
    def rl2_cache(self) -> Path:
        """Directory of the RL² runs."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / "rl2-runs"

    def rl2_steps(self, cell: Cell) -> int:
        """RL² budget of ``cell`` (0: skipped)."""
        return cell.rl2_steps if self.budget is None else self.budget


Log = Callable[[str], None]
TrainHook = Callable[[runner.Run, int], Any]
"""``hook(run, start_update) -> final state``: trains a run (e.g. with a progress bar)."""


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _grid(table: Table, method: str) -> list[dict[str, Any]]:
    grid = table.tuning.get(method)
    if not grid:
        return [{}]
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def _play(
    dist: Any, method: str, hyper: dict[str, Any], tasks: Any, rng: np.random.Generator
) -> np.ndarray:
    """Per-trial total reward ``[N]`` of one classical method on ``tasks`` of ``dist``."""
    episodes = dist.episodes
    if isinstance(dist.env, BernoulliBandit):
        choose = bandit_baselines.make_choose(method, episodes, **hyper)
        return bandit_baselines.play(rng, np.asarray(tasks.probs), choose, episodes).rewards.sum(1)
    plan, epsilon, prior = mdp_baselines.make_player(method, **hyper)
    return mdp_baselines.play(rng, tasks, dist.env.horizon, plan, epsilon, episodes, prior).sum(1)


def run_baseline(
    table: Table, cell: Cell, method: str, settings: ReproduceSettings
) -> tuple[np.ndarray, dict[str, Any]]:
    """Tunes (if it has a grid) and evaluates one classical method on one cell.

    Returns:
        Per-trial totals on the held-out trials ``[trials]`` and a record of the tuning.
    """
    dist = task_registry.make(cell.task)
    t0 = time.perf_counter()
    grid = _grid(table, method)
    tuning: dict[str, float] = {}
    best = grid[0]
    if len(grid) > 1:
        tune_tasks = dist.sampler(jax.random.key(TUNING_SEED), settings.tune_trials)
        scores = []
        for hyper in grid:
            rng = _rng(settings.seed, "tune", cell.task, method, repr(sorted(hyper.items())))
            score = float(_play(dist, method, hyper, tune_tasks, rng).mean())
            tuning[", ".join(f"{k}={v}" for k, v in hyper.items())] = score
            scores.append(score)
        best = grid[int(np.argmax(scores))]
    test_tasks = dist.test_tasks(settings.trials)
    totals = _play(dist, method, best, test_tasks, _rng(settings.seed, "test", cell.task, method))
    record = {"hyper": best, "tuning": tuning, "seconds": time.perf_counter() - t0}
    return np.asarray(totals, np.float64), record


def as_json(config: Any) -> dict[str, Any]:
    """A config dataclass as ``config.json`` records it (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _rl2_config(settings: ReproduceSettings, cell: Cell) -> RL2Config:
    return RL2Config(total_steps=settings.rl2_steps(cell), **cell.rl2_overrides)


def _rl2_config_record(settings: ReproduceSettings, cell: Cell) -> dict[str, Any] | None:
    """The cell's RL² configuration as recorded in its cell file (``None``: RL² skipped)."""
    return as_json(_rl2_config(settings, cell)) if settings.rl2_steps(cell) else None


def config_run_dir(cache: Path, stem: str, config: Any) -> Path:
    """The cached run ``<cache>/<stem>-<checksum of config>``.

    The checksum (CRC-32 of the config's fields as sorted JSON) makes a changed preset train a
    new run next to the old one instead of colliding with it.
    """
    digest = zlib.crc32(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    return Path(cache) / f"{stem}-{digest:08x}"


def _rl2_run_dir(settings: ReproduceSettings, cell: Cell, config: RL2Config) -> Path:
    """The cached run of ``cell`` trained with ``config``."""
    stem = f"{cell.task}-steps{config.total_steps}-seed{settings.seed}"
    return config_run_dir(settings.rl2_cache, stem, config)


def train_or_reuse(
    algo_name: str,
    task: str,
    config: Any,
    path: Path,
    run_settings: runner.RunSettings,
    log: Log,
    train_hook: TrainHook | None = None,
) -> tuple[runner.Run, Any, float]:
    """Trains a cached run to its end: creates it, resumes it, or reuses it when finished.

    Args:
        algo_name: Registered algorithm.
        task: Registered task.
        config: The algorithm's configuration; a cached run with another one is refused.
        path: The run directory (the cache entry).
        run_settings: Settings of a newly created run.
        log: Receives one line when training starts or a finished run is reused.
        train_hook: Trains the run (default: :func:`quickstudy.runner.train`).

    Returns:
        The run, the final parameters (``None`` when a finished run was reused: they are its
        latest checkpoint's) and the training wall-clock accumulated over all invocations.

    Raises:
        ConfigError: ``path`` holds a run with another configuration.
    """
    if (path / "config.json").exists():
        recorded = read_json(path / "config.json").get("config", {})
        if recorded != as_json(config):
            raise ConfigError(
                f"{path} holds a {algo_name} run with another configuration; remove it or pass "
                f"another --cache-dir"
            )
        run = runner.open_run(path)
    else:
        run = runner.create_run(algo_name, task, config, run_settings, run_dir=path)
    timing_path = path / "timing.json"
    timing = read_json(timing_path) if timing_path.exists() else {"train_seconds": 0.0}
    ckpt = latest_checkpoint(path / "checkpoints")
    _, done = runner.restore_latest(run) if ckpt is not None else (None, 0)
    if done >= run.algo.num_updates:
        log(f"{algo_name} on {task}: reusing the finished run {path}")
        return run, None, timing["train_seconds"]
    unit = "steps" if run.steps_per_update > 1 else "meta-iterations"
    log(f"{algo_name} on {task}: training {run.total_steps:,} {unit} in {path}")
    t0 = time.perf_counter()
    try:
        state = train_hook(run, done) if train_hook is not None else runner.train(run)
    finally:
        timing["train_seconds"] += time.perf_counter() - t0
        write_json_atomic(timing_path, timing)
    return run, state.params, timing["train_seconds"]


def run_rl2(
    cell: Cell, settings: ReproduceSettings, log: Log, train_hook: TrainHook | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Trains RL² on ``cell`` (reusing or resuming a cached run) and meta-tests it.

    Returns:
        Per-trial totals on the held-out trials and a record (run dir, steps, seconds).
    """
    config = _rl2_config(settings, cell)
    path = _rl2_run_dir(settings, cell, config)
    run_settings = runner.RunSettings(
        seed=settings.seed, chunk_updates=20, eval_tasks=settings.trials
    )
    run, params, train_seconds = train_or_reuse(
        "rl2", cell.task, config, path, run_settings, log, train_hook
    )
    summary = runner.evaluate(run, params, num_tasks=settings.trials, seed=settings.seed)
    returns = np.load(path / "eval" / "results.npz")["returns"]
    record = {
        "run_dir": str(path),
        "steps": run.total_steps,
        "hidden_size": run.algo.config.hidden_size,
        "train_seconds": train_seconds,
        "per_episode_last": summary["per_episode"][-1]["mean"],
    }
    return returns.sum(axis=1).astype(np.float64), record


def _cell_paths(settings: ReproduceSettings, cell: Cell) -> tuple[Path, Path]:
    base = Path(settings.out_dir) / "cells" / cell.task
    return base.with_suffix(".json"), base.with_suffix(".npz")


def _cell_matches(record: dict[str, Any], settings: ReproduceSettings, cell: Cell) -> bool:
    return (
        record.get("trials") == settings.trials
        and record.get("tune_trials") == settings.tune_trials
        and record.get("seed") == settings.seed
        and record.get("rl2_steps") == settings.rl2_steps(cell)
        and record.get("rl2_config") == _rl2_config_record(settings, cell)
    )


def run_cell(
    cell: Cell, settings: ReproduceSettings, log: Log, train_hook: TrainHook | None = None
) -> dict[str, Any]:
    """Evaluates every method on one cell and saves ``cells/<task>.json`` and ``.npz``."""
    json_path, npz_path = _cell_paths(settings, cell)
    if json_path.exists() and npz_path.exists():
        record = read_json(json_path)
        if _cell_matches(record, settings, cell):
            log(f"{cell.task}: done earlier, reusing {json_path}")
            return record
    table = settings.spec
    t0 = time.perf_counter()
    totals: dict[str, np.ndarray] = {}
    methods: dict[str, dict[str, Any]] = {}
    for method in table.methods:
        if method == "rl2":
            if settings.rl2_steps(cell) == 0:
                continue
            x, info = run_rl2(cell, settings, log, train_hook)
        else:
            x, info = run_baseline(table, cell, method, settings)
        totals[method] = x
        methods[method] = {**summarize(x), **info}
        log(
            f"{cell.task}: {LABELS.get(method, method):9s} {methods[method]['mean']:9.2f} ± "
            f"{methods[method]['se']:.2f}  (paper {cell.paper.get(method)})"
            + (f"  {info['hyper']}" if info.get("hyper") else "")
        )
    bold = not_worse_than_best(totals)
    for method in methods:
        methods[method]["bold"] = method in bold
    record = {
        "task": cell.task,
        "label": cell.label,
        "trials": settings.trials,
        "tune_trials": settings.tune_trials,
        "seed": settings.seed,
        "rl2_steps": settings.rl2_steps(cell),
        "rl2_config": _rl2_config_record(settings, cell),
        "seconds": time.perf_counter() - t0,
        "commit": git_commit(),
        "paper": cell.paper,
        "methods": methods,
    }
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **{m.replace("-", "_"): x for m, x in totals.items()})
    write_json_atomic(json_path, record)
    return record


def git_commit() -> str:
    """The short commit hash of the installed source tree (``"unknown"`` outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(command: str, records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Command, commits of the cells, machine, versions, date and total wall-clock."""
    commits = sorted({r.get("commit", "unknown") for r in records})
    return {
        "command": command,
        "commit": ", ".join(commits),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "python": platform.python_version(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_clock_seconds": round(seconds, 1),
    }


def agrees_with_paper(mean: float, se: float, paper: float | None) -> bool:
    """Whether ``mean`` is within ``max(3 se, 3 % of |paper|)`` of the published value."""
    return paper is None or abs(mean - paper) <= max(3.0 * se, 0.03 * abs(paper))


def write_outputs(
    settings: ReproduceSettings, records: list[dict[str, Any]], provenance: dict[str, Any]
) -> None:
    """Writes ``table.md``, ``table.json`` and ``figure.png`` from the finished cells.

    ``provenance`` holds the command, the commits that computed the cells, the machine and the
    wall-clock accumulated over every invocation on this output directory.
    """
    table = settings.spec
    out = Path(settings.out_dir)
    decimals = 2 if table.kind == "bandit" else 1
    md = render_markdown(
        table.title,
        [r["label"] for r in records],
        table.methods,
        LABELS,
        [r["methods"] for r in records],
        [r["paper"] for r in records],
        decimals=decimals,
    )
    lines = [
        md,
        "",
        "| setting | RL² steps | RL² training (s) | baselines (s) |",
        "|---|---|---|---|",
    ]
    for r in records:
        rl2 = r["methods"].get("rl2")
        train_s = f"{rl2['train_seconds']:.0f}" if rl2 else "—"
        base_s = sum(m.get("seconds", 0.0) for k, m in r["methods"].items() if k != "rl2")
        lines.append(f"| {r['label']} | {r['rl2_steps']:,} | {train_s} | {base_s:.0f} |")
    tuned = [
        f"{r['label']}: "
        + ", ".join(
            f"{LABELS.get(k, k)} {', '.join(f'{a}={b}' for a, b in m['hyper'].items())}"
            for k, m in r["methods"].items()
            if m.get("hyper")
        )
        for r in records
    ]
    lines += ["", "Tuned hyperparameters (on separate trials): " + "; ".join(tuned) + "."]
    misses = [
        f"{r['label']} {LABELS.get(m, m)} {res['mean']:.{decimals}f} vs {r['paper'][m]}"
        for r in records
        for m, res in r["methods"].items()
        if m != "rl2" and not agrees_with_paper(res["mean"], res["se"], r["paper"].get(m))
    ]
    lines += [
        "",
        "Baselines further than max(3 s.e., 3 %) from the paper: "
        + ("; ".join(misses) if misses else "none")
        + ".",
    ]
    lines += ["", "Produced by:", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in provenance.items()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    write_json_atomic(out / "table.json", {"provenance": provenance, "cells": records})
    panels = [
        (r["label"], {m: r["methods"][m] for m in table.methods if m in r["methods"]})
        for r in records
    ]
    plot_method_bars(
        panels,
        out / "figure.png",
        LABELS,
        paper=[r["paper"] for r in records],
        title=table.title,
    )


def reproduce(
    settings: ReproduceSettings,
    log: Log = lambda _: None,
    train_hook: TrainHook | None = None,
    command: str = "",
) -> list[dict[str, Any]]:
    """Runs (or resumes) a whole reproduction and writes its outputs.

    Args:
        settings: What to run.
        log: Receives one line per finished method and per RL² phase.
        train_hook: Trains an RL² run (default: :func:`quickstudy.runner.train`).
        command: The command line, recorded in the outputs.

    Returns:
        The cell records in table order.
    """
    return run_cells(
        settings.out_dir,
        settings.selected,
        lambda cell: run_cell(cell, settings, log, train_hook),
        lambda records, prov: write_outputs(settings, records, prov),
        command,
        log,
    )


def run_cells(
    out_dir: Path,
    cells: Sequence[Any],
    run_one: Callable[[Any], dict[str, Any]],
    write: Callable[[list[dict[str, Any]], dict[str, Any]], None],
    command: str,
    log: Log,
) -> list[dict[str, Any]]:
    """Runs cells in order, rewriting the outputs after each one.

    The wall-clock accumulates over invocations in ``<out_dir>/elapsed.json``, so a resumed
    reproduction reports its total.

    Args:
        out_dir: Output directory (created if missing).
        cells: Cells with a ``task`` attribute.
        run_one: Computes (or reloads) one cell's record.
        write: Writes the outputs from the records so far and the provenance.
        command: The command line, recorded in the provenance.
        log: Receives a line per cell.

    Returns:
        The records in order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    elapsed_path = out / "elapsed.json"
    before = read_json(elapsed_path)["seconds"] if elapsed_path.exists() else 0.0
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    for i, cell in enumerate(cells):
        log(f"[{i + 1}/{len(cells)}] {cell.task}")
        records.append(run_one(cell))
        seconds = before + time.perf_counter() - t0
        write_json_atomic(elapsed_path, {"seconds": seconds})
        write(records, provenance(command, records, seconds))
    return records
