"""Several seeds on one machine: one process per core (pinned) against one ``vmap``ped program.

The workload is the README's main job (``quickstudy train rl2``: ``bandit-k5-n10``, default
configuration). Rows, each the summed env steps/s of the timed updates (compilation excluded):

* **1 seed, 1 process**: ``jax.jit(update)`` in one process on all cores (the baseline);
* **N seeds, vmap**: ``jax.jit(jax.vmap(update))`` over N stacked states in one process;
* **N seeds, N pinned processes**: N workers started together, each bound to one core
  (``os.sched_setaffinity``) with XLA's multi-threaded Eigen off; they wait for each other after
  compiling so their timed sections overlap.

Each row runs ``--repeats`` times in fresh processes (min and median of the summed steps/s);
load average before and after. Usage::

    .venv/bin/python benchmarks/seeds_parallel.py             # about 4 minutes on 2 idle cores
    .venv/bin/python benchmarks/seeds_parallel.py --quick

Writes JSON to ``--out`` (default ``benchmarks/results/seeds_parallel.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from results_io import write_result

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker(args: argparse.Namespace) -> None:
    """Times ``args.updates`` updates of ``args.seeds`` vmapped seeds; prints one JSON line."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    import jax

    from quickstudy import tasks as task_registry
    from quickstudy.algorithms.rl2 import RL2Config, make_rl2

    algo = make_rl2(RL2Config(), task_registry.make("bandit-k5-n10"))
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    if args.seeds == 1:
        state, update = jax.jit(algo.init)(keys[0]), jax.jit(algo.update)
    else:
        state, update = jax.jit(jax.vmap(algo.init))(keys), jax.jit(jax.vmap(algo.update))
    state, _ = update(state)  # compile and warm up
    jax.block_until_ready(state)
    if args.barrier:
        Path(args.barrier, f"ready-{os.getpid()}").touch()
        while len(list(Path(args.barrier).glob("ready-*"))) < args.barrier_count:
            time.sleep(0.005)
    t0 = time.perf_counter()
    for _ in range(args.updates):
        state, _ = update(state)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    steps = args.updates * args.seeds * algo.steps_per_update
    print(json.dumps({"seconds": seconds, "steps": steps, "t0": time.time() - seconds}))


def launch(seeds: int, updates: int, core: int | None, barrier: str | None, count: int):
    cmd = [sys.executable, __file__, "--worker", "--seeds", str(seeds)]
    cmd += ["--updates", str(updates), "--barrier-count", str(count)]
    env = dict(os.environ, QUICKSTUDY_COMPILATION_CACHE="off")
    if core is not None:
        cmd += ["--core", str(core)]
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
    if barrier:
        cmd += ["--barrier", barrier]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)


def run_row(kind: str, seeds: int, updates: int) -> dict[str, Any]:
    """One repeat of a row: summed env steps/s over the overlapping timed sections."""
    if kind == "pinned":
        with tempfile.TemporaryDirectory() as barrier:
            procs = [launch(1, updates, i % os.cpu_count(), barrier, seeds) for i in range(seeds)]
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        start = min(o["t0"] for o in outs)
        end = max(o["t0"] + o["seconds"] for o in outs)
        steps = sum(o["steps"] for o in outs)
        return {"steps_per_s": steps / (end - start), "workers": outs}
    proc = launch(seeds, updates, None, None, 1)
    out = json.loads(proc.communicate()[0].strip().splitlines()[-1])
    return {"steps_per_s": out["steps"] / out["seconds"], **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--barrier-count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the parallel rows")
    parser.add_argument("--updates", type=int, default=60, help="timed updates per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="few updates; not for quoting")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.updates, args.repeats = 5, 1
    load_before = os.getloadavg()
    rows = {}
    plan = [
        ("1 seed, 1 process", "single", 1),
        (f"{args.seeds} seeds, vmap", "vmap", args.seeds),
        (f"{args.seeds} seeds, {args.seeds} pinned processes", "pinned", args.seeds),
    ]
    for label, kind, seeds in plan:
        reps = [run_row(kind, seeds, args.updates) for _ in range(args.repeats)]
        rates = [r["steps_per_s"] for r in reps]
        rows[label] = {
            "max_steps_per_s": max(rates),
            "median_steps_per_s": float(np.median(rates)),
            "repeats": reps,
        }
        print(f"{label:32s} {max(rates):>10,.0f} (best) {np.median(rates):>10,.0f} (median)")
    base = rows["1 seed, 1 process"]["median_steps_per_s"]
    for row in rows.values():
        row["vs_one_process"] = row["median_steps_per_s"] / base
    record = {
        "benchmark": "seeds_parallel",
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {"task": "bandit-k5-n10", "updates": args.updates, "repeats": args.repeats},
        "rows": rows,
    }
    write_result(record, "seeds_parallel", args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
