"""Wall-clock of N seeds of the README's main job against one seed (issue 25's target).

    .venv/bin/python benchmarks/seeds_group.py [--seeds 4] [--repeats 2] [--cores 0,1]

Rows, each the whole command in a fresh process (imports, compiles, training, the meta-tests),
with a warm compilation cache (a first run of every row writes it, untimed):

* ``1 seed``: ``quickstudy train rl2`` (the baseline);
* ``N seeds, vmap``: ``quickstudy train rl2 --seeds N`` (one ``vmap``-ed program);
* ``N seeds, processes``: ``--seeds N --seed-mode processes`` (one worker per core);
* ``N seeds, one after another``: N separate ``quickstudy train rl2 --seed i`` in a row.

Each row repeats ``--repeats`` times (min and median wall-clock); load average before and
after is recorded. ``--cores`` pins the whole benchmark (``taskset``-like) to those cores.
Writes ``benchmarks/results/seeds_group.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_io import write_result

CODE = "from quickstudy.cli import entry; entry()"


def run_once(args: list[str], env: dict[str, str], tmp: Path) -> tuple[float, str]:
    run_dir = tempfile.mkdtemp(dir=tmp)
    cmd = [sys.executable, "-c", CODE, "train", "rl2", "--run-dir", f"{run_dir}/run", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    result = next((ln for ln in proc.stdout.splitlines() if "trial return" in ln), "")
    return wall, " ".join(result.strip(" │┃").split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cores", default=None, help="pin to these cores, e.g. 0 or 0,1")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    n = args.seeds
    load_before = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if "COMPILATION_CACHE" not in k}
        env |= {"QUICKSTUDY_PROGRESS": "off", "QUICKSTUDY_COMPILATION_CACHE": str(tmp / "cache")}
        plan = {
            "1 seed": [[]],
            f"{n} seeds, vmap": [["--seeds", str(n)]],
            f"{n} seeds, processes": [["--seeds", str(n), "--seed-mode", "processes"]],
            f"{n} seeds, one after another": [["--seed", str(i)] for i in range(n)],
        }
        for commands in plan.values():  # untimed: fill the compilation cache
            run_once(commands[0], env, tmp)
        for label, commands in plan.items():
            walls, result = [], ""
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for command in commands:
                    _, result = run_once(command, env, tmp)
                walls.append(time.perf_counter() - t0)
            rows[label] = {
                "wall_s_min": min(walls),
                "wall_s_median": float(np.median(walls)),
                "walls": walls,
                "last_result": result,
            }
        base = rows["1 seed"]["wall_s_min"]
        for label, row in rows.items():
            row["vs_one_seed"] = row["wall_s_min"] / base
            print(
                f"{label:<32} wall min {row['wall_s_min']:6.1f} s, median "
                f"{row['wall_s_median']:6.1f} s, {row['vs_one_seed']:4.2f}x one seed  "
                f"{row['last_result']}",
                flush=True,
            )
    record = {
        "benchmark": "seeds_group",
        "command": "quickstudy train rl2 [--seeds N [--seed-mode processes]]",
        "seeds": n,
        "repeats": args.repeats,
        "cores": sorted(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    write_result(record, "seeds_group", False, args.out)


if __name__ == "__main__":
    main()
