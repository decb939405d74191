"""The ``quickstudy`` command line: tasks, train, evaluate, resume, reproduce."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Annotated

import tyro

from quickstudy.algorithms.maml import MAMLConfig
from quickstudy.algorithms.maml_rl import MAMLRLConfig
from quickstudy.algorithms.rl2 import RL2Config
from quickstudy.errors import ConfigError, QuickstudyError, UnknownNameError


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
class TrainRL2:
    """Meta-train RL² (GRU policy + PPO over K-episode trials), then meta-test it."""

    task: str = "bandit-k5-n10"
    """Task distribution (see `quickstudy tasks`)."""
    chunk_updates: int = 10
    """Updates per compiled chunk (logging/progress/checkpoint granularity)."""
    checkpoint_every: int = 5
    """Checkpoint every this many chunks."""
    run: RunArgs = RunArgs()
    """Run directory, seed and final meta-test."""
    config: RL2Config = RL2Config(total_steps=600_000)
    """RL² hyperparameters."""


@dataclasses.dataclass(frozen=True)
class TrainMAML:
    """Meta-train supervised MAML (or its pretrained/oracle baselines), then meta-test it.

    --total-steps counts meta-iterations; the meta-test reports the query MSE of held-out tasks
    after 0..test-steps gradient steps.
    """

    task: str = "sinusoid-k10"
    """Few-shot task distribution (see `quickstudy tasks`)."""
    chunk_updates: int = 1000
    """Meta-iterations per compiled chunk (logging/progress/checkpoint granularity)."""
    checkpoint_every: int = 10
    """Checkpoint every this many chunks."""
    run: RunArgs = RunArgs()
    """Run directory, seed and final meta-test."""
    config: MAMLConfig = MAMLConfig()
    """MAML hyperparameters."""


@dataclasses.dataclass(frozen=True)
class TrainMAMLRL:
    """Meta-train MAML for RL (policy-gradient inner loop, TRPO outer loop), then meta-test it.

    The meta-test adapts to each held-out task with policy-gradient steps on fresh episodes and
    reports the mean episode return after 0..test-steps steps.
    """

    task: str = "nav2d"
    """RL task distribution with continuous actions (see `quickstudy tasks`)."""
    chunk_updates: int = 5
    """Meta-iterations per compiled chunk (logging/progress/checkpoint granularity)."""
    checkpoint_every: int = 1
    """Checkpoint every this many chunks."""
    run: RunArgs = RunArgs()
    """Run directory, seed and final meta-test."""
    config: MAMLRLConfig = MAMLRLConfig()
    """MAML-RL hyperparameters."""


@dataclasses.dataclass(frozen=True)
class Train:
    """Meta-train an algorithm on a task distribution: `quickstudy train ALGO --help`."""

    algo: tyro.conf.Positional[str]
    """Algorithm: rl2, maml or maml-rl."""


TRAIN_ARGS = {"rl2": TrainRL2, "maml": TrainMAML, "maml-rl": TrainMAMLRL}
_TYRO_CONFIG = (tyro.conf.OmitArgPrefixes, tyro.conf.OmitSubcommandPrefixes)


@dataclasses.dataclass(frozen=True)
class Evaluate:
    """Meta-test a saved run on held-out tasks; writes eval/summary.json and eval/adaptation.png."""

    run_dir: tyro.conf.Positional[str]
    """The run directory."""
    episodes: int = 0
    """Episodes per trial K (0: as trained); maml/maml-rl: gradient steps (0: as configured)."""
    tasks: int = 0
    """Number of held-out tasks (0: the task's default)."""
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
    Writes OUT/table.md, OUT/table.json and OUT/figure.png; an interrupted reproduction resumes
    where it stopped when run again.
    """

    table: tyro.conf.Positional[str]
    """Table: rl2-bandits, rl2-mdps, maml-sinusoid or maml-nav2d."""
    out: str | None = None
    """Output directory (default: runs/reproduce-<table>)."""
    cells: tuple[str, ...] = ()
    """Cells (task names) to run, e.g. --cells bandit-k5-n10 bandit-k10-n10 (default: all)."""
    budget: int | None = None
    """Training per cell and method: RL² env steps (0 skips RL²), maml-sinusoid
    meta-iterations, maml-nav2d env steps."""
    trials: int | None = None
    """Held-out trials (RL² tables, default 1000) or tasks (MAML: 600 sinusoids, 40 goals)."""
    tune_trials: int = 500
    """Trials per hyperparameter value when tuning the classical baselines."""
    methods: tuple[str, ...] = ()
    """MAML tables only: methods to run (default: all)."""
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
    from rich.table import Table

    from quickstudy import tasks

    table = Table(title="quickstudy task distributions")
    table.add_column("name", no_wrap=True)  # names are copied into commands: never folded
    for col in ("K", "description", "reward"):
        table.add_column(col, overflow="fold")
    for name in tasks.names():
        info = tasks.make(name).describe()
        k = info.get("episodes_per_trial", info.get("shots"))
        table.add_row(name, str(k), info["description"], info["reward"])
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
        finite = values[~np.isnan(values)]  # NaN: no trial ended in that update
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
    if "per_step" in summary:
        table = Table(title=f"meta-test of {run.algo_name} on {run.task_name}")
        table.add_column("gradient steps")
        name = "return" if summary["metric"] == "return" else f"query {summary['metric']}"
        table.add_column(f"{name} ({summary['num_tasks']} tasks), mean ± s.e.")
        table.add_column("95% CI")
        steps = summary["steps"]
        for k in sorted({0, 1, min(5, steps), steps}):
            row = summary["per_step"][k]
            table.add_row(
                str(k),
                f"{row['mean']:.3f} ± {row['se']:.3f}",
                f"[{row['ci95_low']:.3f}, {row['ci95_high']:.3f}]",
            )
        console.print(table)
        console.print(f"results: {run.path / 'eval'}")
        return
    per = summary["per_episode"]
    total = summary["trial_return"]
    table = Table(title=f"meta-test of {run.algo_name} on {run.task_name}")
    table.add_column("metric")
    table.add_column("mean ± s.e.")
    table.add_row(
        f"trial return (sum of {summary['episodes']} episodes, {summary['num_tasks']} tasks)",
        f"{total['mean']:.3f} ± {total['se']:.3f}",
    )
    shown = sorted({0, 1, len(per) - 1}) if len(per) > 3 else range(len(per))
    for k in shown:
        table.add_row(f"return of episode {k + 1}", f"{per[k]['mean']:.3f} ± {per[k]['se']:.3f}")
    if "success_per_episode" in summary:
        for k in shown:
            s = summary["success_per_episode"][k]
            table.add_row(f"success of episode {k + 1}", f"{s['mean']:.3f} ± {s['se']:.3f}")
    console.print(table)
    console.print(f"results: {run.path / 'eval'}")


def _train_with_progress(run, start_update: int):
    from quickstudy import runner

    progress, on_chunk = _progress(run, start_update)
    with progress:
        return runner.train(run, on_chunk=on_chunk)


def _reproduce_settings(cmd: Reproduce, out):
    from pathlib import Path

    from quickstudy import reproduce_maml
    from quickstudy.reproduce import TABLES, ReproduceSettings

    cache = Path(cmd.cache_dir) if cmd.cache_dir else None
    if cmd.table in reproduce_maml.TABLES:
        if cmd.tune_trials != 500:
            raise ConfigError("--tune-trials applies to the RL² tables only")
        settings = reproduce_maml.MAMLSettings(
            table=cmd.table,
            out_dir=out,
            cells=cmd.cells,
            budget=cmd.budget,
            trials=cmd.trials,
            seed=cmd.seed,
            cache_dir=cache,
            methods=cmd.methods,
        )
        return settings, reproduce_maml.reproduce_maml
    if cmd.table not in TABLES:
        valid = [*TABLES, *reproduce_maml.TABLES]
        raise UnknownNameError(f"unknown table {cmd.table!r}. Valid tables: {', '.join(valid)}")
    if cmd.methods:
        raise ConfigError("--methods applies to the MAML tables only")
    from quickstudy.reproduce import reproduce

    settings = ReproduceSettings(
        table=cmd.table,
        out_dir=out,
        cells=cmd.cells,
        budget=cmd.budget,
        trials=cmd.trials or 1000,
        tune_trials=cmd.tune_trials,
        seed=cmd.seed,
        cache_dir=cache,
    )
    return settings, reproduce


def _cmd_reproduce(cmd: Reproduce, argv: list[str]) -> int:
    from pathlib import Path

    console = _console()
    out = Path(cmd.out or f"runs/reproduce-{cmd.table}")
    settings, run = _reproduce_settings(cmd, out)
    t0 = time.perf_counter()
    try:
        run(
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
        else f"{run.algo.num_updates:,} meta-iterations"
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


def _with_task_defaults(algo_name: str, task: str, config, argv: list[str]):
    """Applies a few-shot task's recommended MAML settings that the command line did not set."""
    from quickstudy import tasks
    from quickstudy.tasks.fewshot import FewShotTasks

    if algo_name != "maml":
        return config
    dist = tasks.make(task)
    if not isinstance(dist, FewShotTasks) or not dist.maml_defaults:
        return config
    given = {arg.split("=")[0] for arg in argv if arg.startswith("--")}
    chosen = {
        k: v for k, v in dist.maml_defaults.items() if f"--{k.replace('_', '-')}" not in given
    }
    if chosen:
        _console().print(
            f"{task} defaults (override with the flags): "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in chosen.items())
        )
    return dataclasses.replace(config, **chosen)


def _cmd_train(algo_name: str, argv: list[str]) -> int:
    from quickstudy import runner

    if algo_name not in TRAIN_ARGS:
        raise UnknownNameError(
            f"unknown algorithm {algo_name!r}. Valid algorithms: {', '.join(TRAIN_ARGS)}"
        )
    args = tyro.cli(
        TRAIN_ARGS[algo_name],
        args=argv,
        prog=f"quickstudy train {algo_name}",
        config=_TYRO_CONFIG,
    )
    config = _with_task_defaults(algo_name, args.task, args.config, argv)
    settings = runner.RunSettings(
        seed=args.run.seed,
        chunk_updates=args.chunk_updates,
        checkpoint_every=args.checkpoint_every,
        eval_tasks=args.run.eval_tasks,
    )
    run = runner.create_run(
        algo_name,
        args.task,
        config,
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
