"""SNAIL's training update against RL²'s, and the maze environments' step rate.

    .venv/bin/python benchmarks/snail_speed.py            # a few minutes on one idle core
    .venv/bin/python benchmarks/snail_speed.py --quick    # smoke run; figures not for quoting
    .venv/bin/python benchmarks/snail_speed.py --sections long   # the long-trial rows only

In one run, on one machine:

* **updates** (collect + PPO, ``jax.jit(algo.update)``, compilation excluded) of RL² (the
  default GRU 64 with its separate critic core, the plain baseline) and of SNAIL (the default
  ``tc attention tc attention`` at 32 filters, and two lighter networks) on ``bandit-k5-n10``
  (trials of 10 steps) and ``bandit-k10-n100`` (100 steps), reported as env steps per second;
* **maze steps**: a jitted ``lax.scan`` of random actions in 128 mazes, symbolic and
  ray-cast RGB views, env steps per second;
* **long trials**: updates of SNAIL's ``mdp`` preset on the tabular MDPs of n = 50, 75 and 100
  episodes (trials of 500-1000 steps), with the caches written in place (the library) and, the
  plain baseline, with the dependency that lets XLA do so removed (``snail._after`` replaced by
  the identity: the code before 2026-12-07, which copied every cache at every step).

Each row is repeated (``--repeats``, default 3; min and median of the seconds per update) with
the load average before and after. Writes JSON to ``--out`` (default
``benchmarks/results/snail_speed.json``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from results_io import write_result
from rl2_throughput import HUGE_TOTAL_STEPS, machine_info

from quickstudy import tasks
from quickstudy.algorithms import registry
from quickstudy.networks import snail
from quickstudy.presets import snail as snail_presets

NETWORKS = {
    "rl2 (GRU 64)": ("rl2", {}),
    "snail (tc attention tc attention, 32)": ("snail", {}),
    "snail (tc attention tc attention, 16)": (
        "snail",
        {"filters": 16, "key_size": 16, "value_size": 16},
    ),
    "snail (tc attention, 32)": ("snail", {"blocks": ("tc", "attention")}),
}

SECTIONS = ("updates", "mazes", "long")


def _update_row(name: str, overrides: dict, task: str, repeats: int, quick: bool) -> dict:
    overrides = {**overrides, "total_steps": HUGE_TOTAL_STEPS}
    if quick:
        overrides["num_envs"] = 16
    algo = registry.build(name, task, registry.get(name).config(task, overrides=overrides))
    update = jax.jit(algo.update)
    state = jax.jit(algo.init)(jax.random.key(0))
    state, _ = update(state)
    jax.block_until_ready(state)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, _ = update(state)
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - start)
    best, median = min(seconds), float(np.median(seconds))
    return {
        "steps_per_update": algo.steps_per_update,
        "seconds_min": best,
        "seconds_median": median,
        "env_steps_per_s_best": algo.steps_per_update / best,
        "env_steps_per_s_median": algo.steps_per_update / median,
    }


def _long_trial_rows(repeats: int, quick: bool) -> dict:
    rows, in_place = {}, snail._after
    for n in (50, 75, 100):
        task = f"mdp-s10-a5-n{n}"
        for label, after in (("copied", lambda read, update: update), ("in place", in_place)):
            snail._after = after
            try:
                row = _update_row("snail", snail_presets.MDP.overrides, task, repeats, quick)
            finally:
                snail._after = in_place
            rows[f"{task} / {label}"] = row
            print(  # noqa: T201
                f"{task:16s} snail mdp preset, caches {label:8s} "
                f"{row['env_steps_per_s_best']:>10,.0f} env steps/s "
                f"(median {row['env_steps_per_s_median']:,.0f})"
            )
    return rows


def _maze_row(task: str, repeats: int, quick: bool) -> dict:
    dist = tasks.make(task)
    env, batch, steps = dist.env, 16 if quick else 128, 20 if quick else 100
    params = dist.sample(jax.random.key(0), batch)

    @jax.jit
    def run(key):
        state, _ = jax.vmap(env.reset)(jax.random.split(key, batch), params)

        def body(state, key):
            k_act, k_env = jax.random.split(key)
            action = jax.random.randint(k_act, (batch,), 0, 3)
            state, ts = jax.vmap(env.step)(jax.random.split(k_env, batch), state, action, params)
            return state, ts.reward.sum() + ts.obs.sum()  # the frames are used: not elided

        return jax.lax.scan(body, state, jax.random.split(key, steps))[1].sum()

    jax.block_until_ready(run(jax.random.key(1)))
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(jax.random.key(2 + i)))
        seconds.append(time.perf_counter() - start)
    best, median = min(seconds), float(np.median(seconds))
    return {
        "mazes": batch,
        "env_steps": batch * steps,
        "env_steps_per_s_best": batch * steps / best,
        "env_steps_per_s_median": batch * steps / median,
    }


def _updates(repeats: int, quick: bool) -> dict:
    rows = {}
    for task in ("bandit-k5-n10", "bandit-k10-n100"):
        for label, (name, overrides) in NETWORKS.items():
            row = _update_row(name, overrides, task, repeats, quick)
            rows[f"{task} / {label}"] = row
            print(  # noqa: T201
                f"{task:16s} {label:40s} {row['env_steps_per_s_best']:>10,.0f} env steps/s "
                f"(median {row['env_steps_per_s_median']:,.0f})"
            )
    return rows


def _mazes(repeats: int, quick: bool) -> dict:
    rows = {}
    for task in ("maze-small-symbolic", "maze-small", "maze-large"):
        row = _maze_row(task, repeats, quick)
        rows[task] = row
        print(  # noqa: T201
            f"{task:20s} random actions in {row['mazes']} mazes: "
            f"{row['env_steps_per_s_best']:>10,.0f} "
            f"env steps/s (median {row['env_steps_per_s_median']:,.0f})"
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        help="which rows to run (default: all)",
    )
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    record: dict[str, Any] = {"machine": machine_info(), "load_before": os.getloadavg()}
    if "updates" in args.sections:
        record["updates"] = _updates(repeats, args.quick)
    if "mazes" in args.sections:
        record["mazes"] = _mazes(repeats, args.quick)
    if "long" in args.sections:
        record["long_trials"] = _long_trial_rows(repeats, args.quick)
    record["load_after"] = os.getloadavg()
    write_result(record, "snail_speed", args.quick, args.out)
    return record


if __name__ == "__main__":
    main()
