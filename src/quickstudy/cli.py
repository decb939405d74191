"""The ``quickstudy`` command line: tasks, train, evaluate, resume, reproduce.

Every command reads the one algorithm registry (:mod:`quickstudy.algorithms.registry`). The
options of ``train ALGO`` are generated from that algorithm's config dataclass: one flag per
field, named from one vocabulary shared by every algorithm (:data:`FLAG_NAMES`), with a one-line
help taken from the field's docstring and the default of the chosen task and preset.

Exit status: 0 done; 2 bad input (a usage error, an unknown name, an invalid value, a corrupt or
locked run directory); 3 training diverged; 130/143 stopped by SIGINT/SIGTERM (the latest
checkpoint is kept and ``resume`` continues it).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shutil
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quickstudy.errors import ConfigError, QuickstudyError

FLAG_NAMES = {
    "learning_rate": "lr",
    "meta_lr": "lr",
    "ppo_lr": "lr",
    "num_epochs": "epochs",
    "ppo_epochs": "epochs",
    "num_minibatches": "minibatches",
    "hidden_sizes": "hidden-size",
}
"""Config fields whose flag is a shared word rather than the field's own name: the same
concept has the same flag in every algorithm (``--lr`` is the outer learning rate of RL²'s
PPO, MAML's Adam and MAML-RL's PPO outer loop). The field's own name stays a hidden alias."""

DIVERGED = 3
PROGRESS_ENV = "QUICKSTUDY_PROGRESS"
"""``bar``/``1``: always a progress bar; ``plain``: log lines; ``off``/``0``: none. Default: a
bar on a terminal, log lines otherwise."""
PLAIN_EVERY_S = 5.0


class UsageError(QuickstudyError):
    """A command line that does not parse; the message says what is wrong."""


class _ExitError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises instead of exiting, so ``main`` returns a status."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> typing.NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ExitError(status)


def _formatter(prog: str) -> argparse.HelpFormatter:
    width = max(100, min(shutil.get_terminal_size((120, 24)).columns, 140))
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=width)


def _parser(prog: str, description: str) -> _Parser:
    return _Parser(prog=prog, description=description, formatter_class=_formatter)


# ------------------------------------------------------------------------------------------------
# Values


def _int(text: str) -> int:
    """An integer; ``1e6`` and ``600_000`` are accepted where they are whole numbers."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _nonneg_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


_int.__name__, _nonneg_int.__name__, _float.__name__ = "integer", "integer", "number"


# ------------------------------------------------------------------------------------------------
# Config flags


@dataclasses.dataclass(frozen=True)
class _Option:
    path: tuple[str, ...]  # field path in the config, e.g. ("ppo", "learning_rate")
    flag: str
    hint: Any
    help: str
    group: str


def _field_docs(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of a Google-style class docstring."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return docs
    current = None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        match = re.match(r"^\s{8}(\w+):\s*(.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current is not None:
            docs[current] += " " + line.strip()
    return docs


def _plain(text: str, flags: dict[str, str]) -> str:
    """The first sentence of ``text``, without reST markup, field names replaced by flags."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).split(".")[-1], text)

    def literal(match: re.Match) -> str:
        word = match.group(1)
        assign = re.fullmatch(r'(\w+)="?([^"]*)"?', word)
        if assign and assign.group(1) in flags:
            return f"{flags[assign.group(1)]} {assign.group(2)}"
        return flags.get(word, word)

    text = re.sub(r"``([^`]+)``", literal, text)
    sentence = re.split(r"(?<=[a-z0-9)])\.(\s|$)", text, maxsplit=1)[0]
    return sentence.rstrip(".")


def _options(cls: type, prefix: tuple[str, ...] = (), group: str = "") -> list[_Option]:
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    out: list[_Option] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            out += _options(hint, (*prefix, field.name), field.name)
            continue
        flag = "--" + FLAG_NAMES.get(field.name, field.name.replace("_", "-"))
        out.append(_Option((*prefix, field.name), flag, hint, docs.get(field.name, ""), group))
    return out


def _get(config: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"
    return str(value)


def _add_config_options(parser: _Parser, spec: Any, config: Any) -> list[_Option]:
    options = _options(spec.config_cls)
    seen: dict[str, _Option] = {}
    for option in options:
        if option.flag in seen:  # a programming error in FLAG_NAMES: caught by the tests
            raise AssertionError(f"{spec.name}: two fields use {option.flag}")
        seen[option.flag] = option
    flags = {o.path[-1]: o.flag for o in options}
    groups: dict[str, argparse._ArgumentGroup] = {}
    docs = _field_docs(spec.config_cls)
    for option in options:
        if option.group not in groups:
            title = f"{option.group or spec.name} options".replace("_", "-")
            about = _plain(docs.get(option.group, ""), flags) if option.group else None
            groups[option.group] = parser.add_argument_group(title, about)
        group = groups[option.group]
        dest = "config." + ".".join(option.path)
        default = _get(config, option.path)
        text = _plain(option.help, flags)
        if not (default == 0 and "(0:" in text):  # "(0: ...)" already says what the default does
            text += f" (default: {_show(default)})"
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": text}
        hint, origin = option.hint, typing.get_origin(option.hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = typing.get_args(hint)
            kwargs["metavar"] = "{" + ",".join(typing.get_args(hint)) + "}"
        elif origin is tuple and typing.get_args(hint)[0] is str:
            kwargs.update(nargs="+", metavar="NAME")
        elif origin is tuple:
            kwargs.update(nargs="+", type=_int, metavar="N")
        elif hint is int:
            kwargs.update(type=_int, metavar="N")
        elif hint is float:
            kwargs.update(type=_float, metavar="X")
        else:
            kwargs["metavar"] = "TEXT"
        group.add_argument(option.flag, **kwargs)
        alias = "--" + option.path[-1].replace("_", "-")
        if alias != option.flag:  # the field's own name, kept for recorded commands
            hidden = {k: v for k, v in kwargs.items() if k not in ("help", "metavar")}
            group.add_argument(alias, **hidden, help=argparse.SUPPRESS)
    return options


def _overrides(namespace: argparse.Namespace) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dest, value in vars(namespace).items():
        if not dest.startswith("config."):
            continue
        *parents, name = dest.removeprefix("config.").split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = tuple(value) if isinstance(value, list) else value
    return nested


# ------------------------------------------------------------------------------------------------
# Output


def _is_tty() -> bool:
    return sys.stdout.isatty()


def _console(stderr: bool = False):
    from rich.console import Console

    # Off a terminal rich assumes 80 columns and folds lines mid-phrase: logs get long lines.
    width = None if _is_tty() else 10_000
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=not _is_tty())


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)  # noqa: T201


def _progress_mode() -> str:
    mode = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if mode in ("1", "bar"):
        return "bar"
    if mode in ("0", "off", "none"):
        return "off"
    if mode in ("plain", "log"):
        return "plain"
    return "bar" if _is_tty() else "plain"


class _Progress:
    """Training progress: a rich bar on a terminal, a log line every few seconds otherwise."""

    def __init__(self, run: Any, start_update: int, seeds: int = 1) -> None:
        self.run, self.start_update, self.seeds = run, start_update, seeds
        self.key, self.label = run.progress_metric
        self.unit = "steps" if run.steps_per_update > 1 else "iters"
        self.mode = _progress_mode()
        self.console = _console()
        self.t0 = self.last_print = time.perf_counter()
        self.first_chunk_s: float | None = None
        self.value: str = "-"
        self.bar = None
        if self.mode == "bar":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[rate]} " + self.unit + "/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn(self.label + " {task.fields[ret]}"),
                console=self.console,
            )
            self.task = self.bar.add_task(
                "compiling…",
                total=run.total_steps,
                completed=run.steps_at(start_update),
                rate="-",
                ret="-",
            )

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        elif self.mode == "plain":
            self.console.print(
                f"{self._name()}: compiling the training step (the first chunk includes it)…"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def _name(self) -> str:
        seeds = f" ({self.seeds} seeds, steps/s summed)" if self.seeds > 1 else ""
        return f"{self.run.algo_name} {self.run.task_name}{seeds}"

    def on_chunk(self, done: int, metrics: Any) -> None:
        import numpy as np

        now = time.perf_counter()
        if self.first_chunk_s is None:
            self.first_chunk_s = now - self.t0
        values = np.asarray(metrics[self.key])
        finite = values[np.isfinite(values)]  # NaN: undefined in that update
        if finite.size:
            self.value = f"{finite[-1]:.3g}"
        steps = (done - self.start_update) * self.run.steps_per_update
        rate = steps / max(now - self.t0, 1e-9)
        left = (self.run.algo.num_updates - done) * self.run.steps_per_update / max(rate, 1e-9)
        rate *= self.seeds
        if self.bar is not None:
            self.bar.update(
                self.task,
                description=self._name(),
                completed=self.run.steps_at(done),
                rate=f"{rate:,.0f}",
                ret=self.value,
            )
            return
        total = self.run.algo.num_updates
        if self.mode != "plain" or (now - self.last_print < PLAIN_EVERY_S and done < total):
            return
        self.last_print = now
        self.console.print(
            f"{self._name()}: {self.run.steps_at(done):,}/{self.run.total_steps:,} "
            f"{self.unit} ({100 * done / total:.0f}%), {rate:,.0f} {self.unit}/s, "
            f"elapsed {_clock(now - self.t0)}, ETA {_clock(left)}, {self.label} {self.value}"
        )

    def warning(self, text: str) -> None:
        _console(stderr=True).print(f"warning: {text}")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _report_eval(run: Any, summary: dict[str, Any], out: Path) -> None:
    from rich.table import Table

    console = _console()
    per = summary["per_index"]
    xs = summary["xs"]
    tasks = summary["num_tasks"]
    table = Table(title=f"meta-test of {run.algo_name} on {run.task_name}")

    def pm(row: dict[str, Any]) -> str:
        mean, se = row["mean"], row["se"]
        return f"{mean:.3f}" + (f" ± {se:.3f}" if se is not None else " (one task: no s.e.)")

    if summary["axis"] == "episode":
        table.add_column("metric")
        table.add_column("mean ± s.e.")
        table.add_row(
            f"trial return (sum of {len(per)} episodes, {tasks} tasks)", pm(summary["trial_return"])
        )
        shown = sorted({0, 1, len(per) - 1}) if len(per) > 3 else range(len(per))
        for k in shown:
            table.add_row(f"return of episode {xs[k]}", pm(per[k]))
        for k in shown if "success_per_index" in summary else ():
            table.add_row(f"success of episode {xs[k]}", pm(summary["success_per_index"][k]))
        for k in shown if "success_per_index" in summary and "length_per_index" in summary else ():
            table.add_row(f"steps of episode {xs[k]}", pm(summary["length_per_index"][k]))
    else:
        metric = summary["metric"]
        name = "return" if metric == "return" else f"query {metric}"
        table.add_column(f"{summary['axis']}s")
        table.add_column(f"{name} ({tasks} tasks), mean ± s.e.")
        table.add_column("95% CI")
        last = len(per) - 1
        for k in sorted({0, 1, min(5, last), last}):
            row = per[k]
            low, high = row["ci95_low"], row["ci95_high"]
            ci = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "-"
            table.add_row(str(xs[k]), pm(row), ci)
    console.print(table)
    console.print(f"results: {out}")


# ------------------------------------------------------------------------------------------------
# Commands


def _cmd_tasks(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from quickstudy import tasks
    from quickstudy.algorithms import registry

    table = Table(title="quickstudy task distributions")
    table.add_column("name", no_wrap=True)  # names are copied into commands: never folded
    table.add_column("algorithms", no_wrap=True)
    for col in ("K", "description", "reward"):
        table.add_column(col, overflow="fold")
    for name in tasks.names():
        info = tasks.make(name).describe()
        k = info.get("episodes_per_trial", info.get("shots"))
        algos = ", ".join(registry.suited(name))
        table.add_row(name, algos, str(k), escape(info["description"]), escape(info["reward"]))
    _console().print(table)
    _console().print("K: episodes per trial (RL tasks) or shots per class (few-shot tasks).")
    return 0


def _add_all(parser: Any, *options: tuple[str, str, Any, Any, str]) -> None:
    """Adds ``(flag, metavar, type, default, help)`` options; a tuple default takes a list."""
    for flag, metavar, kind, default, text in options:
        quiet = default in (None, ()) or "default:" in text or (default == 0 and "0:" in text)
        shown = "" if quiet else f" (default: {default})"
        nargs = "+" if isinstance(default, tuple) else None
        parser.add_argument(
            flag, metavar=metavar, type=kind, default=default, nargs=nargs, help=text + shown
        )


def _headline(text: str) -> str:
    """The text up to its first colon or full stop."""
    return re.split(r":\s|\.\s", text, maxsplit=1)[0]


def _train_parser(spec: Any, task: str, preset: str | None) -> tuple[_Parser, Any]:
    from quickstudy import runner

    config = spec.config(task, preset)  # the help shows this task's and preset's defaults
    lines = [f"{spec.summary}; then meta-test it on held-out tasks."]
    if spec.presets:
        lines.append("\npresets (--preset NAME):")
        lines += [f"  {name}: {_headline(p.description)}" for name, p in spec.presets.items()]
    parser = _parser(f"quickstudy train {spec.name}", "\n".join(lines))
    parser.usage = f"quickstudy train {spec.name} [--task TASK] [--preset NAME] [options]"
    settings = runner.RunSettings()
    _add_all(
        parser.add_argument_group("run options"),
        ("--task", "TASK", str, spec.default_task, "task distribution (see quickstudy tasks)"),
        ("--preset", "NAME", str, None, "a named recipe; flags still win"),
        ("--seed", "N", _nonneg_int, 0, "seed of the run (the first seed with --seeds)"),
        ("--seeds", "N", _int, 1,
         "train N seeds (SEED, SEED+1, ...) into one group directory, a run directory each"),
        ("--seed-mode", "MODE", str, None,
         "how seeds train: vmap (one program) or processes (one per core); default: vmap "
         "on an accelerator or one core, else processes"),
        ("--ray", "ADDRESS", str, None,
         "train the seeds as tasks on the Ray cluster at ADDRESS (auto, HOST:PORT or local)"),
        ("--run-dir", "DIR", str, None, "run directory (default: RUNS_ROOT/ALGO-TASK-TIME)"),
        ("--runs-root", "DIR", str, "runs", "parent of generated run directories"),
        ("--eval-tasks", "N", _nonneg_int, 0, "tasks of the final meta-test (0: the task's)"),
        ("--eval-every", "N", _nonneg_int, 0,
         "meta-test every N updates: the learning curve in RUN/curve.jsonl (0: off)"),
        ("--chunk-updates", "N", _int, spec.chunk_updates, "updates per compiled chunk"),
        ("--checkpoint-every", "N", _int, spec.checkpoint_every, "chunks between checkpoints"),
        ("--keep-checkpoints", "N", _int, settings.keep_checkpoints, "checkpoints kept on disk"),
        ("--devices", "N", _int, 1,
         "data-parallel over N devices: environments or training tasks split over them"),
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="check the options, show the size")
    _add_config_options(parser, spec, config)
    return parser, config


def _size(run_algo: Any, config: Any) -> tuple[str, str | None]:
    """``(size, rounding note)`` of a run's budget."""
    per, updates, first = run_algo.steps_per_update, run_algo.num_updates, run_algo.initial_steps
    total = first + updates * per
    if per > 1:
        size = f"{updates:,} updates x {per:,} {run_algo.step_unit} = {updates * per:,}"
        if first:
            size = f"{first:,} initial + {size[: -len(f'{updates * per:,}')]}{total:,}"
    else:
        size = f"{updates:,} {run_algo.step_unit}"
    asked = getattr(config, "total_steps", total)
    note = None
    if asked != total:
        note = (
            f"--total-steps {asked:,} is not a multiple of the {per:,} {run_algo.step_unit} of "
            f"one update: the run takes {total:,}"
        )
    return size, note


def _cmd_train(argv: list[str]) -> int:
    from quickstudy.algorithms import registry

    if not argv or argv[0] in ("-h", "--help"):
        parser = _parser("quickstudy train", "Meta-train an algorithm on a task distribution.")
        parser.add_argument(
            "algo", metavar="ALGO", help="one of: " + ", ".join(registry.ALGORITHMS)
        )
        lines = [
            f"  {n:<9} {s.summary} (default task {s.default_task})"
            for n, s in registry.ALGORITHMS.items()
        ]
        parser.epilog = (
            "algorithms:\n" + "\n".join(lines) + "\n\nOptions of one: quickstudy train ALGO --help"
        )
        parser.parse_args(argv)
        raise UsageError(
            "missing ALGO: quickstudy train ALGO [options]; see quickstudy train --help"
        )
    spec = registry.get(argv[0])
    pre = _Parser(add_help=False)
    pre.add_argument("--task", default=spec.default_task)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv[1:])
    parser, _ = _train_parser(spec, known.task, known.preset)
    args = parser.parse_args(argv[1:])
    flags = {o.path[-1]: o.flag for o in _options(spec.config_cls)}
    flags.update({k: "--" + k.replace("_", "-") for k in RUN_FLAGS})
    try:
        return _train_parsed(spec, args)
    except ConfigError as err:  # name the flag the user typed, not the Python field
        raise ConfigError(
            re.sub(r"\b[a-z_]+\b", lambda m: flags.get(m.group(0), m.group(0)), str(err))
        ) from err


RUN_FLAGS = (
    "seed",
    "seeds",
    "eval_tasks",
    "eval_every",
    "chunk_updates",
    "checkpoint_every",
    "keep_checkpoints",
    "devices",
)


def _train_parsed(spec: Any, args: argparse.Namespace) -> int:
    from quickstudy import runner
    from quickstudy.algorithms import registry

    config = spec.config(args.task, args.preset, _overrides(args))
    settings = runner.RunSettings(
        seed=args.seed,
        chunk_updates=args.chunk_updates,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_tasks=args.eval_tasks,
        eval_every=args.eval_every,
        devices=args.devices,
    )
    console = _console()
    plain, with_task = spec.config_cls(), spec.config(args.task)
    given = _overrides(args)
    applied = [
        f"{o.flag} {_show(_get(with_task, o.path))}"
        for o in _options(spec.config_cls)
        if _get(with_task, o.path) != _get(plain, o.path) and not _given(given, o.path)
    ]
    if applied:
        console.print(f"{args.task} defaults (override with the flags): " + ", ".join(applied))
    if args.preset:
        console.print(f"preset {args.preset}: {spec.preset(args.preset).description}")
    if args.dry_run:
        algo = registry.build(spec.name, args.task, config)
        size, rounding = _size(algo, config)
        console.print(f"dry run: {spec.name} on {args.task}, {size}; nothing was written")
        notes = [rounding] if rounding else []
        notes += list(algo.device_notes) if args.devices > 1 else []
        for note in notes:
            console.print(f"note: {note}")
        return 0
    if args.ray is not None and args.seeds < 2:
        raise UsageError("--ray sends seeds to a cluster: give --seeds N (N >= 2)")
    if args.seeds > 1 or args.seed_mode is not None:
        from quickstudy import seeds

        if args.ray is not None and args.seed_mode == "vmap":
            raise UsageError("--ray trains seeds as processes, not one vmap-ed program")

        group = seeds.create_group(
            spec.name,
            args.task,
            config,
            settings,
            args.seeds,
            mode="processes" if args.ray is not None else args.seed_mode,
            run_dir=args.run_dir,
            runs_root=args.runs_root,
        )
        return _train_group_and_evaluate(group, args.ray)
    run = runner.create_run(
        spec.name, args.task, config, settings, run_dir=args.run_dir, runs_root=args.runs_root
    )
    return _train_and_evaluate(run, runner.initial_state(run), 0)


def _given(overrides: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = overrides
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def _train_and_evaluate(run: Any, state: Any, done: int) -> int:
    from quickstudy import runner

    console = _console()
    size, note = _size(run.algo, run.algo.config)
    console.print(f"run directory: {run.path}  ({size})")
    if note:
        console.print(f"note: {note}")
    with run.lock:
        progress = _Progress(run, done)
        try:
            with progress:
                state = runner.train(
                    run,
                    on_chunk=progress.on_chunk,
                    on_warning=progress.warning,
                    start=(state, done),
                )
        except runner.Interrupted as stop:
            return _stopped(stop, "the checkpoint", "and its metrics are", run.path)
        except KeyboardInterrupt:
            console.print(f"interrupted. Continue with: quickstudy resume {run.path}")
            return 130
        except runner.DivergedError as err:
            _error(f"{err} (run directory: {run.path})")
            return DIVERGED
        if progress.first_chunk_s is not None and done < run.algo.num_updates:
            console.print(f"first chunk (with compilation): {progress.first_chunk_s:.1f} s")
        summary = runner.evaluate(run, state.params)
    _report_eval(run, summary, run.path / "eval")
    return 0


def _stopped(stop: Any, what: str, verb: str, path: Path) -> int:
    """Says what a signal left behind and how to continue; returns the exit status."""
    name = "Ctrl-C" if stop.signum == 2 else f"signal {stop.signum}"
    _console().print(
        f"stopped by {name}: {what} of update {stop.update} {verb} kept. "
        f"Continue with: quickstudy resume {path}"
    )
    return 128 + stop.signum


def _train_group_and_evaluate(group: Any, ray: str | None = None) -> int:
    from quickstudy import runner, seeds

    console = _console()
    first = group.runs[0]
    size, note = _size(first.algo, first.algo.config)
    console.print(
        f"group directory: {group.path}  ({len(group.runs)} seeds "
        f"{', '.join(map(str, group.seeds))} as {group.mode}; each {size})"
    )
    if note:
        console.print(f"note: {note}")
    if group.mode == "processes":
        console.print(f"each seed trains in its own process; logs: {group.path}/seed-N.log")
        failures = seeds.train_group(group, ray=ray, on_event=console.print)
    else:
        runs, _, done = seeds.restore_group(group)
        progress = _Progress(runs[0], done, seeds=len(runs))
        try:
            with progress:
                failures = seeds.train_group(
                    group, on_chunk=progress.on_chunk, on_warning=progress.warning
                )
        except runner.Interrupted as stop:
            return _stopped(stop, "every seed's checkpoint", "is", group.path)
    for name, text in failures.items():
        _error(f"{name}: {text}")
    if len(failures) == len(group.runs):
        return DIVERGED
    summary = seeds.evaluate_group(group)
    _report_group_eval(summary, group.path / "eval")
    return DIVERGED if failures else 0


def _report_group_eval(summary: dict[str, Any], out: Path) -> None:
    from rich.table import Table

    n = len(summary["seeds"])
    table = Table(
        title=f"meta-test of {summary['algo']} on {summary.get('test_task', summary['task'])}: "
        f"mean over {n} seeds ({summary['num_tasks']} tasks each)"
    )
    table.add_column(summary["axis"] if summary["axis"] != "episode" else "metric")
    table.add_column("mean over seeds")
    table.add_column("95% bootstrap CI")
    table.add_column("per seed")

    def add(label: str, row: dict[str, Any]) -> None:
        low, high = row["ci95_low"], row["ci95_high"]
        ci = f"[{low:.3f}, {high:.3f}]" if math.isfinite(low) and math.isfinite(high) else "-"
        per = " ".join(f"{v:.3f}" for v in row["per_seed"])
        table.add_row(label, f"{row['mean']:.3f}", ci, per)

    per, xs = summary["per_index"], summary["xs"]
    if "trial_return" in summary:
        add(f"trial return (sum of {len(per)} episodes)", summary["trial_return"])
    shown = sorted({0, 1, len(per) - 1}) if len(per) > 3 else range(len(per))
    for k in shown:
        add(f"{summary['metric']} at {summary['axis']} {xs[k]}", per[k])
    _console().print(table)
    if summary.get("diverged"):
        _console().print(f"left out (diverged): {', '.join(summary['diverged'])}")
    _console().print(f"results: {out} (each seed's own meta-test: SEED_DIR/eval/)")


def _cmd_resume(argv: list[str]) -> int:
    from quickstudy import runner

    parser = _parser(
        "quickstudy resume",
        "Continue a run from its latest checkpoint to the end, then meta-test it.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    parser.add_argument(
        "--from-update",
        type=_nonneg_int,
        metavar="N",
        help="resume from the checkpoint of update N, not the latest (0: the start)",
    )
    args = parser.parse_args(argv)
    from quickstudy import seeds

    if seeds.is_group(args.run_dir):
        if args.from_update is not None:
            raise UsageError(
                "--from-update rewinds one run: use it on a seed, RUN_DIR/seed-N, not the group"
            )
        return _train_group_and_evaluate(seeds.open_group(args.run_dir))
    run = runner.open_run(args.run_dir)
    with run.lock:
        if args.from_update is not None:
            moved = runner.rewind(run, args.from_update)
            if moved is not None:
                _console().print(f"newer checkpoints moved to {moved}")
        state, done = runner.restore_latest(run)
        runner.check_resumable(run, done)
        if done:
            _console().print(f"resuming from the checkpoint of update {done}")
        return _train_and_evaluate(run, state, done)


def _cmd_evaluate(argv: list[str]) -> int:
    from quickstudy import runner

    parser = _parser(
        "quickstudy evaluate",
        "Meta-test a saved run on held-out tasks. Writes summary.json, results.npz and "
        "adaptation.png to a new folder RUN_DIR/evaluations/<checkpoint>-<settings>/ (the run's "
        "own final meta-test in RUN_DIR/eval/ is never touched unless --out names it).",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    _add_all(
        parser,
        ("--eval-tasks", "N", _nonneg_int, 0, "held-out tasks (0: as trained)"),
        ("--episodes", "N", _nonneg_int, 0, "episodes per trial (RL², 0: as trained)"),
        ("--test-steps", "N", _nonneg_int, 0, "gradient steps (MAML, 0: as trained)"),
        ("--seed", "N", _nonneg_int, 0, "seed of the evaluation"),
        ("--task", "TASK", str, None, "held-out tasks of another distribution of the same env"),
        ("--out", "DIR", str, None, "output folder (default: a new one in RUN_DIR/evaluations/)"),
    )  # fmt: skip
    parser.add_argument("--replace", action="store_true", help="overwrite a meta-test in --out")
    parser.add_argument(
        "--all-checkpoints",
        action="store_true",
        help="meta-test every checkpoint on disk (the same tasks and seed): return against "
        "training steps in curve.jsonl and curve.png (default --out: "
        "RUN_DIR/evaluations/checkpoints-...)",
    )
    parser.add_argument("--tasks", dest="eval_tasks", type=_nonneg_int, help=argparse.SUPPRESS)
    official = parser.add_argument_group(
        "Meta-World's official meta-learning evaluation (RL², MAML-RL on ml1-<env>, ml10, ml45)"
    )
    official.add_argument(
        "--metaworld",
        action="store_true",
        help="run metaworld.evaluation.metalearning_evaluation instead (success rate)",
    )
    _add_all(
        official,
        ("--num-evals", "N", _int, 10, "rounds of test-task sampling (the protocol's 10)"),
        ("--adaptation-episodes", "N", _nonneg_int, 0, "episodes to adapt on (0: as trained)"),
        ("--evaluation-episodes", "N", _int, 3, "episodes counted for success (the protocol's 3)"),
    )  # fmt: skip
    official.add_argument(
        "--deterministic", action="store_true", help="act with the mode in evaluation episodes"
    )
    args = parser.parse_args(argv)
    _check_official_flags(args, parser)
    from quickstudy import seeds

    if seeds.is_group(args.run_dir):
        return _evaluate_group(seeds.open_group(args.run_dir), args)
    run = runner.open_run(args.run_dir)
    if args.metaworld:
        return _metaworld_evaluation(run, args)
    episodic, points = run.algo.axis == "episode", _points(run, args)
    if args.all_checkpoints:
        return _evaluate_checkpoints(run, args, points)
    ckpt = runner.latest_checkpoint(run.path / "checkpoints")
    if ckpt is None:
        raise runner.CheckpointError(f"{run.path} has no checkpoint to evaluate")
    if args.out is not None:
        out = Path(args.out)
    else:
        unit = "episodes" if episodic else "steps"
        name = (
            f"{ckpt.stem.replace('ckpt_', 'update')}-tasks{args.eval_tasks or 'default'}-"
            f"{unit}{points or 'default'}-seed{args.seed}"
        )
        if args.task and args.task != run.task_name:
            name = f"{args.task}-{name}"
        out = run.path / "evaluations" / name
    runner.test_distribution(run.algo, args.task)  # a bad --task fails before any loading
    params = runner.load_state(run, ckpt).params
    summary = runner.evaluate(
        run,
        params,
        points,
        args.eval_tasks,
        args.seed,
        out=out,
        replace=args.replace,
        test_task=args.task,
    )
    _report_eval(run, summary, out)
    return 0


def _check_official_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuses the official evaluation's flags without ``--metaworld``, which alone reads them.

    Raises:
        UsageError: One of them differs from its default while ``--metaworld`` is not given.
    """
    if args.metaworld:
        return
    official = ("--num-evals", "--adaptation-episodes", "--evaluation-episodes", "--deterministic")
    given = [
        flag
        for flag in official
        if getattr(args, dest := flag[2:].replace("-", "_")) != parser.get_default(dest)
    ]
    if given:
        them = "it" if len(given) == 1 else "them"
        raise UsageError(
            f"{', '.join(given)}: only Meta-World's official evaluation reads {them}; "
            f"add --metaworld, or leave {them} out for the library's meta-test"
        )


def _points(run: Any, args: argparse.Namespace) -> int:
    """The meta-test's points: ``--episodes`` or ``--test-steps``, as the algorithm adapts.

    0 means as trained. The other flag is refused with a usage error.
    """
    episodic = run.algo.axis == "episode"
    wrong, right = ("--test-steps", "--episodes") if episodic else ("--episodes", "--test-steps")
    if args.test_steps if episodic else args.episodes:
        raise UsageError(f"{run.algo_name} adapts by {run.algo.axis}s: use {right}, not {wrong}")
    return args.episodes if episodic else args.test_steps


def _evaluate_group(group: Any, args: argparse.Namespace) -> int:
    from quickstudy import runner, seeds

    if args.metaworld:
        raise UsageError("--metaworld evaluates one run: use it on a seed, RUN_DIR/seed-N")
    first = group.runs[0]
    episodic, points = first.algo.axis == "episode", _points(first, args)
    runner.test_distribution(first.algo, args.task)  # a bad --task fails before any loading
    if args.all_checkpoints:
        rows, out = seeds.evaluate_group_checkpoints(
            group, points, args.eval_tasks, args.seed, args.out, args.replace, args.task
        )
        for row in rows:
            low, high = row["ci95_low"][-1], row["ci95_high"][-1]
            _console().print(
                f"update {row['update']:>7,} ({row['step']:,} {first.algo.step_unit}): "
                f"{row['metric']} at the last point {row['mean'][-1]:.3f} [{low:.3f}, {high:.3f}]"
            )
        _console().print(f"curves: {out / 'curve.jsonl'}, {out / 'curve.png'}")
        return 0
    name = (
        f"tasks{args.eval_tasks or 'default'}-{'episodes' if episodic else 'steps'}"
        f"{points or 'default'}-seed{args.seed}"
    )
    if args.task and args.task != first.task_name:
        name = f"{args.task}-{name}"
    out = Path(args.out) if args.out is not None else group.path / "evaluations" / name
    if (out / "summary.json").exists() and not args.replace:
        raise ConfigError(f"{out} already holds a meta-test; choose another --out or --replace")
    summary = seeds.evaluate_group(
        group,
        episodes=points,
        num_tasks=args.eval_tasks,
        seed=args.seed,
        out=out,
        test_task=args.task,
        each_out=f"evaluations/{name}",
    )
    _report_group_eval(summary, out)
    return 0


def _evaluate_checkpoints(run: Any, args: argparse.Namespace, points: int) -> int:
    from quickstudy import runner

    runner.test_distribution(run.algo, args.task)  # a bad --task fails before any loading
    console = _console()
    total = len(runner.list_checkpoints(run.path / "checkpoints"))
    console.print(f"meta-testing {total} checkpoint{'s' * (total != 1)} of {run.path}")
    t0 = time.perf_counter()

    def show(row: dict[str, Any]) -> None:
        mean = ", ".join(f"{m:.3f}" for m in row["mean"])
        console.print(
            f"  update {row['update']:>6} ({row['step']:,} {run.algo.step_unit}): "
            f"{row['metric']} per {row['axis']} {mean}  [{time.perf_counter() - t0:.0f} s]"
        )

    rows, out = runner.evaluate_checkpoints(
        run,
        points,
        args.eval_tasks,
        args.seed,
        out=args.out,
        replace=args.replace,
        test_task=args.task,
        on_row=show,
    )
    console.print(f"curve.jsonl and curve.png of {len(rows)} checkpoint(s) in {out}")
    return 0


def _metaworld_evaluation(run: Any, args: argparse.Namespace) -> int:
    from quickstudy import runner
    from quickstudy.interop.metaworld_eval import benchmark_name, official_evaluation
    from quickstudy.tracking import write_json_atomic

    benchmark_name(run.task_name)  # a run of another task fails before any loading
    ckpt = runner.latest_checkpoint(run.path / "checkpoints")
    if ckpt is None:
        raise runner.CheckpointError(f"{run.path} has no checkpoint to evaluate")
    name = f"metaworld-{ckpt.stem.replace('ckpt_', 'update')}-seed{args.seed}"
    out = Path(args.out) if args.out is not None else run.path / "evaluations" / name
    if (out / "metaworld.json").exists() and not args.replace:
        raise UsageError(f"{out} already holds an evaluation; choose another --out or --replace")
    params = runner.load_state(run, ckpt).params
    t0 = time.perf_counter()
    result = official_evaluation(
        run,
        params,
        num_evals=args.num_evals,
        adaptation_episodes=args.adaptation_episodes,
        evaluation_episodes=args.evaluation_episodes,
        seed=args.seed,
        deterministic=args.deterministic,
    )
    result["seconds"] = time.perf_counter() - t0
    result["checkpoint"] = ckpt.name
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metaworld.json", result)
    console = _console()
    settings = result["settings"]
    console.print(
        f"Meta-World {settings['benchmark']} official meta-learning evaluation of {run.path}: "
        f"success rate {result['success_rate']:.3f}, mean return {result['mean_return']:.1f} "
        f"({settings['num_evals']} rounds, {settings['adaptation_episodes']} adaptation + "
        f"{settings['evaluation_episodes']} evaluation episodes, {result['seconds']:.0f} s)"
    )
    for task, rate in result["success_rate_per_task"].items():
        console.print(f"  {task}: {rate:.3f}")
    per_class = settings["meta_batch_size"] // len(result["success_rate_per_task"])
    if settings["evaluation_episodes"] < per_class:
        console.print(
            f"note: the protocol counts the first {settings['evaluation_episodes']} episodes to "
            f"end among {per_class} environments per task class, and a success ends an episode "
            f"early, so the rate favours fast successes; quickstudy evaluate RUN counts every "
            f"episode (see docs/results/mujoco.md)"
        )
    console.print(f"results: {out / 'metaworld.json'}")
    return 0


REPRODUCE_HELP = """\
Reproduce a paper's table beside the published numbers.

  rl2-bandits / rl2-mdps: classical baselines and RL² on the same held-out trials.
  maml-sinusoid: MAML, first-order MAML, Meta-SGD, pretrained and oracle on 600 held-out
    sinusoids, query MSE after 0..10 gradient steps.
  maml-nav2d: MAML, pretrained, random init and oracle on 40 held-out goals, return after
    0..3 policy-gradient steps.
  maml-locomotion: the same four on MAML's half-cheetah velocity and direction tasks.
  slopes: RL², MAML-RL and a non-adaptive policy trained on level ground, and an oracle
    trained on each slope, on half-cheetah slopes of -20..20 degrees (return vs angle).
  slopes-ant: the same experiment with the ant.
  pearl: PEARL, RL² and MAML-RL on the point robots and half-cheetah velocity: meta-test
    return against environment steps of meta-training, and PEARL's sample efficiency.
  snail-mazes / snail-mazes-symbolic: random play, RL², SNAIL and E-RL² trained on small
    mazes (first-person RGB or a symbolic window), steps to the goal in episodes 1 and 2 of
    unseen small and large mazes (SNAIL's Table 5).

Writes OUT/table.md, OUT/table.json, OUT/figure.png and OUT/learning.png; an interrupted
reproduction resumes where it stopped when run again."""


def _cmd_reproduce(argv: list[str]) -> int:
    from quickstudy.reproduce import TABLES, ReproduceSettings, reproduce, train_runs

    parser = _parser("quickstudy reproduce", REPRODUCE_HELP)
    parser.add_argument("table", metavar="TABLE", help="one of: " + ", ".join(TABLES))
    _add_all(
        parser,
        ("--out", "DIR", str, None, "output folder (default: runs/reproduce-TABLE)"),
        ("--cells", "TASK", str, (), "cells (task names) to run (default: all)"),
        ("--methods", "NAME", str, (), "methods to run (default: all of the table's)"),
        ("--budget", "N", _nonneg_int, None, "steps of each trained method; 0 skips them"),
        ("--trials", "N", _int, None, "held-out trials or tasks per cell (default: the table's)"),
        ("--tune-trials", "N", _int, None, "trials per value to tune baselines (default: 500)"),
        ("--seed", "N", _nonneg_int, 0, "seed of training and evaluation"),
        ("--seeds", "N", _int, 1, "seeds of each trained method (SEED, SEED+1, ...)"),
        ("--cache-dir", "DIR", str, None, "where trained runs are kept (default: in OUT)"),
        ("--jobs", "N", _int, 1, "worker processes on their own cores: cells, and seeds first"),
        ("--ray", "ADDRESS", str, None, RAY_HELP),
    )  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    console = _console()
    out = Path(args.out or f"runs/reproduce-{args.table}")
    if args.jobs < 1:
        _error(f"--jobs must be >= 1, got {args.jobs}")
        return 2
    settings = ReproduceSettings(
        table=args.table,
        out_dir=out,
        cells=tuple(args.cells),
        budget=args.budget,
        trials=args.trials,
        tune_trials=args.tune_trials,
        seed=args.seed,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        methods=tuple(args.methods),
        seeds=args.seeds,
    )

    def train_hook(run: Any, start_update: int) -> Any:
        from quickstudy import runner

        progress = _Progress(run, start_update)
        with progress:
            return runner.train(run, on_chunk=progress.on_chunk, on_warning=progress.warning)

    if args.train_only:  # a worker of _train_seeds_in_workers
        train_runs(settings, log=console.print, train_hook=train_hook)
        return 0
    t0 = time.perf_counter()
    command = "quickstudy reproduce " + " ".join(argv)
    parallel_work = (args.jobs > 1 or args.ray) and not args.worker
    if parallel_work and settings.seeds > 1:
        status = _train_seeds_in_workers(settings, args, console.print)
        if status:
            return status
    if parallel_work and len(settings.selected) > 1:
        status = _reproduce_in_workers(settings, args, console.print)
        if status:
            return status
    try:
        reproduce(
            settings,
            log=console.print,
            train_hook=train_hook,
            command=command,
            record_elapsed=not args.worker,
        )
    except KeyboardInterrupt:
        console.print(
            f"interrupted; finished cells and checkpoints are kept. Run the same command "
            f"again to continue: {command}"
        )
        return 130
    console.print(f"done in {time.perf_counter() - t0:,.0f} s: {out / 'table.md'}")
    console.print((out / "table.md").read_text(), markup=False)
    return 0


def _reproduce_flags(args: argparse.Namespace) -> list[str]:
    """The options of a reproduction that its worker processes must share."""
    forwarded = []
    for flag, value in (
        ("--budget", args.budget),
        ("--trials", args.trials),
        ("--tune-trials", args.tune_trials),
        ("--cache-dir", args.cache_dir),
    ):
        if value is not None:
            forwarded += [flag, str(value)]
    if args.methods:
        forwarded += ["--methods", *args.methods]
    return forwarded


def _reproduce_in_workers(settings: Any, args: argparse.Namespace, log: Callable) -> int:
    """Runs each selected cell as a pinned worker process; 0 when every cell finished."""
    from quickstudy import parallel

    out = Path(settings.out_dir)
    forwarded = ["--seed", str(args.seed), "--seeds", str(args.seeds), *_reproduce_flags(args)]
    jobs = [
        parallel.Job(
            cell.task,
            parallel.module_command(
                "quickstudy.cli", "reproduce", settings.table, "--out", str(out),
                "--cells", cell.task, "--worker", *forwarded,
            ),
            out / "logs" / f"{cell.task}.log",
        )
        for cell in settings.selected
    ]  # fmt: skip
    return _run_reproduce_jobs(jobs, out, args, log, "cell")


def _train_seeds_in_workers(settings: Any, args: argparse.Namespace, log: Callable) -> int:
    """Trains every seed of every selected cell as its own worker; 0 when all finished.

    Each job trains one seed's runs of one cell (``--train-only``). The cells then find every
    seed's runs finished and only meta-test them.
    """
    from quickstudy import parallel

    if not any(settings.spec.methods[m].trains for m in settings.selected_methods):
        return 0
    out = Path(settings.out_dir)
    jobs = [
        parallel.Job(
            f"{cell.task}-seed{seed}",
            parallel.module_command(
                "quickstudy.cli", "reproduce", settings.table, "--out", str(out),
                "--cells", cell.task, "--seed", str(seed), "--train-only", "--worker",
                *_reproduce_flags(args),
            ),
            out / "logs" / f"{cell.task}-seed{seed}.log",
        )
        for cell in settings.selected
        for seed in range(settings.seed, settings.seed + settings.seeds)
    ]  # fmt: skip
    log(f"training {settings.seeds} seeds of {len(settings.selected)} cell(s) as {len(jobs)} jobs")
    return _run_reproduce_jobs(jobs, out, args, log, "training job")


def _run_reproduce_jobs(
    jobs: list[Any], out: Path, args: argparse.Namespace, log: Callable, what: str
) -> int:
    """Runs a reproduction's worker jobs; adds their wall-clock to ``elapsed.json``."""
    from quickstudy import cluster
    from quickstudy.tracking import read_json, write_json_atomic

    t0 = time.perf_counter()
    try:
        results = cluster.run_jobs(jobs, args.jobs, args.ray, log)
    except KeyboardInterrupt:
        log("interrupted; finished cells and checkpoints are kept. Run the same command again.")
        return 130
    elapsed = out / "elapsed.json"
    before = read_json(elapsed)["seconds"] if elapsed.exists() else 0.0
    write_json_atomic(elapsed, {"seconds": before + time.perf_counter() - t0})
    failed = [r for r in results if r.returncode != 0]
    for r in failed:
        log(f"{what} {r.job.name} failed with exit status {r.returncode}; see {r.job.log}")
    return failed[0].returncode if failed else 0


def _cmd_tasks_argv(argv: list[str]) -> int:
    return _cmd_tasks(_parser("quickstudy tasks", "List the task distributions.").parse_args(argv))


RAY_HELP = "send the work to the Ray cluster at ADDRESS (auto, HOST:PORT, or local to start one)"

SWEEP_HELP = """Train one algorithm with several settings; rank them by the meta-test metric.

  --grid FIELD=V1,V2,...  every combination of the listed values (repeat for more fields)
  --sample FIELD=DIST     random search with --trials N; DIST is uniform:LOW:HIGH,
                          loguniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,...

FIELD is an option of `quickstudy train ALGO` without its dashes (lr, hidden-size, ...). Every
other option of `quickstudy train ALGO` goes to each trial (e.g. --task, --total-steps).

Writes OUT/sweep.json, OUT/trial-NNN/ (a run directory each), OUT/summary.json and
OUT/summary.md. Running the same command again continues an interrupted sweep."""


def _cmd_sweep(argv: list[str]) -> int:
    from quickstudy import runner, sweep
    from quickstudy.algorithms import registry

    parser = _parser("quickstudy sweep", SWEEP_HELP)
    parser.usage = (
        "quickstudy sweep ALGO (--grid FIELD=V1,V2 ... | --sample FIELD=DIST ... --trials N) "
        "[--jobs N] [--out DIR] [options of quickstudy train ALGO]"
    )
    parser.add_argument("algo", metavar="ALGO", help="one of: " + ", ".join(registry.ALGORITHMS))
    parser.add_argument(
        "--grid", metavar="FIELD=V1,V2", action="append", default=[], help="values to try"
    )
    parser.add_argument(
        "--sample", metavar="FIELD=DIST", action="append", default=[], help="a distribution"
    )
    _add_all(
        parser,
        ("--trials", "N", _nonneg_int, 0, "trials of a random search (with --sample)"),
        ("--search-seed", "N", _nonneg_int, 0, "seed of the random search"),
        ("--jobs", "N", _int, 1, "trials at once, each a process on its own core"),
        ("--out", "DIR", str, None, "sweep folder (default: RUNS_ROOT/sweep-ALGO-TASK-TIME)"),
        ("--ray", "ADDRESS", str, None, RAY_HELP),
    )  # fmt: skip
    args, base = parser.parse_known_args(argv)
    spec = registry.get(args.algo)
    if bool(args.grid) == bool(args.sample):
        raise UsageError("give --grid FIELD=V1,V2,... or --sample FIELD=DIST (not both)")
    if args.sample and not args.trials:
        raise UsageError("a random search needs --trials N")
    for flag in ("--run-dir", "--seeds", "--seed-mode", "--dry-run"):
        if any(a == flag or a.startswith(flag + "=") for a in base):
            raise UsageError(f"{flag} does not apply to a sweep's trials")
    pre = _Parser(add_help=False)
    pre.add_argument("--task", default=spec.default_task)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--runs-root", default="runs")
    known, _ = pre.parse_known_args(base)
    train_parser, _ = _train_parser(spec, known.task, known.preset)
    if args.grid:
        trials = sweep.grid_trials([sweep.parse_grid(g) for g in args.grid])
        search = {"grid": args.grid}
    else:
        space = [sweep.parse_sample(x) for x in args.sample]
        trials = sweep.random_trials(space, args.trials, args.search_seed)
        search = {"sample": args.sample, "trials": args.trials, "seed": args.search_seed}
    built = []
    for flags in trials:  # every trial is checked before anything is written
        ns = train_parser.parse_args([*base, *sweep.as_argv(flags)])
        config = spec.config(known.task, known.preset, _overrides(ns))
        registry.build(spec.name, known.task, config)
        settings = runner.RunSettings(**{k: getattr(ns, k) for k in RUN_FLAGS if k != "seeds"})
        built.append((flags, config, settings))
    if args.out is not None:
        out = Path(args.out)
    else:
        from quickstudy.tracking import make_run_dir

        out = make_run_dir(known.runs_root, f"sweep-{spec.name}", known.task)
        for empty in ("checkpoints", "eval"):
            (out / empty).rmdir()
    record = {"algo": spec.name, "task": known.task, "base": base, "search": search}
    record["trials"] = trials
    sweep.write_record(out, record)
    console = _console()
    console.print(f"sweep folder: {out}  ({len(trials)} trials)")
    runs = []
    for i, (_, config, settings) in enumerate(built):
        path = out / sweep.trial_name(i)
        if (path / "config.json").exists():
            runs.append(runner.open_run(path))
        else:
            runs.append(runner.create_run(spec.name, known.task, config, settings, run_dir=path))
    pending = [(run, flags) for run, flags in zip(runs, trials, strict=True)
               if not runner.has_final_meta_test(run)]  # fmt: skip
    if args.jobs > 1 or args.ray:
        _sweep_in_workers([run.path for run, _ in pending], out, args.jobs, args.ray, console.print)
    else:
        for k, (run, flags) in enumerate(pending):
            console.print(
                f"[{k + 1}/{len(pending)}] {run.path.name}: {' '.join(sweep.as_argv(flags))}"
            )
            state, done = runner.restore_latest(run)
            if _train_and_evaluate(run, state, done) == DIVERGED:
                (run.path / runner.DIVERGED).write_text("training diverged; see metrics.jsonl\n")
    rows = []
    higher = True
    for run, flags in zip(runs, trials, strict=True):
        path = run.path
        row: dict[str, Any] = {"trial": path.name, "flags": flags, "run_dir": str(path)}
        if runner.has_final_meta_test(run):
            from quickstudy.tracking import read_json

            summary = read_json(path / "eval" / "summary.json")
            higher = summary.get("higher_is_better", True)
            row["score"], row["se"], row["what"] = sweep.trial_score(summary)
        else:
            row["status"] = "diverged" if (path / runner.DIVERGED).exists() else "not finished"
        rows.append(row)
    text = sweep.write_summary(out, record, sweep.rank(rows, higher))
    console.print(text, markup=False)
    console.print(f"results: {out / 'summary.md'}")
    return 0 if all("score" in r for r in rows) else DIVERGED


def _sweep_in_workers(
    paths: list[Path], out: Path, jobs: int, ray: str | None, log: Callable
) -> None:
    """Each trial as ``quickstudy resume TRIAL`` in a worker; logs in OUT/trial-NNN.log."""
    from quickstudy import cluster, parallel, runner

    work = [
        parallel.Job(p.name, parallel.module_command("quickstudy.cli", "resume", str(p)),
                     out / f"{p.name}.log")
        for p in paths
    ]  # fmt: skip
    for result in cluster.run_jobs(work, jobs, ray, log):
        if result.returncode == DIVERGED:
            (out / result.job.name / runner.DIVERGED).write_text(f"see {result.job.log}\n")


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "tasks": (_cmd_tasks_argv, "list the task distributions and the algorithms that suit them"),
    "train": (_cmd_train, "meta-train an algorithm on a task distribution, then meta-test it"),
    "evaluate": (_cmd_evaluate, "meta-test a saved run on held-out tasks"),
    "resume": (_cmd_resume, "continue an interrupted run, then meta-test it"),
    "reproduce": (_cmd_reproduce, "reproduce a paper's table beside the published numbers"),
    "sweep": (_cmd_sweep, "train over a grid or a random search of settings, ranked by meta-test"),
}  # fmt: skip


def _top_help() -> str:
    lines = ["usage: quickstudy COMMAND [options]   (quickstudy COMMAND --help for its options)"]
    lines += ["", "quickstudy: meta-reinforcement learning in JAX.", "", "commands:"]
    lines += [f"  {name:<10} {about}" for name, (_, about) in COMMANDS.items()]
    lines += [
        "",
        "exit status: 0 done, 2 bad input, 3 training diverged, 130/143 stopped by a signal",
        f"progress: a bar on a terminal, log lines otherwise; {PROGRESS_ENV}=bar|plain|off",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quickstudy`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())  # noqa: T201
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        _error(f"unknown command {name!r}. Commands: {', '.join(COMMANDS)}")
        return 2
    from quickstudy import compilation_cache

    compilation_cache.enable()  # QUICKSTUDY_COMPILATION_CACHE=off turns it off
    try:
        return COMMANDS[name][0](rest)
    except _ExitError as done:
        return done.status
    except QuickstudyError as err:
        _error(str(err))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # noqa: T201
        return 130


def entry() -> None:
    """The console script: `main`, then exit at once even if interrupted work is still running."""
    from quickstudy import runner

    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if runner.abandoned_work():
        os._exit(status)  # files are closed; do not wait for a computation nobody will read
    sys.exit(status)


if __name__ == "__main__":
    entry()
