"""Runs of an algorithm on a task: run directories, chunked training, checkpoints, meta-test.

A run directory holds ``config.json`` (complete and resolved), ``metrics.jsonl``/``metrics.csv``,
TensorBoard events, ``checkpoints/`` and ``eval/``. Training advances in chunks of updates compiled
into one ``lax.scan``; chunk boundaries are fixed multiples of ``chunk_updates`` counted from the
start of the run, so a run resumed from any checkpoint executes exactly the same programs on
exactly the same state as an uninterrupted one and ends with the same parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

import quickstudy
from quickstudy import tasks as task_registry
from quickstudy.algorithms.maml import MAML, MAMLConfig, make_maml
from quickstudy.algorithms.maml_rl import MAMLRL, MAMLRLConfig, make_maml_rl
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.errors import CheckpointError, ConfigError, QuickstudyError, UnknownNameError
from quickstudy.evaluation.plots import plot_adaptation_curve
from quickstudy.evaluation.protocol import summarize_adaptation_steps, summarize_meta_test
from quickstudy.evaluation.stats import per_index_summary
from quickstudy.tracking import (
    MetricsLogger,
    latest_checkpoint,
    load_checkpoint,
    make_run_dir,
    read_json,
    save_checkpoint,
    write_json_atomic,
)

PyTree = Any

ALGORITHMS: dict[str, tuple[type, Callable[..., Any]]] = {
    "rl2": (RL2Config, make_rl2),
    "maml": (MAMLConfig, make_maml),
    "maml-rl": (MAMLRLConfig, make_maml_rl),
}


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Settings of a run that are not hyperparameters of the algorithm.

    Attributes:
        seed: Seed of the run's PRNG key.
        chunk_updates: Updates per compiled chunk (progress, logging and checkpoint granularity).
        checkpoint_every: Save a checkpoint every this many chunks (the last is always saved).
        keep_checkpoints: Checkpoints kept on disk.
        eval_tasks: Held-out tasks for the final meta-test (0: the task's default).
        eval_episodes: Episodes per trial in the final meta-test (0: the training value).
    """

    seed: int = 0
    chunk_updates: int = 10
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    eval_tasks: int = 0
    eval_episodes: int = 0

    def __post_init__(self):
        for name in ("chunk_updates", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("eval_tasks", "eval_episodes", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


@dataclasses.dataclass
class Run:
    """An opened run directory and the algorithm it trains."""

    path: Path
    algo_name: str
    task_name: str
    settings: RunSettings
    algo: Any

    @property
    def steps_per_update(self) -> int:
        """Steps per update: environment steps (RL²) or 1 (a supervised meta-iteration)."""
        return self.algo.steps_per_update

    @property
    def progress_metric(self) -> tuple[str, str]:
        """The training metric shown while training: (metrics key, label)."""
        if isinstance(self.algo, MAML):
            return "query_loss", "query loss"
        if isinstance(self.algo, MAMLRL):
            return "return_post", "post-update return"
        return "trial_return", "trial return"

    @property
    def total_steps(self) -> int:
        """Environment steps of the whole run."""
        return self.algo.num_updates * self.steps_per_update


def build_algorithm(algo_name: str, task_name: str, config: Any) -> Any:
    """Builds the named algorithm on the named task distribution.

    Raises:
        UnknownNameError: Unknown algorithm or task; the message lists the valid names.
    """
    if algo_name not in ALGORITHMS:
        raise UnknownNameError(
            f"unknown algorithm {algo_name!r}. Valid algorithms: {', '.join(ALGORITHMS)}"
        )
    return ALGORITHMS[algo_name][1](config, task_registry.make(task_name))


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
        ConfigError: The directory already holds a run.
    """
    algo = build_algorithm(algo_name, task_name, config)
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
            **{k: getattr(algo, k) for k in ("episodes", "rollout_len") if hasattr(algo, k)},
            "num_updates": algo.num_updates,
            "steps_per_update": algo.steps_per_update,
        },
        "task_info": algo.tasks.describe(),
        "versions": {"quickstudy": quickstudy.__version__, "jax": jax.__version__},
    }
    write_json_atomic(path / "config.json", record)
    return Run(path, algo_name, task_name, settings, algo)


def open_run(run_dir: str | Path) -> Run:
    """Opens an existing run directory from its ``config.json``.

    Raises:
        CheckpointError: The directory or its ``config.json`` is missing or unreadable.
    """
    path = Path(run_dir)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} is not a run directory: {cfg_path} is missing")
    try:
        record = read_json(cfg_path)
        config_cls = ALGORITHMS[record["algo"]][0]
        config = config_cls(**record["config"])
        settings = RunSettings(**record["settings"])
        algo = build_algorithm(record["algo"], record["task"], config)
    except QuickstudyError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_path} is not a valid run configuration: {err}") from err
    return Run(path, record["algo"], record["task"], settings, algo)


def _chunk_fn(algo: Any, length: int) -> Callable:
    def chunk(state):
        return jax.lax.scan(lambda s, _: algo.update(s), state, None, length=length)

    return jax.jit(chunk)


def initial_state(run: Run) -> PyTree:
    """The state at update 0 (deterministic in the run's seed)."""
    return jax.jit(run.algo.init)(jax.random.key(run.settings.seed))


def restore_latest(run: Run) -> tuple[PyTree, int]:
    """The latest checkpointed state and its update count, or the initial state and 0."""
    template = initial_state(run)
    ckpt = latest_checkpoint(run.path / "checkpoints")
    if ckpt is None:
        return template, 0
    state = load_checkpoint(ckpt, template)
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
            an update where no trial ended (truncated rollouts); it is left out of that row.
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
                        del row[progress_key]  # no trial ended in this update: no value to log
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


def evaluate(
    run: Run,
    params: PyTree | None = None,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Meta-tests a run on held-out tasks and writes ``eval/summary.json`` and the curve PNG.

    Args:
        run: The run.
        params: Policy parameters; the latest checkpoint's when ``None``.
        episodes: Episodes per trial (0: the run's setting, else the training value); for
            supervised MAML the number of gradient steps (0: ``config.test_steps``).
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
        params = load_checkpoint(ckpt, initial_state(run)).params
    num_tasks = num_tasks or run.settings.eval_tasks or 0
    if isinstance(run.algo, MAML | MAMLRL):
        return _evaluate_gradient_steps(run, params, episodes, num_tasks, seed)
    episodes = episodes or run.settings.eval_episodes or run.algo.episodes
    algo = run.algo
    if episodes != algo.episodes:
        algo = build_algorithm(
            run.algo_name, run.task_name, dataclasses.replace(algo.config, episodes=episodes)
        )
    test_tasks = algo.tasks.test_tasks(num_tasks or None)
    results = jax.device_get(jax.jit(algo.evaluate)(params, jax.random.key(seed), test_tasks))
    summary = summarize_meta_test(results.returns, results.success, results.lengths)
    summary.update(algo=run.algo_name, task=run.task_name, seed=seed)
    eval_dir = run.path / "eval"
    write_json_atomic(eval_dir / "summary.json", summary)
    np.savez_compressed(
        eval_dir / "results.npz",
        returns=results.returns,
        **({} if results.success is None else {"success": results.success}),
        lengths=results.lengths,
    )
    plot_adaptation_curve(
        {run.algo_name: summary["per_episode"]},
        eval_dir / "adaptation.png",
        xlabel="episode in trial",
        ylabel="return",
        title=f"{run.algo_name} on {run.task_name}: meta-test, {summary['num_tasks']} tasks",
    )
    return summary


def _evaluate_gradient_steps(
    run: Run, params: PyTree, steps: int, num_tasks: int, seed: int
) -> dict[str, Any]:
    """Meta-test of a MAML run: query loss (supervised) or return (RL) after 0..steps steps."""
    algo = run.algo
    steps = steps or run.settings.eval_episodes or algo.config.test_steps
    test_tasks = algo.tasks.test_tasks(num_tasks or None)
    evaluate = jax.jit(algo.evaluate, static_argnums=3)
    result = jax.device_get(evaluate(params, jax.random.key(seed), test_tasks, steps))
    if isinstance(algo, MAML) and algo.tasks.loss == "xent":
        values, metric, key = np.asarray(result.accuracy), "accuracy", "accuracy"
        arrays, ylabel = {"losses": np.asarray(result.losses)}, "query accuracy"
    elif isinstance(algo, MAML):
        values, metric, key, arrays = np.asarray(result.losses), algo.tasks.loss, "losses", {}
        ylabel = f"query {metric}"
    else:
        values, metric, key = np.asarray(result.returns), "return", "returns"
        arrays = {"success": np.asarray(result.success)}
        ylabel = "mean episode return"
    summary = summarize_adaptation_steps(values, metric)
    if "success" in arrays:
        summary["success_per_step"] = per_index_summary(arrays["success"])
    summary.update(algo=run.algo_name, variant=algo.config.variant, task=run.task_name, seed=seed)
    eval_dir = run.path / "eval"
    write_json_atomic(eval_dir / "summary.json", summary)
    np.savez_compressed(eval_dir / "results.npz", **{key: values}, **arrays)
    plot_adaptation_curve(
        {f"{run.algo_name} ({algo.config.variant})": summary["per_step"]},
        eval_dir / "adaptation.png",
        xlabel="gradient steps at meta-test",
        ylabel=ylabel,
        title=f"{run.algo_name} on {run.task_name}: meta-test, {summary['num_tasks']} tasks",
        xs=np.arange(steps + 1),
    )
    return summary
