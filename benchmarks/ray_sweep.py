"""A 16-trial sweep of bandit-k5-n10 on a local 2-process Ray cluster, one worker killed mid-trial.

    .venv/bin/python benchmarks/ray_sweep.py [--trials 16] [--kill-after-update 100]

Starts a Ray head and one worker node on this machine (one CPU each, token authentication off,
127.0.0.1 only), runs ``quickstudy sweep rl2 --task bandit-k5-n10 --sample ... --trials N --ray
ADDRESS`` and, once trial-000 has a checkpoint past ``--kill-after-update``, SIGKILLs the Ray
worker process running it. Records the timeline (each attempt's start from the trial logs, the
kill, each trial's end) and whether every trial finished with a meta-test score.
Writes ``benchmarks/results/ray_sweep.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_result

from quickstudy.tracking import list_checkpoints

RAY = str(Path(sys.executable).parent / "ray")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--kill-after-update", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    env["QUICKSTUDY_PROGRESS"] = "plain"
    temp = tempfile.mkdtemp(prefix="qs-ray-", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    load_before = os.getloadavg()
    t_start = time.time()
    subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--temp-dir={temp}", *common],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    subprocess.run([RAY, "start", f"--address={address}", *common], check=True,
                   capture_output=True, env=env)  # fmt: skip
    t_cluster = time.time()
    out = Path(tempfile.mkdtemp(prefix="ray-sweep-")) / "sweep"
    cmd = [sys.executable, "-m", "quickstudy.cli", "sweep", "rl2", "--task", "bandit-k5-n10",
           "--sample", "lr=loguniform:3e-4:3e-3", "--sample", "hidden-size=choice:32,64",
           "--trials", str(args.trials), "--ray", address, "--out", str(out)]  # fmt: skip
    try:
        sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=env)  # fmt: skip
        trial = out / "trial-000"
        while not [u for u, _ in list_checkpoints(trial / "checkpoints")
                   if u >= args.kill_after_update]:  # fmt: skip
            if sweep.poll() is not None:
                raise SystemExit("the sweep ended before the kill:\n" + sweep.stdout.read())
            time.sleep(0.05)
        child = int((trial / ".lock").read_text().split()[1])
        worker = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        checkpoint_at_kill = max(u for u, _ in list_checkpoints(trial / "checkpoints"))
        t_kill = time.time()
        os.kill(worker, signal.SIGKILL)
        output, _ = sweep.communicate()
        t_end = time.time()
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env)
    timeline = {}
    for log in sorted(out.glob("trial-*.log")):
        text = log.read_text()
        attempts = [float(line.rsplit(" at ", 1)[1]) - t_start for line in text.splitlines()
                    if line.startswith("[quickstudy.cluster] attempt")]  # fmt: skip
        resumed = [int(part.split()[0]) for part in
                   text.split("resuming from the checkpoint of update ")[1:]]  # fmt: skip
        timeline[log.stem] = {"attempts_s": attempts, "resumed_from_update": resumed}
    summary = json.loads((out / "summary.json").read_text())
    ranked = summary["ranked"]
    lost = [r["trial"] for r in ranked if r.get("score") is None]
    record = {
        "benchmark": "ray_sweep",
        "command": " ".join(cmd[2:]),
        "trials": args.trials,
        "exit_status": sweep.returncode,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cluster_start_s": t_cluster - t_start,
        "kill_s": t_kill - t_start,
        "killed_trial": "trial-000",
        "checkpoint_update_at_kill": checkpoint_at_kill,
        "end_s": t_end - t_start,
        "trials_lost": lost,
        "timeline": timeline,
        "best": ranked[0],
    }
    retry = timeline["trial-000"]
    print(f"cluster up in {record['cluster_start_s']:.1f} s; killed trial-000's worker at "
          f"{record['kill_s']:.1f} s (checkpoint of update {checkpoint_at_kill}); its attempts "
          f"started at {', '.join(f'{a:.1f}' for a in retry['attempts_s'])} s, resumed from "
          f"update {retry['resumed_from_update']}; sweep done at {record['end_s']:.1f} s with "
          f"exit status {sweep.returncode}; trials lost: {len(lost)}")  # fmt: skip
    write_result(record, "ray_sweep", False, args.out)


if __name__ == "__main__":
    main()
