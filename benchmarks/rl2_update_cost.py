"""Where an RL² update's time goes: collection against PPO, for several PPO batch shapes.

On ``mdp-s10-a5-n25`` with the settings of the best tabular-MDP runs in ``docs/results/rl2.md``
(GRU 256 policy core, critic core 64, ReLU head 256, task-informed critic, reward prediction,
25-step rollouts), this times, in one run on one machine:

* the **default shape** (128 trials per update, 4 epochs x 4 minibatches): the baseline every
  other row is compared with;
* variants that spend the same compute differently: fewer epochs (more environment steps per
  second, fewer gradient steps per step), more minibatches or fewer trials per update (more,
  smaller gradient steps).

For each: the jitted update (collect + PPO) and the same collection alone, via
``rl2_throughput.bench_quickstudy``; the PPO share is their difference, divided by the gradient
steps of one update to give the cost of a gradient step. Compilation is excluded.

Usage::

    .venv/bin/python benchmarks/rl2_update_cost.py            # about 3 minutes on 2 idle cores
    .venv/bin/python benchmarks/rl2_update_cost.py --quick    # smoke run, < 1 minute

Writes JSON (machine, settings, all figures) to ``--out``; default
``benchmarks/results/rl2_update_cost.json`` (``rl2_update_cost_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
from rl2_throughput import HUGE_TOTAL_STEPS, bench_quickstudy, machine_info

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.types import replace_nested

TASK = "mdp-s10-a5-n25"
BASE = RL2Config(
    total_steps=HUGE_TOTAL_STEPS,
    hidden_size=256,
    critic_hidden_size=64,
    head_hidden_size=256,
    task_critic=True,
    reward_coef=3.0,
    rollout_len=25,
)
# (label, overrides of BASE, nested like the config); the first row is the baseline.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default: 128 trials, 4 epochs x 4 minibatches", {}),
    ("2 epochs", {"ppo": {"num_epochs": 2}}),
    ("1 epoch", {"ppo": {"num_epochs": 1}}),
    ("8 minibatches", {"ppo": {"num_minibatches": 8}}),
    ("64 trials per update", {"num_envs": 64}),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: GRU 32, 1 update")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    parser.add_argument("--updates", type=int, default=None, help="timed updates (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.updates is None:
        args.updates = 1 if args.quick else 10
    if args.out is None:
        stem = "rl2_update_cost_quick" if args.quick else "rl2_update_cost"
        args.out = Path("benchmarks/results") / f"{stem}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = dataclasses.replace(BASE, hidden_size=32, head_hidden_size=32) if args.quick else BASE
    info = machine_info()
    load_before = os.getloadavg()
    started = time.time()
    print(f"machine: {info['platform']}, {info['cpu_count']} CPUs, jax {info['jax']}")
    print(f"task {TASK}, GRU {base.hidden_size}, {args.updates} timed updates per row")
    columns = ("steps/s", "ms/update", "collect ms", "ms/grad step")
    print(f"{'variant':<46} " + " ".join(f"{c:>12}" for c in columns))
    tasks, rows = task_registry.make(TASK), []
    for label, overrides in VARIANTS:
        config = replace_nested(base, overrides)
        rl2 = make_rl2(config, tasks)
        state = rl2.init(jax.random.key(args.seed))
        result = bench_quickstudy(rl2, state, args.updates, args.seed)
        per_update = result["train"]["seconds_per_update"]
        collect = result["rollout"]["seconds_per_unroll"]
        grad_steps = config.ppo.num_epochs * config.ppo.num_minibatches
        row = {
            "variant": label,
            "overrides": overrides,
            "steps_per_update": rl2.steps_per_update,
            "grad_steps_per_update": grad_steps,
            "steps_per_s": result["train"]["steps_per_s"],
            "ms_per_update": 1e3 * per_update,
            "collect_ms_per_update": 1e3 * collect,
            "ms_per_grad_step": 1e3 * (per_update - collect) / grad_steps,
            "raw": result,
        }
        rows.append(row)
        print(
            f"{label:<46} {row['steps_per_s']:>12.0f} {row['ms_per_update']:>12.0f} "
            f"{row['collect_ms_per_update']:>12.0f} {row['ms_per_grad_step']:>12.1f}",
            flush=True,
        )
    baseline = rows[0]["steps_per_s"]
    for row in rows:
        row["steps_per_s_vs_default"] = row["steps_per_s"] / baseline
    out = {
        "machine": info,
        "task": TASK,
        "config": dataclasses.asdict(base),
        "updates": args.updates,
        "quick": args.quick,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "started_unix": started,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
