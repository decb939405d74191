"""Runs of any registered algorithm on a task: run directories, training, checkpoints, meta-test.

A run directory holds ``config.json`` (complete and resolved), ``metrics.jsonl``/``metrics.csv``,
TensorBoard events, ``checkpoints/`` and ``eval/``. Training advances in chunks of updates: for a
jittable algorithm a chunk is one compiled ``lax.scan``; for a host-stepped one, a Python loop of
updates. Chunk boundaries are fixed multiples of ``chunk_updates`` counted from the start of the
run, so a run resumed from any checkpoint executes exactly the same programs on exactly the same
state as an uninterrupted one and ends with the same parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import logging
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import quickstudy
from quickstudy import tasks as task_registry
from quickstudy.algorithms import registry
from quickstudy.errors import CheckpointError, ConfigError, QuickstudyError, UnknownNameError
from quickstudy.evaluation.protocol import write_meta_test
from quickstudy.tracking import (
    MetricsLogger,
    RunLock,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    make_run_dir,
    read_json,
    read_metrics,
    save_checkpoint,
    write_json_atomic,
)
from quickstudy.tracking.logger import JSONL
from quickstudy.tracking.run_dir import CHECKPOINTS, EVAL, write_bytes_atomic
from quickstudy.types import INT_LIMIT, Algorithm, MetaTestResult, check_fields

CURVE = "curve.jsonl"
"""The learning curve of a run trained with ``eval_every`` (see `read_curve`)."""

PyTree = Any
logger = logging.getLogger(__name__)
MAX_TASKS = 100_000
"""Most held-out tasks one meta-test takes (its trials are held in memory at once)."""
MAX_POINTS = 10_000
"""Most adaptation points (episodes per trial, gradient steps) of one meta-test."""


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
        eval_every: Meta-test every this many updates during training, before the first and
            after the last too (0: never), appending the learning curve (meta-test metric
            against training steps) to ``curve.jsonl``.
        devices: Data-parallel training over this many devices: the algorithm's data axes
            (environments in flight, training tasks) are split over them and XLA partitions
            each update (1: one device).
    """

    seed: int = 0
    chunk_updates: int = 10
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    eval_tasks: int = 0
    eval_episodes: int = 0
    eval_every: int = 0
    devices: int = 1

    def __post_init__(self):
        check_fields(
            self,
            positive_int=("chunk_updates", "checkpoint_every", "keep_checkpoints", "devices"),
            nonneg_int=("eval_tasks", "eval_episodes", "seed", "eval_every"),
        )
        limits = {"eval_tasks": MAX_TASKS, "eval_episodes": MAX_POINTS}
        for name in ("seed", "chunk_updates", "checkpoint_every", "keep_checkpoints", "eval_every"):
            limits[name] = INT_LIMIT
        limits["devices"] = 4096
        for name, limit in limits.items():
            if getattr(self, name) > limit:
                raise ConfigError(f"{name} must be at most {limit}, got {getattr(self, name)}")


@dataclasses.dataclass
class Run:
    """An opened run directory and the algorithm it trains."""

    path: Path
    algo_name: str
    task_name: str
    settings: RunSettings
    algo: Algorithm
    lock: RunLock = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.lock = RunLock(self.path)

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
        return self.steps_at(self.algo.num_updates)

    def steps_at(self, update: int) -> int:
        """Budget units spent when update ``update`` ends (0: after ``init``)."""
        return self.algo.initial_steps + update * self.steps_per_update


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
    check_devices(algo, settings.devices)
    if run_dir is not None and Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise ConfigError(f"--run-dir {run_dir} exists and is not a directory")
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
    except (ConfigError, UnknownNameError) as err:  # incl. a damaged algorithm or task name
        raise ConfigError(f"{cfg_path}: {err}") from err
    except QuickstudyError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_path} is not a valid run configuration: {err!r}") from err
    return Run(path, record["algo"], record["task"], settings, algo)


def check_devices(algo: Algorithm, devices: int) -> None:
    """Checks that ``algo`` can train data-parallel over ``devices`` devices of this machine.

    Raises:
        ConfigError: The algorithm is host-stepped, declares no data axes or places its work
            on devices itself, or fewer devices are visible (the message says how to make
            more on a CPU).
    """
    if devices == 1:
        return
    if algo.own_placement:
        raise ConfigError(
            f"{algo.own_placement}; it does not combine with devices={devices} (data parallel)"
        )
    if not algo.jittable or algo.data_axes is None:
        why = "steps its environments on the host" if not algo.jittable else "has no data axes"
        raise ConfigError(f"devices={devices}: data-parallel training needs a jittable "
                          f"algorithm with data axes, and this one {why}")  # fmt: skip
    have = len(jax.devices())
    if have < devices:
        raise ConfigError(
            f"devices={devices}, but JAX sees {have} device(s) ({jax.devices()[0].platform}); "
            "on a CPU, start with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{devices} to split it into that many"
        )


def place_on_devices(algo: Algorithm, state: PyTree, devices: int) -> PyTree:
    """``state`` placed for data-parallel training: data axes split, the rest replicated.

    The leaves ``algo.data_axes`` marks (scalars aside, e.g. a buffer's write counter) are
    split along their first axis over a 1-D mesh of the first ``devices`` devices (axis name
    ``"data"``); every other leaf is replicated. A jitted update then runs partitioned by XLA
    (GSPMD): each device steps its share of the environments, and reductions over the batch
    (the losses' means, hence the gradients) become all-reduces, so the result equals one
    device's up to the order of float sums. PPO's minibatches split over the devices only
    with ``strided_minibatches``; a uniform shuffle gathers the whole batch onto every device,
    which then all compute every minibatch's whole gradient.

    Raises:
        ConfigError: See :func:`check_devices`; or a data axis does not divide by ``devices``.
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    check_devices(algo, devices)
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    mask = jax.tree.map(lambda m, x: bool(m) and np.ndim(x) > 0, algo.data_axes(state), state)
    pairs = zip(jax.tree.leaves(mask), jax.tree.leaves(state), strict=True)
    sizes = {int(np.shape(x)[0]) for split_it, x in pairs if split_it}
    if any(n % devices for n in sizes):
        raise ConfigError(
            f"devices={devices} must divide the data axes of the training state (sizes "
            f"{', '.join(map(str, sorted(sizes)))}): e.g. num_envs or the training tasks"
        )
    split, whole = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda m, x: jax.device_put(x, split if m else whole), mask, state)


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


def _scan_first_updates(algo: Algorithm, state: PyTree, n: jax.Array, size: int):
    """The first ``n`` of ``size`` scanned updates; the rest leave the state as it is.

    One program serves every chunk length up to ``size`` (a resumed run's first chunk, the
    last chunk of a budget that is not a whole number of chunks), so a run compiles its
    training step once. The metrics of the skipped updates are zeros; the caller drops them.
    """
    shapes = jax.eval_shape(algo.update, state)[1]

    def skip(s):
        return s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

    def body(s, i):
        return jax.lax.cond(i < n, algo.update, skip, s)

    return jax.lax.scan(body, state, jnp.arange(size))


def _chunk_fn(algo: Algorithm, size: int, batched: bool = False) -> Callable:
    """``chunk(state, n, should_stop) -> (state, metrics [m])``: up to ``n <= size`` updates.

    A jittable algorithm runs them in one compiled program for every ``n`` (dispatched
    asynchronously; the metrics have ``size`` rows, of which the first ``n`` are real); a
    host-stepped one loops in Python and stops early, after ``m < n`` updates, once
    ``should_stop()`` is true. With ``batched`` the state holds several seeds' states along a
    leading axis and the program is ``vmap``-ed over it (metrics ``[seeds, size]``).
    """
    if batched and not algo.jittable:
        raise ConfigError("a host-stepped algorithm cannot train seeds in one program")
    if algo.jittable:
        scanned = functools.partial(_scan_first_updates, algo, size=size)
        compiled = jax.jit(jax.vmap(scanned, in_axes=(0, None)) if batched else scanned)
        return lambda state, n, should_stop: compiled(state, jnp.int32(n))

    def looped(state, n, should_stop):
        rows = []
        for _ in range(n):
            state, metrics = algo.update(state)
            rows.append(jax.device_get(metrics))
            if should_stop():
                break
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
    """The latest checkpointed state and its update count, or the initial state and 0.

    Raises:
        CheckpointError: The latest checkpoint cannot be loaded; the message names it and the
            older checkpoints that can, with the command that resumes from one of them.
    """
    ckpts = list_checkpoints(run.path / CHECKPOINTS)
    if not ckpts:
        return initial_state(run), 0
    try:
        state = load_state(run, ckpts[-1][1])
    except CheckpointError as err:
        valid = [update for update, path in ckpts[:-1] if _loads(run, path)]
        raise CheckpointError(f"{err}. {_rewind_hint(run, [*reversed(valid), 0])}") from err
    return state, int(state.update)


def _loads(run: Run, path: Path) -> bool:
    try:
        load_state(run, path)
    except CheckpointError:
        return False
    return True


def _rewind_hint(run: Run, updates: list[int]) -> str:
    shown = ", ".join(str(u) for u in updates[:4])
    return (
        f"Checkpoints to resume from (update): {shown}. Resume from one with "
        f"`quickstudy resume {run.path} --from-update {updates[0]}` (training is "
        "deterministic, so the later updates are recomputed exactly)"
    )


def rewind(run: Run, update: int) -> Path | None:
    """Makes the checkpoint of ``update`` (0: the start) the latest one, losing nothing.

    The newer checkpoints move to ``checkpoints/superseded-<time>/``; the metrics rows after
    ``update`` are dropped when training resumes (they are recomputed, identically).

    Returns:
        The folder the newer checkpoints moved to, or ``None`` if there were none.

    Raises:
        CheckpointError: There is no checkpoint of ``update``.
    """
    ckpts = list_checkpoints(run.path / CHECKPOINTS)
    if update != 0 and update not in {u for u, _ in ckpts}:
        have = ", ".join(str(u) for u, _ in ckpts) or "none"
        raise CheckpointError(
            f"{run.path} has no checkpoint of update {update} (it has: {have}; 0 is the start)"
        )
    newer = [p for u, p in ckpts if u > update]
    newer += [
        p
        for p in (run.path / CHECKPOINTS).glob("ckpt_*.msgpack")
        if p not in newer and int(p.stem.split("_")[1]) > update
    ]  # incomplete ones too
    if not newer:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = run.path / CHECKPOINTS / f"superseded-{stamp}"
    folder.mkdir()
    for path in newer:
        for part in (path, path.with_suffix(".json")):
            if part.exists():
                part.rename(folder / part.name)
    return folder


def check_resumable(run: Run, done: int) -> None:
    """Checks that the run can continue from update ``done`` without losing anything.

    Raises:
        ConfigError: The run's budget (``total_steps`` in ``config.json``) ends before update
            ``done``.
        CheckpointError: ``metrics.jsonl`` lacks rows of updates up to ``done`` (a truncated or
            edited file): training on would leave the gap for good. The message names the
            missing updates and the checkpoint to resume from instead.
    """
    total = run.algo.num_updates
    if done > total:
        raise ConfigError(
            f"{run.path / 'config.json'}: total_steps gives {total} updates, but the latest "
            f"checkpoint is at update {done}; raise total_steps back to at least "
            f"{run.steps_at(done)} or start a new run"
        )
    try:
        rows = read_metrics(run.path / JSONL)
    except QuickstudyError as err:
        raise CheckpointError(f"{err}; fix or delete that line to resume") from err
    per = run.steps_per_update
    try:
        logged = [int(r.get("update", r["step"] // per)) for r in rows]
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{run.path / JSONL}: a row's update is not a number") from err
    have = [u for u in logged if u <= done]
    if have == list(range(1, done + 1)):
        return
    contiguous = 0
    for u in have:
        if u != contiguous + 1:
            break
        contiguous = u
    dupes = len(have) - len(set(have))
    what = f"{dupes} duplicated rows" if dupes else f"no rows for updates {contiguous + 1}.."
    ckpts = [u for u, _ in list_checkpoints(run.path / CHECKPOINTS) if u <= contiguous]
    raise CheckpointError(
        f"{run.path / JSONL} is inconsistent with the checkpoint of update {done}: {what} "
        f"(complete up to update {contiguous}). {_rewind_hint(run, [*reversed(ckpts), 0])}"
    )


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM; the latest checkpoint matches the logged rows.

    Attributes:
        signum: The signal received.
        update: The update count of the latest checkpoint.
    """

    def __init__(self, signum: int, update: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at update {update}")
        self.signum, self.update = signum, update


class DivergedError(QuickstudyError):
    """Training produced non-finite losses, gradients or parameters and was stopped."""


_abandoned: list[threading.Thread] = []


def abandoned_work() -> bool:
    """Whether an interrupted chunk is still computing in the background.

    A command-line program that has written everything may then end with ``os._exit`` rather
    than wait for it at interpreter exit.
    """
    return any(worker.is_alive() for worker in _abandoned)


class _Signals:
    """SIGINT/SIGTERM set a flag (the first) or raise ``KeyboardInterrupt`` (a second one).

    Installed only in the main thread; elsewhere it never fires and the default handling
    stays.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # a second signal: stop waiting
        self.received = signum

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _run_chunk(fn: Callable[[], Any], signals: _Signals, abandon: bool) -> Any | None:
    """Runs ``fn`` (compile, dispatch and compute a chunk) in a worker thread.

    The main thread waits on an event, so a signal handler runs at once. On a signal the
    chunk is abandoned (``None`` is returned while the worker finishes in the background)
    when ``abandon``; otherwise (a host loop, which stops after its current update) it is
    awaited. An abandoned worker is not a daemon: the interpreter waits for it at exit (a
    compiled program cannot be cut short, and killing its thread aborts the process); see
    `abandoned_work`.
    """
    ready, out = threading.Event(), {}

    def work():
        try:
            out["value"] = jax.block_until_ready(fn())
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            out["error"] = err
        finally:
            ready.set()

    worker = threading.Thread(target=work, name="quickstudy-chunk")
    worker.start()
    while not ready.wait(0.2):  # returns early once a signal handler has run
        if abandon and signals.received is not None:
            _abandoned.append(worker)
            return None
    if "error" in out:
        raise out["error"]
    return out["value"]


@jax.jit
def _finite(tree: PyTree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.bool_(True)]))


class _Watcher:
    """Checks each chunk's metrics and parameters; warns once per rule."""

    def __init__(self, algo: Algorithm, on_warning: Callable[[str], None]) -> None:
        self.algo, self.on_warning = algo, on_warning
        self.first: dict[str, float] = {}
        self.warned: set[str] = set()
        self.last_finite: tuple[int, dict[str, float]] | None = None

    def bad_rows(self, first_update: int, rows: list[dict[str, float]]) -> list[tuple[int, list]]:
        """``(update, non-finite keys)`` of the rows with a non-finite value."""
        progress = self.algo.progress[0]
        out = []
        for i, row in enumerate(rows):
            bad = [
                k
                for k, v in row.items()
                if not math.isfinite(v) and not (k == progress and math.isnan(v))
            ]
            if bad:
                out.append((first_update + i, bad))
            elif not out:
                self.last_finite = (first_update + i, row)
        return out

    def warn(self, first_update: int, rows: list[dict[str, float]]) -> None:
        for i, row in enumerate(rows):
            for rule in self.algo.watch:
                value = row.get(rule.metric)
                if value is None or not math.isfinite(value) or rule.metric in self.warned:
                    continue
                first = self.first.setdefault(rule.metric, value)
                limit = min(rule.above, rule.growth * max(abs(first), 1.0))
                if abs(value) > limit:
                    self.warned.add(rule.metric)
                    self.on_warning(
                        f"possible divergence at update {first_update + i}: {rule.metric} = "
                        f"{value:.4g} (warning threshold {limit:.4g}); consider a smaller "
                        "learning rate"
                    )


def _describe_divergence(
    watcher: _Watcher, bad: list[tuple[int, list]], params_finite: bool, last: int, ckpt: str
) -> str:
    parts = []
    if bad:
        update, keys = bad[0]
        parts.append(f"non-finite {', '.join(keys)} at update {update}")
    if not params_finite:
        parts.append(f"non-finite parameters after update {last}")
    text = "training diverged: " + "; ".join(parts) + "."
    if watcher.last_finite is not None:
        update, row = watcher.last_finite
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if math.isfinite(v))
        text += f" Last finite metrics (update {update}): {shown}."
    return text + f" {ckpt}. Lower the learning rate (or step size) and start a new run."


def train(
    run: Run,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    stop_after_updates: int | None = None,
    on_warning: Callable[[str], None] | None = None,
    start: tuple[PyTree, int] | None = None,
) -> PyTree:
    """Trains from the latest checkpoint (or from scratch) to the end of the run.

    Only one process trains a run directory at a time (:class:`~quickstudy.tracking.RunLock`).
    A chunk's state is committed (its rows logged, then the state adopted) only once it is
    fully computed and checked, so every checkpoint's name, content and logged rows agree:

    * SIGINT/SIGTERM abandons the chunk in flight within a fraction of a second, saves the
      last committed state if it is newer than the latest checkpoint and raises
      :class:`Interrupted`; ``resume`` then restores every row.
    * A non-finite metric (other than an undefined progress metric) or parameter stops the run
      at the end of the chunk: the last finite state is saved (so no finite checkpoint is ever
      pruned for a broken one) and :class:`DivergedError` names the update, the quantities and
      the last finite metrics.
    * The algorithm's :class:`~quickstudy.types.Watch` rules warn (once each) when a metric
      explodes.

    Args:
        run: The run.
        on_chunk: Called after every chunk with the update count and that chunk's metrics
            (arrays ``[chunk]``), e.g. to drive a progress bar. The progress metric is NaN in
            an update where it is undefined (no trial ended); it is left out of that row.
        stop_after_updates: Stop early once this many updates are done (for tests and for
            splitting work); the run can be resumed later.
        on_warning: Receives divergence warnings and, when training over several devices, the
            algorithm's ``device_notes`` (default: ``logging.warning``).
        start: ``(state, update)`` to continue from, as `restore_latest` returns it (default:
            restored here).

    Returns:
        The final training state (also saved as the latest checkpoint).

    Raises:
        RunLockedError: Another process is training this run.
        Interrupted: A signal stopped the run.
        DivergedError: Training produced non-finite values.
        CheckpointError, ConfigError: The run cannot be resumed as it is (see
            `check_resumable`).
    """
    with run.lock:
        state, done = start if start is not None else restore_latest(run)
        check_resumable(run, done)
        return _train_locked(run, state, done, on_chunk, stop_after_updates, on_warning)


def train_stacked(
    runs: list[Run],
    state: PyTree,
    done: int,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    stop_after_updates: int | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[PyTree, dict[int, str]]:
    """Trains several seeds of one jittable configuration in one ``vmap``-ed program.

    Every run must hold the same algorithm, task and settings but its seed, and be at update
    ``done``. Each chunk is one compiled program over all seeds; each seed's rows, checkpoints
    and learning curve go to its own run directory exactly as :func:`train` writes them, so
    any seed can be evaluated or resumed alone. A seed that diverges keeps its last finite
    checkpoint, gets a ``diverged.txt`` and drops out; the others train on.

    Args:
        runs: The seeds' runs, each locked by the caller.
        state: Their states stacked along a leading axis, in the order of ``runs``.
        done: Updates already done (the same for every seed).
        on_chunk: As in :func:`train`; the metrics are averaged over the seeds still training.
        stop_after_updates: As in :func:`train`.
        on_warning: As in :func:`train`.

    Returns:
        The final stacked state and ``{index in runs: divergence message}`` of the seeds that
        diverged.

    Raises:
        ConfigError: The algorithm is host-stepped.
        Interrupted: A signal stopped training (every seed still training is saved).
    """
    state, failures = _train_members(
        runs, state, done, on_chunk, stop_after_updates, on_warning, batched=True
    )
    for i, text in failures.items():
        write_bytes_atomic(runs[i].path / DIVERGED, (text + "\n").encode())
    return state, failures


def _train_locked(run, state, done, on_chunk, stop_after_updates, on_warning) -> PyTree:
    state, failures = _train_members(
        [run], state, done, on_chunk, stop_after_updates, on_warning, batched=False
    )
    if failures:
        raise DivergedError(failures[0])
    return state


DIVERGED = "diverged.txt"
"""Written into a seed's run directory when that seed diverged while its group trained on."""


@dataclasses.dataclass
class _Member:
    """One run trained in a chunk loop: its logger, guard, curve and last saved update."""

    run: Run
    log: MetricsLogger
    watcher: _Watcher
    curve: _Curve | None
    saved: int
    failure: str | None = None


def _member_state(state: PyTree, i: int, batched: bool) -> PyTree:
    return jax.tree.map(lambda x: x[i], state) if batched else state


def _train_members(
    runs: list[Run],
    state: PyTree,
    done: int,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None,
    stop_after_updates: int | None,
    on_warning: Callable[[str], None] | None,
    batched: bool,
) -> tuple[PyTree, dict[int, str]]:
    """The chunk loop of `train` for one run, or for seeds stacked along a leading axis.

    With ``batched``, ``state`` holds one state per run (leading axis) and every chunk is one
    ``vmap``-ed program. A member whose metrics or parameters turn non-finite keeps its last
    finite checkpoint and is left out from then on (the others train on); the loop ends when
    every member has failed. Returns the final state and ``{member index: divergence message}``.
    """
    algo, settings = runs[0].algo, runs[0].settings
    end = (
        algo.num_updates
        if stop_after_updates is None
        else min(algo.num_updates, stop_after_updates)
    )
    chunk = settings.chunk_updates
    progress_key = algo.progress[0]
    chunk_fn = _chunk_fn(algo, chunk, batched)
    finite = jax.jit(jax.vmap(_finite)) if batched else _finite
    warn = on_warning or logger.warning
    if settings.devices > 1:
        if batched:
            raise ConfigError("seeds in one vmap-ed program train on one device each")
        state = place_on_devices(algo, state, settings.devices)
        for note in algo.device_notes:
            warn(note)
    every = settings.eval_every
    with contextlib.ExitStack() as stack:
        members = [
            _Member(
                run,
                stack.enter_context(MetricsLogger(run.path)),
                _Watcher(algo, warn),
                _Curve(run) if every else None,
                done,
            )
            for run in runs
        ]
        signals = stack.enter_context(_Signals())
        for i, m in enumerate(members):
            m.log.truncate_after(m.run.steps_at(done))
            if m.curve is not None:
                m.curve.resume(done, _member_state(state, i, batched))
        chunks_since_save = 0

        def save_active() -> None:
            for i, m in enumerate(members):
                if m.failure is None and done > m.saved:
                    _save(m.run, done, _member_state(state, i, batched))
                    m.saved = done

        try:
            while (
                done < end and signals.received is None and any(m.failure is None for m in members)
            ):
                length = min(chunk - done % chunk, end - done)
                if every:  # chunks end where the learning curve has a point
                    length = min(length, every - done % every)
                fn = functools.partial(
                    chunk_fn, state, length, lambda: signals.received is not None
                )
                result = _run_chunk(fn, signals, abandon=algo.jittable)
                if result is None:
                    break  # the chunk in flight is abandoned; the committed state is saved below
                new_state, metrics = result
                metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
                if not batched:
                    metrics = {k: v[None] for k, v in metrics.items()}
                metrics = {k: v[:, :length] for k, v in metrics.items()}
                length = next(iter(metrics.values())).shape[1]  # a host loop may stop early
                params_finite = np.atleast_1d(np.asarray(finite(new_state.params)))
                for i, m in enumerate(members):
                    if m.failure is None:
                        _commit_rows(m, done, length, {k: v[i] for k, v in metrics.items()},
                                     bool(params_finite[i]), _member_state(state, i, batched),
                                     progress_key)  # fmt: skip
                if not batched and members[0].failure is not None:
                    return state, {0: members[0].failure}
                state, done = new_state, done + length
                chunks_since_save += 1
                if chunks_since_save >= settings.checkpoint_every or done >= end:
                    save_active()
                    chunks_since_save = 0
                for i, m in enumerate(members):
                    if m.curve is not None and m.failure is None:
                        m.curve.after(done, _member_state(state, i, batched))
                if on_chunk is not None:
                    active = [i for i, m in enumerate(members) if m.failure is None]
                    on_chunk(done, _mean_over(metrics, active or [0]))
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the main thread
            save_active()
            raise
        if signals.received is not None:
            save_active()
            raise Interrupted(signals.received, done)
    return state, {i: m.failure for i, m in enumerate(members) if m.failure is not None}


def _commit_rows(
    m: _Member,
    done: int,
    length: int,
    metrics: dict[str, np.ndarray],
    params_finite: bool,
    last_state: PyTree,
    progress_key: str,
) -> None:
    """Logs one member's rows of a chunk; on non-finite values saves its last finite state."""
    rows = [{k: float(v[i]) for k, v in metrics.items()} for i in range(length)]
    bad = m.watcher.bad_rows(done + 1, rows)
    logged = []
    for i, row in enumerate(rows):
        if math.isnan(row.get(progress_key, 0.0)):
            del row[progress_key]  # undefined in this update: no value to log
        logged.append((m.run.steps_at(done + i + 1), {**row, "update": done + i + 1}))
    m.log.log_rows(logged)
    if bad or not params_finite:
        if done > m.saved:
            _save(m.run, done, last_state)
            m.saved = done
        ckpt = (
            f"The last finite state is checkpoint update {m.saved}"
            if m.saved
            else "No update finished with finite values"
        )
        m.failure = _describe_divergence(m.watcher, bad, params_finite, done + length, ckpt)
        return
    m.watcher.warn(done + 1, rows)


def _mean_over(metrics: dict[str, np.ndarray], members: list[int]) -> dict[str, np.ndarray]:
    """Per-update metrics averaged over ``members`` (an undefined value is skipped)."""
    out = {}
    for k, v in metrics.items():
        picked = v[members]
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(picked), axis=0)
            out[k] = np.where(counts > 0, np.nansum(picked, axis=0) / np.maximum(counts, 1), np.nan)
    return out


class _Curve:
    """The learning curve: a meta-test every ``eval_every`` updates, rows in ``curve.jsonl``.

    Each row: ``update``, ``step`` (training budget spent), ``metric`` and ``axis`` of the
    meta-test, ``mean`` and ``se`` over tasks at each point and, where defined, ``success``.
    The meta-test uses the run's ``eval_tasks``, ``eval_episodes`` and seed 0, so the rows of
    a resumed run equal those of an uninterrupted one.
    """

    def __init__(self, run: Run) -> None:
        self.run, self.path = run, run.path / CURVE
        self.every = run.settings.eval_every
        self.tester = _meta_tester(run.algo)

    def resume(self, done: int, state: PyTree) -> None:
        rows = [r for r in _read_curve(self.path) if r["update"] <= done]
        write_bytes_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows).encode())
        if not any(r["update"] == done for r in rows) and done % self.every == 0:
            self.write(done, state)

    def after(self, done: int, state: PyTree) -> None:
        if done % self.every == 0 or done == self.run.algo.num_updates:
            self.write(done, state)

    def write(self, update: int, state: PyTree) -> None:
        settings = self.run.settings
        result = self.tester(state.params, settings.eval_episodes, settings.eval_tasks, 0)
        with self.path.open("a") as f:
            f.write(json.dumps(_curve_row(self.run, update, result)) + "\n")


def _curve_row(run: Run, update: int, result: MetaTestResult) -> dict[str, Any]:
    """One row of a learning curve: the meta-test of the parameters after ``update`` updates."""
    values = np.asarray(result.values, np.float64)
    row = {
        "update": update,
        "step": run.steps_at(update),
        "metric": result.metric,
        "axis": result.axis,
        "mean": values.mean(0).tolist(),
        "se": (values.std(0, ddof=1) / np.sqrt(len(values))).tolist()
        if len(values) > 1
        else [0.0] * values.shape[1],
    }
    if result.success is not None:
        row["success"] = np.asarray(result.success, np.float64).mean(0).tolist()
    return row


def _read_curve(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_curve(run_dir: str | Path) -> list[dict[str, Any]]:
    """The learning curve a run wrote with ``eval_every`` (rows of ``curve.jsonl``)."""
    return _read_curve(Path(run_dir) / CURVE)


def _save(run: Run, update: int, state: PyTree) -> Path:
    return save_checkpoint(
        run.path / CHECKPOINTS, update, state, keep=run.settings.keep_checkpoints
    )


def meta_test(
    algo: Algorithm,
    params: PyTree,
    points: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
    test_task: str | None = None,
) -> MetaTestResult:
    """Meta-tests ``params`` on the task's held-out tasks (the same protocol for every algorithm).

    Args:
        algo: The algorithm.
        params: Its meta-trained parameters.
        points: Episodes per trial, or gradient steps (0: the algorithm's default).
        num_tasks: Held-out tasks (0: the task's default).
        seed: Seed of the evaluation key.
        test_task: Meta-test on this registered distribution's held-out tasks instead (see
            :func:`test_distribution`).
    """
    return _meta_tester(algo, test_task)(params, points, num_tasks, seed)


def test_distribution(algo: Algorithm, name: str | None) -> Any:
    """The held-out tasks' distribution: the algorithm's own, or the registered ``name``.

    A run can be meta-tested on another distribution of the same environment (e.g. trained on
    level ground, tested on slopes: ``cheetah-slope`` and ``cheetah-slope-up10``).

    Raises:
        ConfigError: ``name`` has another environment or other observation/action spaces.
    """
    if name is None or name == algo.tasks.name:
        return algo.tasks
    other = task_registry.make(name)
    mine = algo.tasks
    same_env = _same_env(getattr(other, "env", None), mine.env)
    if same_env:
        a, b = mine.sample_one(jax.random.key(0)), other.sample_one(jax.random.key(0))
        same_env = jax.tree.structure(a) == jax.tree.structure(b) and all(
            np.shape(x) == np.shape(y)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        )
    if not same_env:
        raise ConfigError(
            f"cannot meta-test a run of {mine.name} on {name}: a run can only be tested on "
            f"another distribution of the same environment with tasks of the same shape"
        )
    return other


def _same_env(a: Any, b: Any) -> bool:
    """One environment, or two equal instances (frozen dataclasses of the same settings)."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # fields that do not compare (arrays)
        return False


def default_test_points(algo: Algorithm, dist: Any) -> int:
    """The meta-test's points when none are asked for, on the held-out tasks of ``dist``.

    The algorithm's own, except where it plays whole trials of its task's length (RL²'s
    episodes per trial left at the task's default) and ``dist`` is another distribution:
    then a trial of ``dist``'s length (a run trained on 100-pull bandits plays 500 pulls on
    ``bandit-k10-n500``).
    """
    own_length = algo.axis == "episode" and algo.default_points == algo.tasks.episodes
    if dist is not algo.tasks and own_length and getattr(dist, "episodes", 0):
        return dist.episodes
    return algo.default_points


def _meta_tester(
    algo: Algorithm, test_task: str | None = None
) -> Callable[[PyTree, int, int, int], MetaTestResult]:
    """`meta_test` with the program compiled once for several parameter sets."""
    fn = jax.jit(algo.meta_test, static_argnums=3) if algo.jittable else algo.meta_test
    dist = test_distribution(algo, test_task)

    def run(params: PyTree, points: int, num_tasks: int, seed: int) -> MetaTestResult:
        tasks = dist.test_tasks(num_tasks or None)
        points = points or default_test_points(algo, dist)
        return jax.device_get(fn(params, jax.random.key(seed), tasks, points))

    return run


def evaluate(
    run: Run,
    params: PyTree | None = None,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
    replace: bool = True,
    test_task: str | None = None,
    reference: bool = True,
) -> dict[str, Any]:
    """Meta-tests a run and writes ``summary.json``, ``results.npz`` and ``adaptation.png``.

    The policy before meta-training (the run's initial parameters) is meta-tested on the same
    tasks with the same seed as a reference: its mean per index is the summary's
    ``reference`` and a dashed line in the figure (for RL², close to random play).

    Args:
        run: The run.
        params: Parameters; the latest checkpoint's when ``None``.
        episodes: Points of the meta-test, episodes per trial or gradient steps (0: the run's
            setting, else the algorithm's default).
        num_tasks: Held-out tasks (0: the run's setting, else the task's default).
        seed: Seed of the evaluation key.
        out: Output directory (default: the run's ``eval/``, its final meta-test).
        replace: Overwrite a meta-test already in ``out``; if ``False`` that is an error.
        test_task: Meta-test on the held-out tasks of this registered distribution of the
            same environment instead of the run's own (see :func:`test_distribution`).
        reference: Also meta-test the initial parameters (the summary's ``reference``).

    Returns:
        The summary (also written to ``<out>/summary.json``).

    Raises:
        CheckpointError: No checkpoint to evaluate, or it is corrupt.
        ConfigError: A negative or oversized argument (``MAX_POINTS``, ``MAX_TASKS``), or
            ``out`` holds a meta-test and ``replace`` is false.
    """
    _check_meta_test_args(episodes, num_tasks, seed)
    out = Path(out) if out is not None else run.path / EVAL
    if not replace and (out / "summary.json").exists():
        raise ConfigError(f"{out} already holds a meta-test; choose another --out or --replace")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a directory")
    if params is None:
        ckpt = latest_checkpoint(run.path / CHECKPOINTS)
        if ckpt is None:
            raise CheckpointError(f"{run.path} has no checkpoint to evaluate")
        params = load_state(run, ckpt).params
    tester = _meta_tester(run.algo, test_task)
    args = (episodes or run.settings.eval_episodes, num_tasks or run.settings.eval_tasks, seed)
    result = tester(params, *args)
    variant = run.algo.variant
    label = (
        f"{run.algo_name} ({variant})" if variant and variant != run.algo_name else run.algo_name
    )
    tested_on = test_task or run.task_name
    where = (
        run.task_name if tested_on == run.task_name else f"{tested_on} (trained on {run.task_name})"
    )
    title = f"{run.algo_name} on {where}: meta-test, {np.shape(result.values)[0]} tasks"
    record = {"algo": run.algo_name, "task": run.task_name, "seed": seed}
    if tested_on != run.task_name:
        record["test_task"] = tested_on
    if variant is not None:
        record["variant"] = variant
    out.mkdir(parents=True, exist_ok=True)
    before = None
    if reference:  # the same tasks and seed, untrained
        before = ("before meta-training", tester(initial_state(run).params, *args))
    return write_meta_test(result, out, label, title, before, **record)


def has_final_meta_test(run: Run) -> bool:
    """Whether the run trained to its end and its ``eval/`` holds the meta-test made after."""
    summary = run.path / EVAL / "summary.json"
    found = list_checkpoints(run.path / CHECKPOINTS)
    if not summary.exists() or not found:
        return False
    update, path = found[-1]
    return update == run.algo.num_updates and summary.stat().st_mtime >= path.stat().st_mtime


def _check_meta_test_args(episodes: int, num_tasks: int, seed: int) -> None:
    """Refuses a negative or oversized point count, task count or seed by name."""
    limits = {"episodes": (episodes, MAX_POINTS), "num_tasks": (num_tasks, MAX_TASKS)}
    for name, (value, limit) in {**limits, "seed": (seed, INT_LIMIT)}.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit):
            raise ConfigError(f"{name} must be an integer in [0, {limit}], got {value!r}")


CHECKPOINT_BATCH = 8
"""Checkpoints a jittable algorithm meta-tests at once in one ``vmap``-ed program."""


def evaluate_checkpoints(
    run: Run,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
    replace: bool = False,
    test_task: str | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Meta-tests every checkpoint of a run, after the fact: return against training steps.

    Every checkpoint on disk is meta-tested on the same held-out tasks with the same seed. A
    jittable algorithm meta-tests up to :data:`CHECKPOINT_BATCH` checkpoints at once, in one
    compiled program ``vmap``-ed over their parameters; a host-stepped one meta-tests them one
    after another with one compiled policy.

    Writes ``<out>/curve.jsonl`` (rows as the run's own ``curve.jsonl``: ``update``, ``step``,
    ``metric``, ``axis``, ``mean`` and ``se`` at each point, ``success``) and
    ``<out>/curve.png``.

    Args:
        run: The run.
        episodes: Points of the meta-test (0: the run's setting, else the algorithm's default).
        num_tasks: Held-out tasks (0: the run's setting, else the task's default).
        seed: Seed of the evaluation key.
        out: Output directory (default: ``RUN/evaluations/checkpoints-...``).
        replace: Overwrite curves already in ``out``; if ``False`` that is an error.
        test_task: Meta-test on the held-out tasks of this registered distribution of the
            same environment instead (see :func:`test_distribution`).
        on_row: Called with each row as it is written (progress).

    Returns:
        The rows, oldest checkpoint first, and the output directory.

    Raises:
        CheckpointError: The run has no checkpoint, or one is corrupt.
        ConfigError: ``out`` holds curves and ``replace`` is false, or a bad argument.
    """
    found = list_checkpoints(run.path / CHECKPOINTS)
    if not found:
        raise CheckpointError(f"{run.path} has no checkpoint to evaluate")
    _check_meta_test_args(episodes, num_tasks, seed)
    dist = test_distribution(run.algo, test_task)
    points = episodes or run.settings.eval_episodes or default_test_points(run.algo, dist)
    num_tasks = num_tasks or run.settings.eval_tasks
    if out is None:
        name = f"checkpoints-tasks{num_tasks or 'default'}-points{points}-seed{seed}"
        out = run.path / "evaluations" / (f"{test_task}-{name}" if test_task else name)
    out = Path(out)
    if (out / "curve.jsonl").exists() and not replace:
        raise ConfigError(f"{out} already holds curves; choose another --out or --replace")
    tasks = dist.test_tasks(num_tasks or None)
    key = jax.random.key(seed)
    if run.algo.jittable:
        batched = jax.jit(jax.vmap(run.algo.meta_test, (0, None, None, None)), static_argnums=3)

        def test(params_list: list[PyTree]) -> list[MetaTestResult]:
            stacked = jax.tree.map(lambda *x: jnp.stack(x), *params_list)
            result = jax.device_get(batched(stacked, key, tasks, points))
            return [jax.tree.map(lambda x, i=i: x[i], result) for i in range(len(params_list))]
    else:
        tester = _meta_tester(run.algo, test_task)

        def test(params_list: list[PyTree]) -> list[MetaTestResult]:
            return [tester(p, points, num_tasks, seed) for p in params_list]

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    size = CHECKPOINT_BATCH if run.algo.jittable else 1
    for start in range(0, len(found), size):
        group = found[start : start + size]
        results = test([load_state(run, path).params for _, path in group])
        for (update, _), result in zip(group, results, strict=True):
            rows.append(_curve_row(run, update, result))
            if on_row is not None:
                on_row(rows[-1])
    write_bytes_atomic(out / "curve.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    _plot_checkpoint_curve(run, rows, out / "curve.png", test_task)
    return rows, out


def _plot_checkpoint_curve(
    run: Run, rows: list[dict[str, Any]], path: Path, test_task: str | None
) -> None:
    from quickstudy.evaluation.plots import plot_learning_curves

    first = 1 if rows[0]["axis"] == "episode" else 0
    curves = {
        f"{rows[0]['axis']} {first + k}": ([r["step"] for r in rows], [r["mean"][k] for r in rows])
        for k in range(len(rows[0]["mean"]))
    }
    where = test_task or run.task_name
    plot_learning_curves(
        [(f"{run.algo_name} on {where}", curves)],
        path,
        xlabel=run.algo.step_unit,
        ylabel=f"meta-test {rows[0]['metric']}",
        title="every checkpoint, meta-tested after training",
    )
