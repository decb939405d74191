"""The ``quickstudy`` command line: tasks, train, evaluate, resume, reproduce.

Every command reads the one algorithm registry (:mod:`quickstudy.algorithms.registry`); the flags
of ``train ALGO`` are that algorithm's config fields, with defaults from the task's defaults and
the chosen ``--preset``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Annotated, Generic, TypeVar

import tyro

from quickstudy.errors import QuickstudyError

ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass(frozen=True)
class Tasks:
    """List the registered task distributions with their description and reward formula."""


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """Options of a training run common to every algorithm."""

    seed: int = 0
    """Seed of the run."""
    run_dir: str | None = None
    """Run directory (default: runs/<algo>-<task>-<timestamp>)."""
    runs_root: str = "runs"
    """Parent of generated run directories."""
    eval_tasks: int = 0
    """Held-out tasks for the final meta-test (0: the task's default)."""


@dataclasses.dataclass(frozen=True)
class TrainArgs(Generic[ConfigT]):
    """Meta-train an algorithm on a task distribution, then meta-test it."""

    config: ConfigT
    """The algorithm's hyperparameters."""
    task: str = ""
    """Task distribution (see `quickstudy tasks`)."""
    preset: str | None = None
    """A named recipe of the algorithm (its overrides; flags still win)."""
    chunk_updates: int = 10
    """Updates per chunk (logging/progress/checkpoint granularity)."""
    checkpoint_every: int = 5
    """Checkpoint every this many chunks."""
    run: RunArgs = RunArgs()
    """Run directory, seed and final meta-test."""


@dataclasses.dataclass(frozen=True)
class Train:
    """Meta-train an algorithm on a task distribution: `quickstudy train ALGO --help`."""

    algo: tyro.conf.Positional[str]
    """A registered algorithm (an unknown name lists them all)."""


_TYRO_CONFIG = (tyro.conf.OmitArgPrefixes, tyro.conf.OmitSubcommandPrefixes)


@dataclasses.dataclass(frozen=True)
class Evaluate:
    """Meta-test a saved run on held-out tasks; writes eval/summary.json and eval/adaptation.png."""

    run_dir: tyro.conf.Positional[str]
    """The run directory."""
    episodes: int = 0
    """Points of the meta-test: episodes per trial, or gradient steps (0: as trained)."""
    tasks: int = 0
    """Number of held-out tasks (0: the run's --eval-tasks, else the task's default)."""
    seed: int = 0
    """Seed of the evaluation."""


@dataclasses.dataclass(frozen=True)
class Resume:
    """Continue a run from its latest checkpoint to the end, then meta-test it."""

    run_dir: tyro.conf.Positional[str]
    """The run directory."""


@dataclasses.dataclass(frozen=True)
class Reproduce:
    """Reproduce a paper's table beside the published numbers.

    rl2-bandits / rl2-mdps: classical baselines and RL² on the same held-out trials.
    maml-sinusoid: MAML, first-order MAML, Meta-SGD, pretrained and oracle on 600 held-out
    sinusoids, query MSE after 0..10 gradient steps.
    maml-nav2d: MAML, pretrained, random init and oracle on 40 held-out goals, return after
    0..3 policy-gradient steps.
    Writes OUT/table.md, OUT/table.json, OUT/figure.png and OUT/learning.png; an interrupted
    reproduction resumes where it stopped when run again.
    """

    table: tyro.conf.Positional[str]
    """Table: rl2-bandits, rl2-mdps, maml-sinusoid or maml-nav2d."""
    out: str | None = None
    """Output directory (default: runs/reproduce-<table>)."""
    cells: tuple[str, ...] = ()
    """Cells (task names) to run, e.g. --cells bandit-k5-n10 bandit-k10-n10 (default: all)."""
    budget: int | None = None
    """Training budget per cell and trained method, in the algorithm's steps (RL², MAML-RL:
    env steps; supervised MAML: meta-iterations); 0 skips the trained methods."""
    trials: int | None = None
    """Held-out trials or tasks (default: the table's: 1000 trials, 600 sinusoids, 40 goals)."""
    tune_trials: int | None = None
    """Trials per hyperparameter value when tuning classical baselines (default 500)."""
    methods: tuple[str, ...] = ()
    """Methods to run (default: all of the table's)."""
    seed: int = 0
    """Seed of training and of the evaluation."""
    cache_dir: str | None = None
    """Where training runs are kept and reused (default: inside OUT)."""


Command = (
    Annotated[Tasks, tyro.conf.subcommand("tasks")]
    | Annotated[Train, tyro.conf.subcommand("train")]
    | Annotated[Evaluate, tyro.conf.subcommand("evaluate")]
    | Annotated[Resume, tyro.conf.subcommand("resume")]
    | Annotated[Reproduce, tyro.conf.subcommand("reproduce")]
)


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _cmd_tasks() -> int:
    from rich.markup import escape
    from rich.table import Table

    from quickstudy import tasks

    table = Table(title="quickstudy task distributions")
    table.add_column("name", no_wrap=True)  # names are copied into commands: never folded
    for col in ("K", "description", "reward"):
        table.add_column(col, overflow="fold")
    for name in tasks.names():
        info = tasks.make(name).describe()
        k = info.get("episodes_per_trial", info.get("shots"))
        table.add_row(name, str(k), escape(info["description"]), escape(info["reward"]))
    _console().print(table)
    return 0


def _progress(run, start_update: int):
    import numpy as np
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    key, label = run.progress_metric
    unit = "steps" if run.steps_per_update > 1 else "iters"

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[rate]} " + unit + "/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn(label + " {task.fields[ret]}"),
        console=_console(),
        disable=not sys.stdout.isatty() and os.environ.get("QUICKSTUDY_PROGRESS") != "1",
    )
    task_id = progress.add_task(
        f"{run.algo_name} {run.task_name}",
        total=run.total_steps,
        completed=start_update * run.steps_per_update,
        rate="-",
        ret="-",
    )
    t0 = time.perf_counter()

    def on_chunk(done: int, metrics) -> None:
        elapsed = time.perf_counter() - t0
        steps = (done - start_update) * run.steps_per_update
        values = np.asarray(metrics[key])
        finite = values[~np.isnan(values)]  # NaN: undefined in that update
        fields = {"ret": f"{finite[-1]:.2f}"} if finite.size else {}  # else keep the last shown
        progress.update(
            task_id,
            completed=done * run.steps_per_update,
            rate=f"{steps / max(elapsed, 1e-9):,.0f}",
            **fields,
        )

    return progress, on_chunk


def _report_eval(run, summary) -> None:
    from rich.table import Table

    console = _console()
    per = summary["per_index"]
    xs = summary["xs"]
    tasks = summary["num_tasks"]
    table = Table(title=f"meta-test of {run.algo_name} on {run.task_name}")
    if summary["axis"] == "episode":
        table.add_column("metric")
        table.add_column("mean ± s.e.")
        total = summary["trial_return"]
        table.add_row(
            f"trial return (sum of {len(per)} episodes, {tasks} tasks)",
            f"{total['mean']:.3f} ± {total['se']:.3f}",
        )
        shown = sorted({0, 1, len(per) - 1}) if len(per) > 3 else range(len(per))
        for k in shown:
            row = per[k]
            table.add_row(f"return of episode {xs[k]}", f"{row['mean']:.3f} ± {row['se']:.3f}")
        for k in shown if "success_per_index" in summary else ():
            s = summary["success_per_index"][k]
            table.add_row(f"success of episode {xs[k]}", f"{s['mean']:.3f} ± {s['se']:.3f}")
    else:
        metric = summary["metric"]
        name = "return" if metric == "return" else f"query {metric}"
        table.add_column(f"{summary['axis']}s")
        table.add_column(f"{name} ({tasks} tasks), mean ± s.e.")
        table.add_column("95% CI")
        last = len(per) - 1
        for k in sorted({0, 1, min(5, last), last}):
            row = per[k]
            table.add_row(
                str(xs[k]),
                f"{row['mean']:.3f} ± {row['se']:.3f}",
                f"[{row['ci95_low']:.3f}, {row['ci95_high']:.3f}]",
            )
    console.print(table)
    console.print(f"results: {run.path / 'eval'}")


def _train_with_progress(run, start_update: int):
    from quickstudy import runner

    progress, on_chunk = _progress(run, start_update)
    with progress:
        return runner.train(run, on_chunk=on_chunk)


def _cmd_reproduce(cmd: Reproduce, argv: list[str]) -> int:
    from pathlib import Path

    from quickstudy.reproduce import ReproduceSettings, reproduce

    console = _console()
    out = Path(cmd.out or f"runs/reproduce-{cmd.table}")
    settings = ReproduceSettings(
        table=cmd.table,
        out_dir=out,
        cells=cmd.cells,
        budget=cmd.budget,
        trials=cmd.trials,
        tune_trials=cmd.tune_trials,
        seed=cmd.seed,
        cache_dir=Path(cmd.cache_dir) if cmd.cache_dir else None,
        methods=cmd.methods,
    )
    t0 = time.perf_counter()
    try:
        reproduce(
            settings,
            log=console.print,
            train_hook=_train_with_progress,
            command="quickstudy " + " ".join(argv),
        )
    except KeyboardInterrupt:
        console.print(
            f"interrupted; finished cells and checkpoints are kept. Run the same command "
            f"again to continue: quickstudy {' '.join(argv)}"
        )
        return 130
    console.print(f"done in {time.perf_counter() - t0:,.0f} s: {out / 'table.md'}")
    console.print((out / "table.md").read_text(), markup=False)
    return 0


def _train_and_evaluate(run, start_update: int) -> int:
    from quickstudy import runner

    console = _console()
    size = (
        f"{run.algo.num_updates} updates x {run.steps_per_update:,} steps"
        if run.steps_per_update > 1
        else f"{run.algo.num_updates:,} {run.algo.step_unit}"
    )
    console.print(f"run directory: {run.path}  ({size})")
    progress, on_chunk = _progress(run, start_update)
    state = None
    try:
        with progress:
            state = runner.train(run, on_chunk=on_chunk)
    except KeyboardInterrupt:
        console.print(
            f"interrupted; the latest checkpoint is kept. Continue with: "
            f"quickstudy resume {run.path}"
        )
        return 130
    summary = runner.evaluate(run, state.params)
    _report_eval(run, summary)
    return 0


def _flat(config) -> dict[str, object]:
    """``{field: value}`` of a (nested) config, nested fields by their own names (as flags)."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out.update(_flat(value))
        else:
            out[field.name] = value
    return out


def _train_help(spec) -> str:
    lines = [f"{spec.summary}. Then meta-test it on held-out tasks."]
    if spec.presets:
        lines.append("Presets (--preset NAME): ")
        lines += [f"  {name}: {p.description}." for name, p in spec.presets.items()]
    return "\n".join(lines)


def _cmd_train(algo_name: str, argv: list[str]) -> int:
    from quickstudy import runner
    from quickstudy.algorithms import registry

    spec = registry.get(algo_name)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=spec.default_task)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv)
    task, preset = known.task, known.preset
    default_config = spec.config(task, preset)  # --help shows this task's and preset's values
    default = TrainArgs(
        config=default_config,
        task=task,
        preset=preset,
        chunk_updates=spec.chunk_updates,
        checkpoint_every=spec.checkpoint_every,
    )
    args = tyro.cli(
        TrainArgs[spec.config_cls],
        args=argv,
        default=default,
        prog=f"quickstudy train {algo_name}",
        description=_train_help(spec),
        config=_TYRO_CONFIG,
    )
    plain, with_task, final = (
        _flat(c) for c in (spec.config_cls(), spec.config(args.task), args.config)
    )
    applied = [
        f"--{k.replace('_', '-')} {v}"
        for k, v in with_task.items()
        if v != plain[k] and final[k] == v
    ]
    if applied:
        _console().print(f"{task} defaults (override with the flags): " + ", ".join(applied))
    if args.preset:
        _console().print(f"preset {args.preset}: {spec.preset(args.preset).description}")
    settings = runner.RunSettings(
        seed=args.run.seed,
        chunk_updates=args.chunk_updates,
        checkpoint_every=args.checkpoint_every,
        eval_tasks=args.run.eval_tasks,
    )
    run = runner.create_run(
        algo_name,
        args.task,
        args.config,
        settings,
        run_dir=args.run.run_dir,
        runs_root=args.run.runs_root,
    )
    return _train_and_evaluate(run, 0)


def _cmd_resume(cmd: Resume) -> int:
    from quickstudy import runner

    run = runner.open_run(cmd.run_dir)
    _, done = runner.restore_latest(run)
    return _train_and_evaluate(run, done)


def _cmd_evaluate(cmd: Evaluate) -> int:
    from quickstudy import runner

    run = runner.open_run(cmd.run_dir)
    summary = runner.evaluate(run, episodes=cmd.episodes, num_tasks=cmd.tasks, seed=cmd.seed)
    _report_eval(run, summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quickstudy`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if len(argv) >= 2 and argv[0] == "train" and not argv[1].startswith("-"):
            return _cmd_train(argv[1], argv[2:])
        cmd = tyro.cli(
            Command,
            args=argv,
            prog="quickstudy",
            description="quickstudy: meta-reinforcement learning in JAX.",
            config=_TYRO_CONFIG,
        )
        if isinstance(cmd, Tasks):
            return _cmd_tasks()
        if isinstance(cmd, Train):
            return _cmd_train(cmd.algo, [])
        if isinstance(cmd, Evaluate):
            return _cmd_evaluate(cmd)
        if isinstance(cmd, Reproduce):
            return _cmd_reproduce(cmd, argv)
        return _cmd_resume(cmd)
    except QuickstudyError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
