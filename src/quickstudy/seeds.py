"""Several seeds of one configuration: a group directory with one run directory per seed.

Layout::

    runs/rl2-bandit-k5-n10-20261206-101500/     the group
      seeds.json                                algorithm, task, seeds, how they were trained
      seed-0/  seed-1/  ...                     ordinary run directories (evaluate/resume alone)
      eval/summary.json  eval/adaptation.png    the meta-test aggregated over seeds

Seeds train either in one ``vmap``-ed program (one compile, one process:
:func:`quickstudy.runner.train_stacked`) or as worker processes, one per core
(:mod:`quickstudy.parallel`), each an ordinary ``quickstudy resume`` of its seed directory
(:func:`default_mode` picks; host-stepped algorithms always use processes). The aggregate
over seeds is the mean of each seed's meta-test mean with a bootstrap CI across seeds
(:mod:`quickstudy.evaluation.aggregate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy import parallel, runner
from quickstudy.errors import CheckpointError, ConfigError
from quickstudy.evaluation.aggregate import seed_band
from quickstudy.evaluation.plots import plot_adaptation_curve
from quickstudy.evaluation.protocol import AXIS_LABELS
from quickstudy.tracking import make_run_dir, read_json, write_json_atomic
from quickstudy.tracking.run_dir import CHECKPOINTS, EVAL

GROUP = "seeds.json"
"""The file that makes a directory a group of seeds."""
MAX_SEEDS = 1024
"""Most seeds of one group."""
MODES = ("vmap", "processes")
"""How a group trains: one ``vmap``-ed program, or one worker process per core."""

PyTree = Any


@dataclasses.dataclass
class Group:
    """An opened group directory: its seeds' runs, in seed order."""

    path: Path
    runs: list[runner.Run]
    mode: str

    @property
    def seeds(self) -> list[int]:
        """The seeds, as in each run's settings."""
        return [run.settings.seed for run in self.runs]

    def active(self) -> list[runner.Run]:
        """The seeds that have not diverged.

        Raises:
            CheckpointError: Every seed diverged.
        """
        runs = [run for run in self.runs if not (run.path / runner.DIVERGED).exists()]
        if not runs:
            raise CheckpointError(f"every seed of {self.path} diverged; see their diverged.txt")
        return runs


def is_group(path: str | Path) -> bool:
    """Whether ``path`` is a group directory (has ``seeds.json``)."""
    return (Path(path) / GROUP).is_file()


def default_mode(algo: Any) -> str:
    """How seeds train unless asked: the faster of the two where they can choose.

    ``processes`` for a host-stepped algorithm, and for a jittable one on a CPU with several
    cores: on the 2-core reference machine 4 seeds of the README's main job took 2.2x one
    seed's wall-clock as pinned processes against 3.4x as one ``vmap``-ed program
    (``benchmarks/seeds_group.py``), because XLA's CPU backend runs this recurrent update
    on about one core. ``vmap`` on an accelerator or a single core.
    """
    if not algo.jittable:
        return "processes"
    if jax.default_backend() == "cpu" and len(parallel.available_cores()) > 1:
        return "processes"
    return "vmap"


def create_group(
    algo_name: str,
    task_name: str,
    config: Any,
    settings: runner.RunSettings,
    seeds: int,
    mode: str | None = None,
    run_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
) -> Group:
    """Creates a group of ``seeds`` runs with seeds ``settings.seed``, ``settings.seed + 1``, ...

    Args:
        algo_name: Registered algorithm.
        task_name: Registered task distribution.
        config: The algorithm's config (the same for every seed).
        settings: Run settings; each seed's run gets ``seed = settings.seed + i``.
        seeds: Number of seeds (at least 2).
        mode: ``vmap`` or ``processes`` (default: `default_mode`).
        run_dir: The group directory (default: ``RUNS_ROOT/ALGO-TASK-TIME``).
        runs_root: Parent of a generated group directory.

    Raises:
        ConfigError: A bad count or mode, ``vmap`` for a host-stepped algorithm, or the
            directory already holds a run or group. Nothing is created.
        UnknownNameError: Unknown algorithm or task.
    """
    if not 2 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds must be in [2, {MAX_SEEDS}], got {seeds}")
    from quickstudy.algorithms import registry

    algo = registry.build(algo_name, task_name, config)  # validates before anything is written
    mode = mode or default_mode(algo)
    if mode not in MODES:
        raise ConfigError(f"seed mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "vmap" and settings.devices > 1:
        raise ConfigError("--devices splits one run over devices; vmap-ed seeds share one device")
    if mode == "vmap" and not algo.jittable:
        raise ConfigError(
            f"{algo_name} on {task_name} steps its environments on the host and cannot train "
            "seeds in one vmap-ed program; use --seed-mode processes"
        )
    last = settings.seed + seeds - 1
    runner.RunSettings(**{**dataclasses.asdict(settings), "seed": last})  # the last seed fits
    if run_dir is not None and (
        (Path(run_dir) / "config.json").exists() or (Path(run_dir) / GROUP).exists()
    ):
        raise ConfigError(f"{run_dir} already holds a run; choose another --run-dir")
    path = make_run_dir(runs_root, algo_name, task_name, run_dir)
    (path / CHECKPOINTS).rmdir()
    runs = [
        runner.create_run(
            algo_name,
            task_name,
            config,
            dataclasses.replace(settings, seed=settings.seed + i),
            run_dir=path / f"seed-{settings.seed + i}",
        )
        for i in range(seeds)
    ]
    record = {
        "algo": algo_name,
        "task": task_name,
        "mode": mode,
        "seeds": [run.settings.seed for run in runs],
        "dirs": [run.path.name for run in runs],
    }
    write_json_atomic(path / GROUP, record)
    return Group(path, runs, mode)


def open_group(path: str | Path) -> Group:
    """Opens a group directory.

    Raises:
        CheckpointError: ``seeds.json`` is missing or damaged, or a seed's directory is.
    """
    path = Path(path)
    try:
        record = read_json(path / GROUP)
        dirs, mode = list(record["dirs"]), str(record["mode"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / GROUP} is not a valid group record: {err!r}") from err
    if mode not in MODES or not dirs:
        raise CheckpointError(f"{path / GROUP} is not a valid group record")
    return Group(path, [runner.open_run(path / d) for d in dirs], mode)


def restore_group(group: Group) -> tuple[list[runner.Run], PyTree, int]:
    """The seeds still training, their latest states stacked, and the update they are at.

    Raises:
        CheckpointError: The seeds stopped at different updates (each can then be resumed on
            its own: the message gives the commands), or a checkpoint is corrupt.
    """
    runs = group.active()
    restored = [runner.restore_latest(run) for run in runs]
    dones = {done for _, done in restored}
    if len(dones) > 1:
        where = ", ".join(
            f"{run.path.name} at update {d}" for run, (_, d) in zip(runs, restored, strict=True)
        )
        raise CheckpointError(
            f"the seeds of {group.path} stopped at different updates ({where}); resume each "
            f"on its own with `quickstudy resume {group.path}/seed-N`"
        )
    for run, (_, done) in zip(runs, restored, strict=True):
        runner.check_resumable(run, done)
    states = [state for state, _ in restored]
    return runs, jax.tree.map(lambda *x: jnp.stack(x), *states), dones.pop()


def train_group(
    group: Group,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    stop_after_updates: int | None = None,
    ray: str | None = None,
    on_event: Callable[[str], None] = lambda _: None,
) -> dict[str, str]:
    """Trains every seed still training to the end of the run.

    Args:
        group: The group.
        on_chunk: Progress callback of a ``vmap`` group (see :func:`runner.train_stacked`).
        on_warning: Divergence warnings of a ``vmap`` group.
        stop_after_updates: Stop once this many updates are done (``vmap`` groups).
        ray: Send the seeds of a ``processes`` group to the Ray cluster at this address
            (:mod:`quickstudy.cluster`) instead of local worker processes.
        on_event: Receives a line as each worker process starts or ends (their logs are
            ``GROUP/seed-N.log``).

    Returns:
        ``{seed directory name: why it failed}`` of the seeds that diverged or failed.

    Raises:
        Interrupted: A signal stopped a ``vmap`` group (every seed is saved).
    """
    if group.mode == "processes":
        return _train_processes(group, ray, on_event)
    runs, state, done = restore_group(group)
    with contextlib.ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.lock)
        _, failures = runner.train_stacked(
            runs, state, done, on_chunk, stop_after_updates, on_warning
        )
    return {runs[i].path.name: text for i, text in failures.items()}


def _train_processes(
    group: Group, ray: str | None, on_event: Callable[[str], None]
) -> dict[str, str]:
    """Each seed as ``quickstudy resume SEED_DIR`` in a pinned worker process or Ray task."""
    from quickstudy import cluster

    work = [
        parallel.Job(
            run.path.name,
            parallel.module_command("quickstudy.cli", "resume", str(run.path)),
            group.path / f"{run.path.name}.log",
        )
        for run in group.active()
    ]
    results = cluster.run_jobs(work, len(parallel.available_cores()), ray, on_event)
    return {
        r.job.name: f"exit status {r.returncode}; see {r.job.log}"
        for r in results
        if r.returncode != 0
    }


def evaluate_group(
    group: Group,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
    test_task: str | None = None,
    each_out: str | None = None,
) -> dict[str, Any]:
    """Meta-tests every seed (same tasks, same evaluation seed) and aggregates over seeds.

    Each seed's meta-test is written as :func:`runner.evaluate` writes it (into the seed's
    ``eval/``, or ``SEED_DIR/<each_out>``); the aggregate goes to ``OUT/summary.json`` and
    ``OUT/adaptation.png`` (default ``OUT``: the group's ``eval/``).

    Returns:
        The aggregate: per point and (episodes) for the trial return, the mean over seeds of
        each seed's mean over tasks, with a 95 % bootstrap CI across seeds; and each seed's
        means.

    Raises:
        CheckpointError: A seed has no checkpoint.
    """
    runs = group.active()
    summaries = []
    for run in runs:
        own = run.path / (each_out or EVAL)
        as_trained = not (episodes or num_tasks or seed or test_task)
        if each_out is None and as_trained and runner.has_final_meta_test(run):
            summaries.append(read_json(own / "summary.json"))  # its final meta-test, as trained
            continue
        summaries.append(
            runner.evaluate(
                run,
                episodes=episodes,
                num_tasks=num_tasks,
                seed=seed,
                out=own,
                test_task=test_task,
                reference=each_out is None,
            )
        )
    out = Path(out) if out is not None else group.path / EVAL
    summary = aggregate_summaries(summaries, [run.settings.seed for run in runs])
    summary.update(algo=runs[0].algo_name, task=runs[0].task_name, evaluation_seed=seed)
    if test_task:
        summary["test_task"] = test_task
    diverged = [run.path.name for run in group.runs if run not in runs]
    if diverged:
        summary["diverged"] = diverged
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "summary.json", summary)
    plot_adaptation_curve(
        {f"{summary['algo']}, {len(runs)} seeds": summary["per_index"]},
        out / "adaptation.png",
        xlabel=AXIS_LABELS.get(summary["axis"], summary["axis"]),
        ylabel=f"meta-test {summary['metric']}",
        title=f"{summary['algo']} on {test_task or summary['task']}: mean over {len(runs)} seeds",
        xs=summary["xs"],
        note="bands: 95% bootstrap confidence interval of the mean over seeds",
    )
    return summary


def evaluate_group_checkpoints(
    group: Group,
    episodes: int = 0,
    num_tasks: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
    replace: bool = False,
    test_task: str | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Every checkpoint of every seed meta-tested; the learning curve aggregated over seeds.

    Each seed's curve is written as :func:`runner.evaluate_checkpoints` writes it (into the
    seed's ``evaluations/``). Updates checkpointed by every seed get one aggregate row:
    ``update``, ``step``, per point the ``mean`` over seeds and its 95 % bootstrap CI
    (``ci95_low``, ``ci95_high``), and ``per_seed`` means. Written to ``OUT/curve.jsonl`` and
    ``OUT/curve.png`` (bands: the CI); default ``OUT``: ``GROUP/evaluations/checkpoints-...``.

    Raises:
        CheckpointError: A seed has no checkpoint.
        ConfigError: ``out`` holds curves and ``replace`` is false.
    """
    import json

    from quickstudy.evaluation.plots import plot_learning_curves
    from quickstudy.tracking.run_dir import write_bytes_atomic

    runs = group.active()
    first = runs[0]
    dist = runner.test_distribution(first.algo, test_task)
    points = episodes or first.settings.eval_episodes
    points = points or runner.default_test_points(first.algo, dist)
    name = f"checkpoints-tasks{num_tasks or 'default'}-points{points}-seed{seed}"
    out = Path(out) if out is not None else group.path / "evaluations" / name
    if (out / "curve.jsonl").exists() and not replace:
        raise ConfigError(f"{out} already holds curves; choose another --out or --replace")
    curves = [
        {r["update"]: r for r in runner.evaluate_checkpoints(
            run, episodes, num_tasks, seed, replace=True, test_task=test_task)[0]}
        for run in runs
    ]  # fmt: skip
    common = sorted(set.intersection(*(set(c) for c in curves)))
    rows = []
    for update in common:
        means = [c[update]["mean"] for c in curves]  # [seeds, points]
        rows.append({
            "update": update,
            **{k: curves[0][update][k] for k in ("step", "metric", "axis")},
            **seed_band(means),
            "per_seed": means,
        })  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "curve.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    if rows:
        offset = 1 if rows[0]["axis"] == "episode" else 0
        shown = sorted({0, len(rows[0]["mean"]) - 1})
        lines = {
            f"{rows[0]['axis']} {k + offset}": tuple(
                [r[f][k] if f != "step" else r["step"] for r in rows]
                for f in ("step", "mean", "ci95_low", "ci95_high")
            )
            for k in shown
        }
        plot_learning_curves(
            [(f"{first.algo_name} on {test_task or first.task_name}", lines)],
            out / "curve.png",
            xlabel=first.algo.step_unit,
            ylabel=f"meta-test {rows[0]['metric']}",
            title=f"every checkpoint of {len(runs)} seeds (band: 95% bootstrap CI over seeds)",
        )
    return rows, out


def aggregate_summaries(summaries: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The mean over seeds (with a bootstrap CI across seeds) of per-seed meta-test summaries.

    Args:
        summaries: One meta-test summary per seed (as `runner.evaluate` returns them), all of
            the same metric and points.
        seeds: The seeds, in the same order.

    Returns:
        ``metric``, ``axis``, ``xs``, ``num_tasks``, ``seeds``, ``per_index`` (per point:
        ``mean``, ``ci95_low``, ``ci95_high`` across seeds, and ``per_seed``), and for
        episodes ``trial_return`` likewise; ``success_per_index`` where defined.
    """
    first = summaries[0]
    out: dict[str, Any] = {
        k: first[k] for k in ("metric", "axis", "higher_is_better", "xs", "num_tasks")
    }
    out["seeds"] = list(seeds)
    out["per_index"] = _across(summaries, lambda s: [r["mean"] for r in s["per_index"]])
    if all("trial_return" in s for s in summaries):
        out["trial_return"] = _across(summaries, lambda s: [s["trial_return"]["mean"]])[0]
    if all("success_per_index" in s for s in summaries):
        out["success_per_index"] = _across(
            summaries, lambda s: [r["mean"] for r in s["success_per_index"]]
        )
    return out


def _across(summaries: list[dict[str, Any]], pick: Callable) -> list[dict[str, Any]]:
    """Per point: the mean over seeds of ``pick(summary)``, its CI and each seed's value."""
    values = np.array([pick(s) for s in summaries], np.float64)  # [seeds, points]
    band = seed_band(values)
    return [
        {**{k: v[i] for k, v in band.items()}, "per_seed": values[:, i].tolist()}
        for i in range(values.shape[1])
    ]
