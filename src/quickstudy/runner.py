"""Runs of any registered algorithm on a task: run directories, training, checkpoints, meta-test.

A run directory holds ``config.json`` (complete and resolved), ``metrics.jsonl``/``metrics.csv``,
TensorBoard events, ``checkpoints/`` and ``eval/``. Training advances in chunks of updates: for a
jittable algorithm a chunk is one compiled ``lax.scan``; for a host-stepped one, a Python loop of
updates. Chunk boundaries are fixed multiples of ``chunk_updates`` counted from the start of the
run, so a run resumed from any checkpoint executes exactly the same programs on exactly the same
state as an uninterrupted one and ends with the same parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

import quickstudy
from quickstudy.algorithms import registry
from quickstudy.errors import CheckpointError, ConfigError, QuickstudyError
from quickstudy.evaluation.protocol import write_meta_test
from quickstudy.tracking import (
    MetricsLogger,
    latest_checkpoint,
    load_checkpoint,
    make_run_dir,
    read_json,
    save_checkpoint,
    write_json_atomic,
)
from quickstudy.types import Algorithm, MetaTestResult, check_fields

PyTree = Any


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Settings of a run that are not hyperparameters of the algorithm.

    Attributes:
        seed: Seed of the run's PRNG key.
        chunk_updates: Updates per chunk (progress, logging and checkpoint granularity).
        checkpoint_every: Save a checkpoint every this many chunks (the last is always saved).
        keep_checkpoints: Checkpoints kept on disk.
        eval_tasks: Held-out tasks for the final meta-test (0: the task's default).
        eval_episodes: Points of the final meta-test: episodes per trial, or gradient steps
            (0: the algorithm's default).
    """

    seed: int = 0
    chunk_updates: int = 10
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    eval_tasks: int = 0
    eval_episodes: int = 0

    def __post_init__(self):
        check_fields(
            self,
            positive_int=("chunk_updates", "checkpoint_every", "keep_checkpoints"),
            nonneg_int=("eval_tasks", "eval_episodes", "seed"),
        )


@dataclasses.dataclass
class Run:
    """An opened run directory and the algorithm it trains."""

    path: Path
    algo_name: str
    task_name: str
    settings: RunSettings
    algo: Algorithm

    @property
    def steps_per_update(self) -> int:
        """Budget units per update (environment steps, or 1 for a meta-iteration)."""
        return self.algo.steps_per_update

    @property
    def progress_metric(self) -> tuple[str, str]:
        """The training metric shown while training: (metrics key, label)."""
        return self.algo.progress

    @property
    def total_steps(self) -> int:
        """Budget units of the whole run."""
        return self.algo.num_updates * self.steps_per_update


def create_run(
    algo_name: str,
    task_name: str,
    config: Any,
    settings: RunSettings,
    run_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
) -> Run:
    """Validates everything, then creates the run directory and writes ``config.json``.

    Raises:
        UnknownNameError: Unknown algorithm or task (nothing is created).
        ConfigError: The config does not suit the task, or the directory already holds a run.
    """
    algo = registry.build(algo_name, task_name, config)
    if run_dir is not None and (Path(run_dir) / "config.json").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; use `quickstudy resume {run_dir}` or another --run-dir"
        )
    path = make_run_dir(runs_root, algo_name, task_name, run_dir)
    record = {
        "algo": algo_name,
        "task": task_name,
        "settings": dataclasses.asdict(settings),
        "config": dataclasses.asdict(config),
        "derived": {
            **algo.derived,
            "num_updates": algo.num_updates,
            "steps_per_update": algo.steps_per_update,
        },
        "task_info": algo.tasks.describe(),
        "versions": {"quickstudy": quickstudy.__version__, "jax": jax.__version__},
    }
    write_json_atomic(path / "config.json", record)
    return Run(path, algo_name, task_name, settings, algo)


def open_run(run_dir: str | Path) -> Run:
    """Opens an existing run directory from its ``config.json`` (older layouts are migrated).

    Raises:
        CheckpointError: The directory or its ``config.json`` is missing or unreadable.
        ConfigError: The recorded config is invalid; the message names ``config.json``.
    """
    path = Path(run_dir)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} is not a run directory: {cfg_path} is missing")
    try:
        record = read_json(cfg_path)
        spec = registry.get(record["algo"])
        config = spec.config_from_record(record["config"], f"{cfg_path} config")
        settings = RunSettings(**record["settings"])
        algo = registry.build(record["algo"], record["task"], config)
    except ConfigError as err:
        raise ConfigError(f"{cfg_path}: {err}") from err
    except QuickstudyError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_path} is not a valid run configuration: {err!r}") from err
    return Run(path, record["algo"], record["task"], settings, algo)


def train_program(algo: Algorithm) -> Callable[[jax.Array], tuple[PyTree, dict[str, jax.Array]]]:
    """``train(key) -> (state, metrics)``: init and every update in one ``lax.scan``.

    The whole training of a jittable algorithm as one pure function: ``jax.jit`` it, or
    ``jax.jit(jax.vmap(...))`` it over keys to train several seeds at once.

    Raises:
        ConfigError: The algorithm steps a host environment.
    """
    if not algo.jittable:
        raise ConfigError("a host-stepped algorithm cannot be trained as one program")

    def train(key: jax.Array) -> tuple[PyTree, dict[str, jax.Array]]:
        return _scan_updates(algo, algo.init(key), algo.num_updates)

    return train


def _scan_updates(algo: Algorithm, state: PyTree, length: int) -> tuple[PyTree, PyTree]:
    """``length`` updates in one ``lax.scan``; the metrics get a leading ``[length]`` axis."""
    return jax.lax.scan(lambda s, _: algo.update(s), state, None, length=length)


def _chunk_fn(algo: Algorithm, length: int) -> Callable:
    if algo.jittable:
        return jax.jit(functools.partial(_scan_updates, algo, length=length))

    def looped(state):
        rows = []
        for _ in range(length):
            state, metrics = algo.update(state)
            rows.append(jax.device_get(metrics))
        return state, {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}

    return looped


def load_state(run: Run, ckpt: Path) -> PyTree:
    """The state in checkpoint ``ckpt`` of ``run`` (older layouts are migrated)."""
    migrate_state = registry.get(run.algo_name).migrate_state
    return load_checkpoint(
        ckpt, initial_state(run), lambda saved: migrate_state(saved, run.algo.config)
    )


def initial_state(run: Run) -> PyTree:
    """The state at update 0 (deterministic in the run's seed)."""
    init = jax.jit(run.algo.init) if run.algo.jittable else run.algo.init
    return init(jax.random.key(run.settings.seed))


def restore_latest(run: Run) -> tuple[PyTree, int]:
    """The latest checkpointed state and its update count, or the initial state and 0."""
    ckpt = latest_checkpoint(run.path / "checkpoints")
    if ckpt is None:
        return initial_state(run), 0
    state = load_state(run, ckpt)
    return state, int(state.update)


def train(
    run: Run,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    stop_after_updates: int | None = None,
) -> PyTree:
    """Trains from the latest checkpoint (or from scratch) to the end of the run.

    Args:
        run: The run.
        on_chunk: Called after every chunk with the update count and that chunk's metrics
            (arrays ``[chunk]``), e.g. to drive a progress bar. The progress metric is NaN in
            an update where it is undefined (no trial ended); it is left out of that row.
        stop_after_updates: Stop early once this many updates are done (for tests and for
            splitting work); the run can be resumed later.

    Returns:
        The final training state (also saved as the latest checkpoint).
    """
    state, done = restore_latest(run)
    total = run.algo.num_updates
    end = total if stop_after_updates is None else min(total, stop_after_updates)
    chunk = run.settings.chunk_updates
    progress_key = run.progress_metric[0]
    compiled: dict[int, Callable] = {}
    saved = done
    with MetricsLogger(run.path) as logger:
        logger.truncate_after(done * run.steps_per_update)
        chunks_since_save = 0
        try:
            while done < end:
                length = min(chunk - done % chunk, end - done)
                if length not in compiled:
                    compiled[length] = _chunk_fn(run.algo, length)
                state, metrics = compiled[length](state)
                metrics = jax.device_get(metrics)
                for i in range(length):
                    row = {k: float(v[i]) for k, v in metrics.items()}
                    if math.isnan(row.get(progress_key, 0.0)):
                        del row[progress_key]  # undefined in this update: no value to log
                    row["update"] = done + i + 1
                    logger.log((done + i + 1) * run.steps_per_update, row)
                done += length
                chunks_since_save += 1
                if chunks_since_save >= run.settings.checkpoint_every or done >= end:
                    _save(run, done, state)
                    saved, chunks_since_save = done, 0
                if on_chunk is not None:
                    on_chunk(done, metrics)
        except KeyboardInterrupt:
            if done > saved:  # keep every completed chunk; chunk boundaries stay absolute
                _save(run, done, state)
            raise
    return state


def _save(run: Run, update: int, state: PyTree) -> Path:
    return save_checkpoint(
        run.path / "checkpoints", update, state, keep=run.settings.keep_checkpoints
    )


def meta_test(
    algo: Algorithm, params: PyTree, points: int = 0, num_tasks: int = 0, seed: int = 0
) -> MetaTestResult:
    """Meta-tests ``params`` on the task's held-out tasks (the same protocol for every algorithm).

    Args:
        algo: The algorithm.
        params: Its meta-trained parameters.
        points: Episodes per trial, or gradient steps (0: the algorithm's default).
        num_tasks: Held-out tasks (0: the task's default).
        seed: Seed of the evaluation key.
    """
    points = points or algo.default_points
    tasks = algo.tasks.test_tasks(num_tasks or None)
    fn = jax.jit(algo.meta_test, static_argnums=3) if algo.jittable else algo.meta_test
    return jax.device_get(fn(params, jax.random.key(seed), tasks, points))


def evaluate(
    run: Run,
    params: PyTree | None = None,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Meta-tests a run and writes ``eval/summary.json``, ``results.npz`` and ``adaptation.png``.

    Args:
        run: The run.
        params: Parameters; the latest checkpoint's when ``None``.
        episodes: Points of the meta-test, episodes per trial or gradient steps (0: the run's
            setting, else the algorithm's default).
        num_tasks: Held-out tasks (0: the run's setting, else the task's default).
        seed: Seed of the evaluation key.

    Returns:
        The summary (also written to ``eval/summary.json``).

    Raises:
        CheckpointError: No checkpoint to evaluate, or it is corrupt.
    """
    if params is None:
        ckpt = latest_checkpoint(run.path / "checkpoints")
        if ckpt is None:
            raise CheckpointError(f"{run.path} has no checkpoint to evaluate")
        params = load_state(run, ckpt).params
    result = meta_test(
        run.algo,
        params,
        episodes or run.settings.eval_episodes,
        num_tasks or run.settings.eval_tasks,
        seed,
    )
    variant = run.algo.variant
    label = f"{run.algo_name} ({variant})" if variant else run.algo_name
    title = f"{run.algo_name} on {run.task_name}: meta-test, {np.shape(result.values)[0]} tasks"
    record = {"algo": run.algo_name, "task": run.task_name, "seed": seed}
    if variant is not None:
        record["variant"] = variant
    return write_meta_test(result, run.path / "eval", label, title, **record)
