"""How long a diverging run trains on before the guard stops it.

    python experiments/divergence_stop.py [--out FILE]

Each case trains a config that blows up (through `quickstudy.runner.train`, as the CLI does)
and records, from the ``nonfinite`` column of ``metrics.jsonl``, the first update whose metrics
were not finite, the update the run stopped at, the wall time of every chunk, and the checkpoint
left as the latest. The guard checks at the end of each chunk, so the time from the first
non-finite update to the stop is at most the duration of the chunk that held it plus the save.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.tracking import latest_checkpoint
from quickstudy.types import replace_nested

CASES = [
    # name, algorithm, task, overrides, run settings; the finite twin trains a few chunks of the
    # same shapes with the default step size, for the steady-state chunk time
    (
        "rl2 --lr 1e30",
        "rl2",
        "bandit-k5-n10",
        {"total_steps": 256_000, "ppo": {"learning_rate": 1e30}},
        {"chunk_updates": 10},
    ),
    (
        "maml --inner-lr 1e3",
        "maml",
        "sinusoid-k10",
        {"total_steps": 4000, "inner_lr": 1e3},
        {},
    ),
    (
        "maml-rl --inner-lr 1e30",
        "maml-rl",
        "nav2d",
        {"total_steps": 1_600_000, "inner_lr": 1e30},
        {},
    ),
]


FINITE_CHUNKS = 3


def run_case(root: Path, name, algo, task, overrides, settings) -> dict:
    diverging = _train(root / name.split()[0], algo, task, overrides, settings)
    spec = registry.ALGORITHMS[algo]
    unit = runner.RunSettings(chunk_updates=settings.get("chunk_updates", spec.chunk_updates))
    probe = registry.build(algo, task, spec.config_cls())
    finite = {k: v for k, v in overrides.items() if k not in ("ppo", "inner_lr")} | {
        "total_steps": FINITE_CHUNKS * unit.chunk_updates * probe.steps_per_update
    }
    twin = _train(root / (name.split()[0] + "-finite"), algo, task, finite, settings)
    steady = twin["finished_chunk_seconds"][1:]
    return {
        "case": name,
        **diverging,
        "finite_twin_chunk_seconds": twin["finished_chunk_seconds"],
        "steady_chunk_seconds_median": sorted(steady)[len(steady) // 2] if steady else None,
    }


def _train(path: Path, algo, task, overrides, settings) -> dict:
    spec = registry.ALGORITHMS[algo]
    config = replace_nested(spec.config_cls(), overrides)
    settings = runner.RunSettings(
        chunk_updates=settings.get("chunk_updates", spec.chunk_updates),
        checkpoint_every=spec.checkpoint_every,
    )
    run = runner.create_run(algo, task, config, settings, run_dir=path)
    ends = [time.perf_counter()]

    def on_chunk(done, metrics):
        ends.append(time.perf_counter())

    error = None
    try:
        runner.train(run, on_chunk=on_chunk)
    except runner.DivergedError as e:
        error = str(e)
    stopped = time.perf_counter()
    rows = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    first_bad = next((r["update"] for r in rows if r.get("nonfinite")), None)
    chunk = settings.chunk_updates
    chunks = [round(b - a, 3) for a, b in zip(ends, ends[1:], strict=False)]
    return {
        "stopped": error is not None,
        "message": (error or "")[:400],
        "chunk_updates": chunk,
        "first_nonfinite_update": first_bad,
        "last_logged_update": rows[-1]["update"] if rows else 0,
        "updates_after_first_nonfinite": (rows[-1]["update"] - first_bad) if first_bad else None,
        "latest_checkpoint": getattr(latest_checkpoint(run.path / "checkpoints"), "name", None),
        "finished_chunk_seconds": chunks,
        "diverging_chunk_seconds": round(stopped - ends[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/divergence-stop.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            row = run_case(Path(tmp), *case)
            print(json.dumps(row))  # noqa: T201
            rows.append(row)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
