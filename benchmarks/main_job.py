"""Wall time and peak memory of the README's main job (`quickstudy train rl2`), cache off/cold/warm.

    .venv/bin/python benchmarks/main_job.py [--before SRC] [--repeats N] [--out FILE]

Each row runs the whole command in a fresh process (imports, compiles, 468 updates, the
meta-tests) ``--repeats`` times and reports min and median wall time and the peak resident
memory of the process:

* ``now, cache off``: ``QUICKSTUDY_COMPILATION_CACHE=off`` (every program compiled);
* ``now, first run``: an empty cache directory per repeat (compiles and writes the cache);
* ``now, cache warm``: the cache written by a previous run (the usual case after the first);
* ``before`` (with ``--before SRC``, e.g. a worktree of an older commit's ``src/``): that
  tree, without a compilation cache, for a baseline in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CODE = "from quickstudy.cli import entry; entry()"


def run_once(src: Path, cache: str, tmp: Path) -> tuple[float, float, str]:
    env = {k: v for k, v in os.environ.items() if "COMPILATION_CACHE" not in k}
    env |= {
        "PYTHONPATH": str(src),
        "QUICKSTUDY_PROGRESS": "off",
        "QUICKSTUDY_COMPILATION_CACHE": cache,
    }
    run_dir = tempfile.mkdtemp(dir=tmp)
    cmd = [sys.executable, "-c", CODE, "train", "rl2", "--run-dir", f"{run_dir}/run"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = next((ln for ln in proc.stdout.splitlines() if "trial return" in ln), "")
    return wall, peak_mb, result.strip(" │┃")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=None, help="src/ of an older tree")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/main_job.json"))
    args = parser.parse_args()
    src = Path(__file__).resolve().parent.parent / "src"
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        warm = str(tmp / "warm-cache")
        run_once(src, warm, tmp)  # writes the cache the warm rows read
        plan = [("now, cache off", src, lambda i: "off")]
        plan.append(("now, first run (empty cache)", src, lambda i: str(tmp / f"cold{i}")))
        plan.append(("now, cache warm", src, lambda i: warm))
        if args.before:
            plan.insert(0, ("before (no cache)", args.before.resolve(), lambda i: "off"))
        for label, tree, cache in plan:
            walls, peaks, result = [], [], ""
            for i in range(args.repeats):
                # ru_maxrss of children is the max over all children so far: measure each run
                # in a child of its own to keep rows apart.
                out = subprocess.run(
                    [sys.executable, __file__, "--_one", str(tree), cache(i), str(tmp)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                wall, peak, result = json.loads(out.stdout.strip().splitlines()[-1])
                walls.append(wall)
                peaks.append(peak)
            row = {
                "row": label,
                "wall_s_min": min(walls),
                "wall_s_median": float(np.median(walls)),
                "peak_rss_mb_max": max(peaks),
                "result": result,
                "walls": walls,
            }
            rows.append(row)
            print(
                f"{label:<30} wall min {row['wall_s_min']:6.1f} s, median "
                f"{row['wall_s_median']:6.1f} s, peak {row['peak_rss_mb_max']:5.0f} MB  {result}",
                flush=True,
            )
    out = {
        "command": "quickstudy train rl2",
        "repeats": args.repeats,
        "before": str(args.before) if args.before else None,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_one":
        print(json.dumps(run_once(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))))
    else:
        main()
