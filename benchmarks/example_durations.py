"""Wall time of every example command in the README, each run once in a fresh process.

    python benchmarks/example_durations.py [--only SUBSTRING ...] [--out FILE]

Each command runs as the README gives it, with ``--run-dir`` in a temporary folder and the
persistent compilation cache off (a first run on a fresh machine). Prints one row per command and
writes JSON (command, seconds, exit status, the last result line, load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICKSTUDY = [sys.executable, "-c", "from quickstudy.cli import entry; entry()"]

EXAMPLES = [
    "train rl2",
    "train rl2 --task bandit-k5-n100 --learner trpo",
    "train rl2 --task bandit-k5-n100 --learner a2c",
    "train rl2 --task nav2d-numpy",
    "train rl2 --task mdp-s10-a5-n10 --preset mdp --total-steps 2000000",
    "train maml --task sinusoid-k10",
    "train maml --task fewshot-glyphs-5way-1shot",
    "train maml-rl --task nav2d",
    "train maml-rl --task nav2d --outer ppo --inner-steps 2 --total-steps 4000000",
    "reproduce rl2-bandits --cells bandit-k5-n10 --methods gittins rl2 --budget 600000",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run the commands containing these")
    parser.add_argument("--out", default="benchmarks/results/example_durations.json")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["QUICKSTUDY_PROGRESS"] = "plain"
    env["QUICKSTUDY_COMPILATION_CACHE"] = "off"  # a first run: every program compiled
    rows = []
    for example in EXAMPLES:
        if args.only and not any(s in example for s in args.only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            extra = ["--out", f"{tmp}/out"] if example.startswith("reproduce") else []
            extra = extra or ["--run-dir", f"{tmp}/run"]
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.run(
                [*QUICKSTUDY, *shlex.split(example), *extra],
                env=env,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.splitlines() if "│" in ln or "|" in ln]
        row = {
            "command": f"quickstudy {example}",
            "seconds": round(seconds, 1),
            "status": proc.returncode,
            "result": lines[-1].strip() if lines else proc.stderr.strip()[-300:],
            "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
        }
        rows.append(row)
        print(f"{row['seconds']:8.1f} s  status {row['status']}  {row['command']}", flush=True)
    record = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
