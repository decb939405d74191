"""RL² updates with the policy's and the critic's gradients on two devices, against one device.

    .venv/bin/python benchmarks/split_networks.py            # about 4 minutes on 2 idle cores
    .venv/bin/python benchmarks/split_networks.py --quick    # smoke run; figures not for quoting

The script splits the CPU into two XLA devices itself
(``--xla_force_host_platform_device_count=2``, put before any ``XLA_FLAGS`` it was started
with). In one process it times ``jax.jit(make_rl2(...).update)`` (collect + PPO, compilation
excluded) for two configurations, each as it is (one device: the plain baseline) and with
``split_networks`` (:mod:`quickstudy.learners.split`), with the global gradient-norm clip and
with ``clip_per_network``:

* ``default``: the README's main job, ``bandit-k5-n10``, GRU 64 policy and critic cores;
* ``bandit-100``: ``bandit-k10-n100`` with the task-reading critic, a GRU 128 policy, a GRU 64
  critic, 50-step rollouts, 16 minibatches and 3 epochs (docs/results/performance.md).

Every row is repeated (``--repeats``, default 5); min and median are reported, with the load
average before and after. Writes JSON to ``--out`` (default
``benchmarks/results/split_networks.json``).
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count=2"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    # First: XLA stops reading its flags at a token it does not parse.
    os.environ["XLA_FLAGS"] = f"{_FLAG} {os.environ.get('XLA_FLAGS', '')}".strip()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

from results_io import write_result  # noqa: E402
from rl2_core import time_update  # noqa: E402
from rl2_throughput import HUGE_TOTAL_STEPS, machine_info  # noqa: E402

from quickstudy.algorithms.rl2 import RL2Config  # noqa: E402

CONFIGS = {
    "default": ("bandit-k5-n10", {}, {}),
    "bandit-100": (
        "bandit-k10-n100",
        {"hidden_size": 128, "critic_hidden_size": 64, "rollout_len": 50, "task_critic": True},
        {"num_minibatches": 16, "num_epochs": 3},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10, help="updates per timed repeat")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/split_networks.json"))
    args = parser.parse_args()
    repeats, updates = (2, 2) if args.quick else (args.repeats, args.updates)
    load_before = os.getloadavg()
    rows = []
    print(f"{'config':<11} {'clip':<12} {'layout':<10} {'ms/update min':>14} {'median':>8} "
          f"{'env steps/s':>12}")  # fmt: skip
    for name in args.configs:
        task, fields, ppo_fields = CONFIGS[name]
        base = RL2Config(total_steps=HUGE_TOTAL_STEPS)
        for per_network in (False, True):
            for split in (False, True):
                ppo = dataclasses.replace(
                    base.ppo, **ppo_fields, clip_per_network=per_network, split_networks=split
                )
                config = dataclasses.replace(base, **fields, ppo=ppo)
                r = time_update(config, task, repeats, updates)
                clip = "per network" if per_network else "global"
                layout = "2 devices" if split else "1 device"
                r |= {"config": name, "task": task, "clip": clip, "layout": layout}
                rows.append(r)
                print(
                    f"{name:<11} {clip:<12} {layout:<10} {r['ms_per_update_min']:>14.2f} "
                    f"{r['ms_per_update_median']:>8.2f} {r['env_steps_per_s_best']:>12.0f}",
                    flush=True,
                )
    for name in args.configs:
        for clip in ("global", "per network"):
            one, two = (r for r in rows if r["config"] == name and r["clip"] == clip)
            speedup = one["ms_per_update_min"] / two["ms_per_update_min"]
            print(f"{name}, {clip} clip: split {speedup:.2f}x one device (min)")
    out = {
        "machine": machine_info(),
        "xla_flags": os.environ["XLA_FLAGS"],
        "repeats": repeats,
        "updates_per_repeat": updates,
        "quick": args.quick,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    write_result(out, "split_networks", args.quick, args.out)


if __name__ == "__main__":
    main()
