"""Sweeps over config fields: a grid or a random search, one run directory per trial, ranked.

A sweep is a folder::

    runs/sweep-rl2-bandit-k5-n10-20261206-101500/
      sweep.json        the algorithm, task, base flags and every trial's flags
      trial-000/ ...    ordinary run directories (evaluate/resume alone)
      summary.json      every trial's meta-test metric, ranked
      summary.md        the same as a table

Trials are written as command-line flags of ``quickstudy train`` (``{"--lr": "0.001"}``), so a
trial is exactly the run that ``quickstudy train ALGO BASE_FLAGS TRIAL_FLAGS`` would make and
every value goes through the same parsing and validation.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quickstudy.errors import ConfigError
from quickstudy.tracking import read_json, write_json_atomic
from quickstudy.tracking.run_dir import write_bytes_atomic

SWEEP = "sweep.json"
"""The file that makes a directory a sweep."""
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
"""Distributions of ``--sample``: ``uniform:LOW:HIGH``, ``loguniform:LOW:HIGH``,
``int:LOW:HIGH`` (both ends included) and ``choice:A,B,...``."""
MAX_TRIALS = 10_000
"""Most trials of one sweep."""


@dataclasses.dataclass(frozen=True)
class Sampler:
    """One field's distribution in a random search (see :data:`DISTRIBUTIONS`)."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def draw(self, rng: np.random.Generator) -> str:
        """One value, as the flag's text."""
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return str(int(rng.integers(int(self.low), int(self.high) + 1)))
        if self.kind == "loguniform":
            return f"{math.exp(rng.uniform(math.log(self.low), math.log(self.high))):.4g}"
        return f"{rng.uniform(self.low, self.high):.4g}"


def _split(text: str, what: str) -> tuple[str, str]:
    name, sep, rest = text.partition("=")
    name = name.strip().removeprefix("--")
    if not sep or not name or not rest.strip():
        raise ConfigError(f"{what} must look like FIELD=..., got {text!r}")
    return "--" + name, rest.strip()


def parse_grid(text: str) -> tuple[str, list[str]]:
    """``"lr=1e-3,3e-4"`` -> ``("--lr", ["1e-3", "3e-4"])``.

    Raises:
        ConfigError: Not ``FIELD=V1,V2,...``, or a repeated value.
    """
    flag, rest = _split(text, "--grid")
    values = [v.strip() for v in rest.split(",")]
    if any(not v for v in values) or len(set(values)) != len(values):
        raise ConfigError(f"--grid {text!r}: values must be distinct and non-empty")
    return flag, values


def parse_sample(text: str) -> tuple[str, Sampler]:
    """``"lr=loguniform:1e-4:1e-2"`` -> ``("--lr", Sampler("loguniform", 1e-4, 1e-2))``.

    Raises:
        ConfigError: An unknown distribution or bad bounds.
    """
    flag, rest = _split(text, "--sample")
    kind, _, args = rest.partition(":")
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"--sample {text!r}: unknown distribution {kind!r} (one of {', '.join(DISTRIBUTIONS)})"
        )
    if kind == "choice":
        choices = tuple(c.strip() for c in args.split(",") if c.strip())
        if not choices:
            raise ConfigError(f"--sample {text!r}: choice needs values, e.g. choice:a,b")
        return flag, Sampler(kind, choices=choices)
    try:
        low, high = (float(x) for x in args.split(":"))
    except ValueError:
        raise ConfigError(f"--sample {text!r}: {kind} needs LOW:HIGH") from None
    if not low < high or (kind == "loguniform" and low <= 0):
        raise ConfigError(f"--sample {text!r}: need 0 < LOW < HIGH (LOW < HIGH for {kind})")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"--sample {text!r}: int bounds must be whole numbers")
    return flag, Sampler(kind, low, high)


def grid_trials(grid: Sequence[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, the last field varying fastest."""
    flags = [flag for flag, _ in grid]
    if len(set(flags)) != len(flags):
        raise ConfigError("a field appears twice in --grid")
    combos = itertools.product(*(values for _, values in grid))
    trials = [dict(zip(flags, combo, strict=True)) for combo in combos]
    _check_count(len(trials))
    return trials


def random_trials(
    space: Sequence[tuple[str, Sampler]], count: int, seed: int
) -> list[dict[str, str]]:
    """``count`` independent draws from ``space`` (seeded, so a sweep can be re-created)."""
    _check_count(count)
    rng = np.random.default_rng(seed)
    return [{flag: sampler.draw(rng) for flag, sampler in space} for _ in range(count)]


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_TRIALS:
        raise ConfigError(f"a sweep has 1 to {MAX_TRIALS} trials, got {count}")


def trial_name(index: int) -> str:
    """The directory name of trial ``index``."""
    return f"trial-{index:03d}"


def as_argv(flags: dict[str, str]) -> list[str]:
    """``{"--lr": "0.001"}`` -> ``["--lr", "0.001"]`` (a tuple field's value split on spaces)."""
    return [part for flag, value in flags.items() for part in (flag, *value.split())]


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Writes ``sweep.json``; a sweep folder that holds another sweep is refused.

    Raises:
        ConfigError: ``path`` holds a sweep with other settings or trials.
    """
    if (path / SWEEP).exists():
        old = read_json(path / SWEEP)
        if old != record:
            raise ConfigError(
                f"{path} holds another sweep ({path / SWEEP}); choose another --out, or repeat "
                "that sweep's command to continue it"
            )
        return
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / SWEEP, record)


def trial_score(summary: dict[str, Any]) -> tuple[float, float | None, str]:
    """A trial's meta-test metric: ``(mean, s.e., what)``.

    The trial return (sum over episodes) for in-context learners, otherwise the metric at the
    last adaptation point.
    """
    if "trial_return" in summary:
        row, what = summary["trial_return"], "trial return"
    else:
        row = summary["per_index"][-1]
        what = f"{summary['metric']} after {summary['xs'][-1]} {summary['axis']}s"
    se = row.get("se")
    return float(row["mean"]), (None if se is None or not math.isfinite(se) else float(se)), what


def rank(rows: list[dict[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    """Rows with a ``score`` sorted best first (rows without one last), each given its ``rank``."""
    scored = [r for r in rows if r.get("score") is not None]
    scored.sort(key=lambda r: -r["score"] if higher_is_better else r["score"])
    out = scored + [r for r in rows if r.get("score") is None]
    return [{**r, "rank": i + 1 if r.get("score") is not None else None} for i, r in enumerate(out)]


def write_summary(path: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Writes ``summary.json`` and ``summary.md``; returns the Markdown table."""
    fields = list(dict.fromkeys(flag for r in rows for flag in r["flags"]))
    what = next((r["what"] for r in rows if r.get("what")), "score")
    lines = [
        f"# Sweep of {record['algo']} on {record['task']}",
        "",
        f"{len(rows)} trials, ranked by the meta-test {what} (mean ± s.e. over held-out tasks).",
        "",
        "| rank | trial | " + " | ".join(f"`{f}`" for f in fields) + f" | {what} |",
        "|---" * (len(fields) + 3) + "|",
    ]
    for r in rows:
        if r.get("score") is None:
            score = r.get("status", "not finished")
        else:
            se = f" ± {r['se']:.3f}" if r.get("se") is not None else ""
            score = f"{r['score']:.3f}{se}"
        values = " | ".join(r["flags"].get(f, "") for f in fields)
        lines.append(f"| {r['rank'] or '-'} | {r['trial']} | {values} | {score} |")
    text = "\n".join(lines) + "\n"
    write_json_atomic(path / "summary.json", {**record, "ranked": rows})
    write_bytes_atomic(path / "summary.md", text.encode())
    return text
