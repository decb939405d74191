"""The reproduction engine: every method of every cell of a table, run once, cached, resumable.

For every cell (setting) of a :class:`~quickstudy.presets.tables.TableSpec`: classical baselines are
tuned on trials drawn from a separate seed and played on the task's fixed held-out tasks; every
trained method is meta-trained (or a finished run is reused from the cache, or an interrupted one
resumed) and meta-tested on the same tasks with the same seed. Cached runs are named by a checksum
of their config, so a changed preset trains a new run beside the old one. Each finished cell is
saved under ``<out>/cells/``; a cell is reused only when its settings and every method's config
still match. The outputs are rewritten after every cell (:mod:`quickstudy.reproduce.render`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import platform
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from quickstudy import runner
from quickstudy import tasks as task_registry
from quickstudy.algorithms import registry
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.evaluation.protocol import load_result
from quickstudy.evaluation.random_play import random_play
from quickstudy.evaluation.stats import per_index_summary, summarize
from quickstudy.evaluation.tables import not_worse_than_best
from quickstudy.presets import (
    maml_tables,
    pearl_tables,
    rl2_tables,
    slopes_tables,
    snail_tables,
)
from quickstudy.presets.tables import Cell, Method, TableSpec
from quickstudy.reproduce import baselines, render
from quickstudy.tracking import latest_checkpoint, read_json, read_metrics, write_json_atomic
from quickstudy.types import MetaTestResult

TABLES: dict[str, TableSpec] = {
    **rl2_tables.TABLES,
    **maml_tables.TABLES,
    **slopes_tables.TABLES,
    **pearl_tables.TABLES,
    **snail_tables.TABLES,
}
"""Every reproducible table by name."""

TUNING_SEED = 1_234_567
"""Seed of the tuning trials (the held-out trials come from each task's own test seed)."""
DEFAULT_TUNE_TRIALS = 500
CURVE_POINTS = 200
"""Learning-curve points kept per trained method in a cell record."""

Log = Callable[[str], None]
TrainHook = Callable[[runner.Run, int], Any]
"""``hook(run, start_update) -> final state``: trains a run (e.g. with a progress bar)."""


@dataclasses.dataclass(frozen=True)
class ReproduceSettings:
    """What to reproduce and how.

    Attributes:
        table: A name of :data:`TABLES`.
        out_dir: Output directory (cells, tables, figures).
        cells: Task names of the cells to run (empty: all, in the table's order).
        budget: Training budget of every trained method (``None``: the table's per cell; 0:
            skip the trained methods).
        trials: Held-out trials or tasks per cell (``None``: the table's).
        tune_trials: Trials per hyperparameter value when tuning baselines (``None``: 500).
        seed: Seed of training, of the baselines' randomness and of the meta-test.
        cache_dir: Where training runs are kept and reused (default: ``<out_dir>/runs``).
        methods: Methods to run (empty: all of the table's).
        seeds: Seeds of every trained method: ``seed``, ``seed + 1``, ... Its entry is then
            the mean over seeds (per held-out task, so comparisons stay paired), and the cell
            record adds each seed's score and a bootstrap CI across seeds.
    """

    table: str
    out_dir: Path
    cells: tuple[str, ...] = ()
    budget: int | None = None
    trials: int | None = None
    tune_trials: int | None = None
    seed: int = 0
    cache_dir: Path | None = None
    methods: tuple[str, ...] = ()
    seeds: int = 1

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
        if self.budget is not None and (
            not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 0
        ):
            raise ConfigError(f"budget must be a non-negative integer, got {self.budget!r}")
        if self.trials is not None and (not isinstance(self.trials, int) or self.trials < 2):
            raise ConfigError(f"trials must be an integer >= 2, got {self.trials!r}")
        if self.tune_trials is not None:
            if not self.spec.tuned:
                raise ConfigError(f"tune_trials: {self.table} tunes no hyperparameters")
            if not isinstance(self.tune_trials, int) or self.tune_trials < 2:
                raise ConfigError(f"tune_trials must be an integer >= 2, got {self.tune_trials!r}")
        if not isinstance(self.seeds, int) or not 1 <= self.seeds <= 1024:
            raise ConfigError(f"seeds must be an integer in [1, 1024], got {self.seeds!r}")
        if not self.selected_methods:
            raise ConfigError(f"budget 0 leaves no method of {self.table} to run")

    @property
    def spec(self) -> TableSpec:
        """The table being reproduced."""
        return TABLES[self.table]

    @property
    def selected(self) -> tuple[Cell, ...]:
        """The cells to run, in the table's order."""
        return tuple(c for c in self.spec.cells if not self.cells or c.task in self.cells)

    @property
    def selected_methods(self) -> tuple[str, ...]:
        """The methods to run, in the table's order (trained ones skipped with budget 0)."""
        return tuple(
            name
            for name, m in self.spec.methods.items()
            if (not self.methods or name in self.methods) and not (m.trains and self.budget == 0)
        )

    @property
    def shown_methods(self) -> tuple[str, ...]:
        """The table's columns: the chosen methods, or all (a skipped one shows "—")."""
        return self.methods or tuple(self.spec.methods)

    @property
    def num_tasks(self) -> int:
        """Held-out tasks per cell."""
        return self.trials or self.spec.test_tasks

    @property
    def num_tune_trials(self) -> int:
        """Trials per hyperparameter value when tuning."""
        return self.tune_trials or DEFAULT_TUNE_TRIALS

    @property
    def run_cache(self) -> Path:
        """Directory of the training runs."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / "runs"

    def budget_of(self, cell: Cell, method: str | None = None) -> int:
        """Training budget of ``cell``, or of one method on it (0: trained methods skipped).

        ``--budget`` overrides everything; else the cell's budget for the method, the
        method's own, the cell's, the table's.
        """
        if self.budget is not None:
            return self.budget
        if method is not None and method in cell.budgets:
            return cell.budgets[method]
        own = self.spec.methods[method].budget if method is not None else None
        if own is not None:
            return own
        return cell.budget if cell.budget is not None else self.spec.budget


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _grid(method: Method) -> list[dict[str, Any]]:
    if not method.tuning:
        return [{}]
    names = list(method.tuning)
    values = itertools.product(*method.tuning.values())
    return [dict(zip(names, v, strict=True)) for v in values]


def as_json(config: Any) -> dict[str, Any]:
    """A config dataclass as ``config.json`` records it (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_run_dir(cache: Path, stem: str, config: Any, algo: str | None = None) -> Path:
    """The cached run ``<cache>/<stem>-<checksum of config>``, or an older run of this config.

    The checksum (CRC-32 of the config's fields as sorted JSON) makes a changed preset train a
    new run next to the old one instead of colliding with it. A field added to the config
    class changes every checksum without changing what the old configs mean, so, given
    ``algo``, a run ``<stem>-*`` whose recorded config reads back (new fields at their
    defaults) equal to ``config`` is found and reused when the checksum's directory is absent.
    """
    digest = zlib.crc32(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    path = Path(cache) / f"{stem}-{digest:08x}"
    if path.exists() or algo is None or not Path(cache).is_dir():
        return path
    for other in sorted(Path(cache).glob(f"{stem}-????????")):
        record = other / "config.json"
        if record.exists() and same_config(algo, read_json(record).get("config"), config):
            return other
    return path


def same_config(algo: str, recorded: Any, config: Any) -> bool:
    """Whether a config recorded by ``as_json`` (perhaps by an older version) means ``config``.

    The record is read as ``config.json`` is (fields it lacks take their defaults), so adding a
    field leaves earlier runs and cells valid; an unreadable record is a different config.
    """
    if recorded is None or config is None:
        return recorded is None and config is None
    try:
        return registry.get(algo).config_from_record(recorded) == config
    except (ConfigError, TypeError, ValueError):
        return False


def method_config(spec: TableSpec, cell: Cell, name: str, budget: int) -> Any:
    """The resolved config of an algorithm method on ``cell`` (``None`` for a baseline)."""
    method = spec.methods[name]
    if method.algo is None:
        return None
    overrides = {**spec.base, **method.overrides, **cell.overrides.get(name, {})}
    if method.trains:
        overrides["total_steps"] = budget
    preset = cell.preset.get(name, method.preset)
    return registry.get(method.algo).config(cell.trains_on(method), preset, overrides)


def configs_record(settings: ReproduceSettings, cell: Cell) -> dict[str, Any]:
    """Each selected method's config as a cell file records it (``None``: a baseline).

    Only the methods the cell runs: another method's defaults changing leaves the cell valid.
    """
    out = {}
    for name in settings.selected_methods:
        if not cell.runs(name):
            continue
        config = method_config(settings.spec, cell, name, settings.budget_of(cell, name))
        out[name] = None if config is None else as_json(config)
    return out


def run_baseline(
    settings: ReproduceSettings, cell: Cell, name: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Tunes (if it has a grid) and plays one classical method on one cell.

    Returns:
        Per-trial, per-episode rewards on the held-out trials ``[trials, K]`` and a record of the
        tuning (chosen hyperparameters, score per grid point, seconds).
    """
    method = settings.spec.methods[name]
    dist = task_registry.make(cell.task)
    t0 = time.perf_counter()
    grid = _grid(method)
    tuning: dict[str, float] = {}
    best = grid[0]
    if len(grid) > 1:
        tune_tasks = dist.sampler(jax.random.key(TUNING_SEED), settings.num_tune_trials)
        scores = []
        for hyper in grid:
            rng = _rng(settings.seed, "tune", cell.task, name, repr(sorted(hyper.items())))
            score = float(baselines.play(dist, name, hyper, tune_tasks, rng).sum(1).mean())
            tuning[", ".join(f"{k}={v}" for k, v in hyper.items())] = score
            scores.append(score)
        best = grid[int(np.argmax(scores))]
    test_tasks = dist.test_tasks(settings.num_tasks)
    rng = _rng(settings.seed, "test", cell.task, name)
    if settings.spec.measure != "values":  # a meta-test record: only the random player has one
        if name != "random":
            raise ValueError(f"{name}: a table of {settings.spec.measure!r} has no such baseline")
        result = random_play(dist, settings.num_tasks, seed=settings.seed)
        record = {"hyper": best, "tuning": tuning, "seconds": time.perf_counter() - t0}
        return _measure(settings.spec, result), record
    values = baselines.play(dist, name, best, test_tasks, rng)
    record = {"hyper": best, "tuning": tuning, "seconds": time.perf_counter() - t0}
    return np.asarray(values, np.float64), record


def train_or_reuse(
    algo_name: str,
    task: str,
    config: Any,
    path: Path,
    run_settings: runner.RunSettings,
    log: Log,
    train_hook: TrainHook | None = None,
    wait: bool = True,
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
        wait: Wait while another process trains the run (else raise :class:`RunBusyError`).

    Several processes may ask for the same run (cells of a reproduction that share a training
    run, each in its own worker): a lock file beside the run makes the later ones wait and reuse
    it.

    Returns:
        The run, the final parameters (``None`` when a finished run was reused: they are its
        latest checkpoint's) and the training wall-clock accumulated over all invocations.

    Raises:
        ConfigError: ``path`` holds a run with another configuration.
        RunBusyError: ``wait`` is false and another process holds the run.
    """
    path = Path(path)
    with run_lock(path, wait):
        return _train_or_reuse(algo_name, task, config, path, run_settings, log, train_hook)


class RunBusyError(Exception):
    """Another process is training this cached run."""


@contextlib.contextmanager
def run_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Holds ``<path>.lock`` exclusively (``wait=False``: :class:`RunBusyError` if taken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RunBusyError(path) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _train_or_reuse(algo_name, task, config, path, run_settings, log, train_hook):
    if (path / "config.json").exists():
        recorded = read_json(path / "config.json").get("config", {})
        if not same_config(algo_name, recorded, config):
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
    if OPEN_SEGMENT in timing:
        timing = close_killed_segment(timing, ckpt)
        write_json_atomic(timing_path, timing)
    _, done = runner.restore_latest(run) if ckpt is not None else (None, 0)
    if done >= run.algo.num_updates:
        log(f"{algo_name} on {task}: reusing the finished run {path}")
        return run, None, timing["train_seconds"]
    log(f"{algo_name} on {task}: training {run.total_steps:,} {run.algo.step_unit} in {path}")
    write_json_atomic(timing_path, {**timing, OPEN_SEGMENT: time.time()})
    t0 = time.perf_counter()
    try:
        state = train_hook(run, done) if train_hook is not None else runner.train(run)
    finally:
        timing["train_seconds"] += time.perf_counter() - t0
        write_json_atomic(timing_path, timing)
    return run, state.params, timing["train_seconds"]


OPEN_SEGMENT = "segment_started"
"""Key of a run's ``timing.json`` while a process trains it, and of a reproduction's
``elapsed.json`` while one runs: the Unix time that process's work began."""


def close_killed_segment(
    timing: dict[str, Any], kept: Path | None, key: str = "train_seconds"
) -> dict[str, Any]:
    """``timing`` with the time of a killed process added, as far as its work was kept.

    A process that trains a cached run (or runs a reproduction) records when it started
    (:data:`OPEN_SEGMENT`) and adds its wall-clock when it stops. A process killed outright
    (SIGKILL, a lost machine) never adds it; the next one finds the open segment and counts the
    time from its start to the last file it kept (the run's latest checkpoint). Work after that
    is redone and counted then.

    Args:
        timing: The ``timing.json`` or ``elapsed.json`` record with an open segment.
        kept: The last file the killed process wrote (e.g. the latest checkpoint), or ``None``.
        key: The record's field of seconds.

    Returns:
        The record with the segment closed.
    """
    timing = dict(timing)
    started = float(timing.pop(OPEN_SEGMENT))
    if kept is not None:
        timing[key] += max(0.0, kept.stat().st_mtime - started)
    return timing


def learning_curve(run: runner.Run, point: int = -1) -> dict[str, Any]:
    """The run's learning curve: meta-tests along training, else its training metric.

    A run trained with ``eval_every`` has meta-tests in ``curve.jsonl``: their mean at
    ``point``. Otherwise the training metric, binned into at most 200 means.
    """
    tested = runner.read_curve(run.path)
    if tested:
        return {
            "metric": f"meta-test {tested[0]['metric']}",
            "point": point,
            "unit": run.algo.step_unit,
            "meta_test": True,
            "steps": [int(r["step"]) for r in tested],
            "values": [float(r["mean"][point]) for r in tested],
            "se": [float(r["se"][point]) for r in tested],
        }
    key, label = run.progress_metric
    rows = [r for r in read_metrics(run.path / "metrics.jsonl") if key in r]
    bins = np.array_split(np.arange(len(rows)), min(len(rows), CURVE_POINTS)) if rows else []
    return {
        "metric": label,
        "point": run.algo.progress_point,
        "unit": run.algo.step_unit,
        "steps": [int(rows[b[-1]]["step"]) for b in bins],
        "values": [float(np.mean([rows[i][key] for i in b])) for b in bins],
    }


def run_algorithm(
    settings: ReproduceSettings,
    cell: Cell,
    name: str,
    log: Log,
    train_hook: TrainHook | None,
    wait: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Meta-trains one algorithm method on one cell (or reuses its run) and meta-tests it.

    ``wait=False`` raises :class:`RunBusyError` where another process is training the run.

    Returns:
        The metric per held-out task and point ``[tasks, points]`` and a record (run directory,
        budget, training seconds, learning curve; nothing for an untrained method).
    """
    spec = settings.spec
    method = spec.methods[name]
    budget = settings.budget_of(cell, name)
    config = method_config(spec, cell, name, budget)
    train_task = cell.trains_on(method)
    test_task = None if train_task == cell.task else cell.task
    points = _test_points(spec, method)
    if not method.trained:
        algo = registry.build(method.algo, train_task, config)
        params = jax.jit(algo.init)(jax.random.key(settings.seed)).params
        result = runner.meta_test(
            algo, params, points, settings.num_tasks, settings.seed, test_task=test_task
        )
        return _measure(spec, result), {"train_seconds": 0.0}
    path, run_settings = _run_of(settings, cell, name, config)
    run, params, train_seconds = train_or_reuse(
        method.algo, train_task, config, path, run_settings, log, train_hook, wait
    )
    out = path / ("eval" if test_task is None else f"eval-{test_task}")
    summary = runner.evaluate(
        run,
        params,
        points,
        settings.num_tasks,
        settings.seed,
        out=out,
        test_task=test_task,
        reference=False,
    )
    values = _measure(spec, load_result(out, summary))
    record = {
        "run_dir": str(path),
        "train_task": train_task,
        "steps": run.total_steps,
        "train_seconds": train_seconds,
        "per_index_last": summary["per_index"][-1]["mean"],
        "curve": learning_curve(run, -1 if method.point is None else method.point),
    }
    return values, record


def _test_points(spec: TableSpec, method: Method) -> int:
    """The adaptation points a method is meta-tested at (0: as it trained)."""
    return method.points if method.points is not None else spec.test_points or 0


def _run_of(
    settings: ReproduceSettings, cell: Cell, name: str, config: Any
) -> tuple[Path, runner.RunSettings]:
    """The cached run directory of a trained method on a cell, and its run settings."""
    spec = settings.spec
    method = spec.methods[name]
    train_task = cell.trains_on(method)
    stem = f"{name}-{train_task}-steps{settings.budget_of(cell, name)}-seed{settings.seed}"
    path = config_run_dir(settings.run_cache, stem, config, method.algo)
    spec_algo = registry.get(method.algo)
    eval_every = 0
    if spec.curve_points:  # meta-tests along training, evenly spaced in updates
        num_updates = registry.build(method.algo, train_task, config).num_updates
        eval_every = max(1, num_updates // spec.curve_points)
    run_settings = runner.RunSettings(
        seed=settings.seed,
        chunk_updates=spec_algo.chunk_updates,
        checkpoint_every=spec_algo.checkpoint_every,
        eval_tasks=settings.num_tasks,
        eval_episodes=_test_points(spec, method),
        eval_every=eval_every,
    )
    return path, run_settings


def train_runs(
    settings: ReproduceSettings, log: Log = lambda _: None, train_hook: TrainHook | None = None
) -> list[Path]:
    """Trains (or finishes) the runs of the selected cells' trained methods, without meta-tests.

    A parallel multi-seed reproduction runs this once per seed, each in its own worker
    (``quickstudy reproduce ... --seed S --seeds 1 --train-only``); the cells then reuse the
    finished runs of every seed.

    Returns:
        The run directories, in the order trained.
    """
    spec = settings.spec
    paths = []
    for cell in settings.selected:
        for name in settings.selected_methods:
            method = spec.methods[name]
            if not method.trains or not cell.runs(name):
                continue
            config = method_config(spec, cell, name, settings.budget_of(cell, name))
            path, run_settings = _run_of(settings, cell, name, config)
            train_or_reuse(
                method.algo, cell.trains_on(method), config, path, run_settings, log, train_hook
            )
            paths.append(path)
    return paths


def _measure(spec: TableSpec, result: MetaTestResult) -> np.ndarray:
    """The array of a meta-test that ``spec`` reports ``[tasks, points]``."""
    array = result.values if spec.measure == "values" else result.extras[spec.measure]
    return np.asarray(array, np.float64)


def _cell_paths(settings: ReproduceSettings, cell: Cell) -> tuple[Path, Path]:
    base = Path(settings.out_dir) / "cells" / cell.task
    return base.with_suffix(".json"), base.with_suffix(".npz")


def _cell_key(settings: ReproduceSettings, cell: Cell) -> dict[str, Any]:
    key = {
        "trials": settings.num_tasks,
        "tune_trials": settings.num_tune_trials if settings.spec.tuned else None,
        "seed": settings.seed,
        "budget": settings.budget_of(cell),
        "configs": configs_record(settings, cell),
    }
    if settings.seeds > 1:
        key["seeds"] = settings.seeds
    return key


def _same_key(spec: TableSpec, record: dict[str, Any], key: dict[str, Any]) -> bool:
    """Whether a saved cell was made with ``key`` (its configs compared by meaning)."""
    if any(record.get(k) != v for k, v in key.items() if k != "configs"):
        return False
    recorded = record.get("configs")
    if not isinstance(recorded, dict) or set(recorded) != set(key["configs"]):
        return False
    for name, current in key["configs"].items():
        algo = spec.methods[name].algo
        config = None if current is None else registry.get(algo).config_from_record(current)
        if not same_config(algo, recorded[name], config):
            return False
    return True


def run_seeds(
    settings: ReproduceSettings,
    cell: Cell,
    name: str,
    log: Log,
    train_hook: TrainHook | None,
    wait: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`run_algorithm` for every seed; the values averaged over seeds per task and point.

    Returns:
        The seed-mean values ``[tasks, points]`` and seed 0's record with ``seeds``: each
        seed's score (its mean over tasks of the table's reported quantity) and their mean with
        a 95 % bootstrap CI across seeds, and each seed's mean over tasks at every point
        (``per_seed_points``, for the figures' bands across seeds); ``run_dirs`` and
        ``seed_curves`` list every seed's run and learning curve.
    """
    from quickstudy.evaluation.aggregate import seed_mean

    per_seed, records = [], []
    for s in range(settings.seed, settings.seed + settings.seeds):
        x, info = run_algorithm(dataclasses.replace(settings, seed=s), cell, name, log,
                                train_hook, wait)  # fmt: skip
        per_seed.append(x)
        records.append(info)
    spec = settings.spec
    point = spec.methods[name].point
    scores = [
        float(x.sum(axis=1).mean()) if spec.view == "score" else
        float(x[:, point if point is not None else x.shape[1] - 1].mean())
        for x in per_seed
    ]  # fmt: skip
    seeds = list(range(settings.seed, settings.seed + settings.seeds))
    info = {
        **records[0],
        "run_dirs": [r.get("run_dir") for r in records],
        "seed_curves": [r["curve"] for r in records],
        "train_seconds": sum(r["train_seconds"] for r in records),
        "seeds": {
            **seed_mean(scores),
            "seeds": seeds,
            "per_seed": scores,
            "per_seed_points": [x.mean(axis=0).tolist() for x in per_seed],
        },
    }
    return np.mean(np.stack(per_seed), axis=0), info


def run_cell(
    settings: ReproduceSettings, cell: Cell, log: Log, train_hook: TrainHook | None = None
) -> dict[str, Any]:
    """Every selected method on one cell; saves ``cells/<task>.json`` and ``.npz``."""
    spec = settings.spec
    json_path, npz_path = _cell_paths(settings, cell)
    key = _cell_key(settings, cell)
    if json_path.exists() and npz_path.exists():
        record = read_json(json_path)
        if _same_key(settings.spec, record, key):
            log(f"{cell.task}: done earlier, reusing {json_path}")
            return record
    t0 = time.perf_counter()
    values: dict[str, np.ndarray] = {}
    results: dict[str, dict[str, Any]] = {}
    # In a parallel reproduction another worker may be training a run this cell shares: the
    # cell then goes on with its other methods and comes back to that one at the end.
    pending = [m for m in settings.selected_methods if cell.runs(m)]
    deferred: list[str] = []
    while pending:
        name = pending.pop(0)
        method = spec.methods[name]
        if method.baseline is not None:
            x, info = run_baseline(settings, cell, name)
        else:
            try:
                # Block only once everything left is waiting for other workers.
                wait = all(m in deferred for m in (name, *pending))
                run = run_seeds if settings.seeds > 1 and method.trains else run_algorithm
                x, info = run(settings, cell, name, log, train_hook, wait=wait)
            except RunBusyError:
                if name not in deferred:
                    log(f"{cell.task}: {name} is being trained by another worker; later")
                    deferred.append(name)
                pending.append(name)
                continue
        values[name] = x
        if spec.view == "score":
            results[name] = {**summarize(x.sum(axis=1)), **info}
        else:
            results[name] = {"per_step": per_index_summary(x), **info}
        if spec.view in ("sweep", "curve"):
            point = method.point if method.point is not None else x.shape[1] - 1
            results[name] = {"point": point, **summarize(x[:, point]), **results[name]}
        log(render.method_line(spec, cell, name, results[name]))
    results = {m: results[m] for m in settings.selected_methods if m in results}
    if spec.view == "score":
        bold = not_worse_than_best({m: x.sum(axis=1) for m, x in values.items()})
        for name in results:
            results[name]["bold"] = name in bold
    record = {
        "task": cell.task,
        "label": cell.label,
        "x": cell.x,
        **key,
        "seconds": time.perf_counter() - t0,
        "commit": git_commit(),
        "paper": render.paper_record(spec, cell),
        "targets": {str(k): v for k, v in cell.targets.items()},
        "methods": results,
    }
    if spec.checks:
        record["checks"] = paired_checks(spec, values, results)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **{m.replace("-", "_"): x for m, x in values.items()})
    write_json_atomic(json_path, record)
    return record


def paired_checks(
    spec: TableSpec, values: dict[str, np.ndarray], results: dict[str, dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """``a - b`` per held-out task at each method's reported point, for ``spec.checks``.

    Every method is tested on the same held-out tasks in the same order, so the difference is
    paired: its standard error is over tasks, not the two methods' errors combined.

    Returns:
        ``"a>b"`` -> summary of the per-task difference (sign: higher is better).
    """
    sign = 1.0 if spec.higher_is_better else -1.0
    out = {}
    for a, b in spec.checks:
        if a in values and b in values:
            diff = values[a][:, results[a]["point"]] - values[b][:, results[b]["point"]]
            out[f"{a}>{b}"] = summarize(sign * diff)
    return out


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


def reproduce(
    settings: ReproduceSettings,
    log: Log = lambda _: None,
    train_hook: TrainHook | None = None,
    command: str = "",
    record_elapsed: bool = True,
) -> list[dict[str, Any]]:
    """Runs (or resumes) a reproduction, rewriting its outputs after every cell.

    The wall-clock accumulates over invocations in ``<out_dir>/elapsed.json``, so a resumed
    reproduction reports its total.

    Args:
        settings: What to run.
        log: Receives one line per finished method and per training phase.
        train_hook: Trains a run (default: :func:`quickstudy.runner.train`).
        command: The command line, recorded in the outputs.
        record_elapsed: Add this call's wall-clock to ``elapsed.json`` (off in a worker of a
            parallel reproduction, whose parent records the whole wall-clock).

    Returns:
        The cell records in the table's order.
    """
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    elapsed_path = out / "elapsed.json"
    saved = read_json(elapsed_path) if elapsed_path.exists() else {"seconds": 0.0}
    if OPEN_SEGMENT in saved:  # a killed reproduction: count its work up to its last write
        last = _last_write([out, settings.run_cache], skip=elapsed_path)
        saved = close_killed_segment(saved, last, key="seconds")
    before = float(saved["seconds"])

    def record(seconds: float, still_running: bool) -> None:
        if record_elapsed:
            segment = {OPEN_SEGMENT: time.time()} if still_running else {}
            write_json_atomic(elapsed_path, {"seconds": seconds, **segment})

    record(before, True)
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    cells = settings.selected
    try:
        for i, cell in enumerate(cells):
            log(f"[{i + 1}/{len(cells)}] {cell.task}")
            records.append(run_cell(settings, cell, log, train_hook))
            seconds = before + time.perf_counter() - t0
            record(seconds, i + 1 < len(cells))
            prov = provenance(command, records, seconds)
            render.write_outputs(settings.spec, settings.shown_methods, records, prov, out)
    finally:
        record(before + time.perf_counter() - t0, False)
    return records


def _last_write(folders: list[Path], skip: Path) -> Path | None:
    """The most recently modified file under ``folders`` other than ``skip``."""
    files = [f for folder in folders if folder.is_dir() for f in folder.rglob("*") if f.is_file()]
    files = [f for f in files if f != skip]
    return max(files, key=lambda f: f.stat().st_mtime, default=None)
