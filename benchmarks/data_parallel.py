"""Data-parallel training on a CPU split into devices: env steps/s with 1 and with 2 devices.

    .venv/bin/python benchmarks/data_parallel.py [--repeats 3] [--updates 40] [--num-envs 256]

Each row runs in a fresh process started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
(the same flags for every row, so only the placement differs). It times ``--updates`` RL²
updates on ``bandit-k5-n10`` in chunks of 10 (compilation excluded):

* ``1 device``: the state on one device (the baseline);
* ``2 devices``: the environments in flight split over both (`runner.place_on_devices`);
* the same two with ``strided_minibatches`` (PPO's minibatches drawn so that each device
  keeps its own sequences; with the uniform shuffle XLA gathers the whole batch onto both
  devices and both compute every minibatch's whole gradient).

It also counts the collective operations XLA put in the compiled 2-device chunk. Each row
repeats ``--repeats`` times (min and median); load average before and after. Writes
``benchmarks/results/data_parallel.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_io import write_result


def worker(devices: int, updates: int, num_envs: int, strided: bool) -> dict:
    import jax

    from quickstudy import runner
    from quickstudy import tasks as task_registry
    from quickstudy.algorithms.rl2 import RL2Config, make_rl2
    from quickstudy.learners.ppo import PPOConfig

    config = RL2Config(num_envs=num_envs, ppo=PPOConfig(strided_minibatches=strided))
    algo = make_rl2(config, task_registry.make("bandit-k5-n10"))
    state = jax.jit(algo.init)(jax.random.key(0))
    if devices > 1:
        state = runner.place_on_devices(algo, state, devices)
    chunk = jax.jit(lambda s: jax.lax.scan(lambda c, _: algo.update(c), s, None, length=10))
    collectives = {}
    if devices > 1:
        text = chunk.lower(state).compile().as_text()
        for op in ("all-reduce", "all-gather", "reduce-scatter", "all-to-all"):
            collectives[op] = len(re.findall(rf"\b{op}(-start)?\(", text))
    state, _ = chunk(state)  # compile and warm up
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(updates // 10):
        state, _ = chunk(state)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    steps = (updates // 10) * 10 * algo.steps_per_update
    return {"steps_per_s": steps / seconds, "seconds": seconds, "collectives": collectives}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--_worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_strided", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker is not None:
        print(json.dumps(worker(args._worker, args.updates, args.num_envs, bool(args._strided))))
        return
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    load_before = os.getloadavg()
    rows = {}
    for strided, devices in ((0, 1), (0, 2), (1, 1), (1, 2)):
        runs = []
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--_worker", str(devices), "--updates",
                   str(args.updates), "--num-envs", str(args.num_envs),
                   "--_strided", str(strided)]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rates = [r["steps_per_s"] for r in runs]
        label = f"{devices} device{'s' if devices > 1 else ''}" + (", strided" if strided else "")
        rows[label] = {
            "max_steps_per_s": max(rates),
            "median_steps_per_s": float(np.median(rates)),
            "repeats": runs,
            "collectives": runs[0]["collectives"],
        }
    for label, row in rows.items():
        base = rows["1 device" + (", strided" if "strided" in label else "")]["max_steps_per_s"]
        row["vs_one_device"] = row["max_steps_per_s"] / base
        print(f"{label:<19} max {row['max_steps_per_s']:9,.0f} env steps/s, median "
              f"{row['median_steps_per_s']:9,.0f}, {row['vs_one_device']:.2f}x one device, "
              f"collectives {row['collectives']}")  # fmt: skip
    record = {
        "benchmark": "data_parallel",
        "task": "bandit-k5-n10",
        "num_envs": args.num_envs,
        "updates": args.updates,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    write_result(record, "data_parallel", False, args.out)


if __name__ == "__main__":
    main()
