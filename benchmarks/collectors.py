"""Collection throughput: the lax.scan collector vs the host collector on nav2d, one run.

The same RL² policy (``RL2Config`` defaults: GRU 64 with a separate GRU 64 critic, the same
parameters) collects ``num_envs x steps`` transitions of 2-episode nav2d trials through

* **scan**: ``jax.jit`` of :func:`quickstudy.rollout.scan.unroll` on the JAX ``Trial(nav2d)``:
  the whole collection is one compiled program;
* **host**: :func:`quickstudy.rollout.host.host_unroll` on ``HostTrial(nav2d-numpy)``: NumPy
  environments stepped on the host, one jitted policy call per step for the whole batch, the full
  :class:`~quickstudy.types.Transition` recorded (as a learner needs it);
* **plain loop** (the baseline, 1.0x): the simplest host loop with the same jitted policy step and
  the same NumPy environments, recording nothing (no transitions, no bootstrap values, no task
  resampling bookkeeping): the lower bound of any host loop around this policy.

Compile time is excluded (one warm-up call). Each row is repeated ``--repeats`` times; min and
median are reported, with the 1-minute load average before and after.

Usage::

    .venv/bin/python benchmarks/collectors.py             # full run (about a minute)
    .venv/bin/python benchmarks/collectors.py --quick     # smoke run

Writes JSON to ``--out`` (default ``benchmarks/results/collectors.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.rollout.host import (
    host_unroll,
    init_host_rollout,
    make_host_actor,
    numpy_rng,
    step_keys,
)
from quickstudy.rollout.scan import init_rollout, unroll
from quickstudy.tasks.trial import HostTrial


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench(num_envs: int, steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Steps/s of the three collectors for one batch size."""
    jax_tasks = task_registry.make("nav2d")
    host_tasks = task_registry.make("nav2d-numpy")
    config = RL2Config(num_envs=num_envs)
    algo = make_rl2(config, jax_tasks)
    policy, env = algo.parts["policy"], algo.parts["env"]
    params = jax.jit(policy.init)(jax.random.key(0))
    host_env = HostTrial(host_tasks.env, jax_tasks.episodes)
    sample = jax.jit(jax_tasks.sample, static_argnums=1)
    actor = make_host_actor(policy)
    keys = iter(jax.random.split(jax.random.key(1), 1000))

    state = init_rollout(next(keys), env, jax_tasks.sample, policy, num_envs)
    collect = jax.jit(lambda k, s: unroll(k, s, params, policy, env, sample, steps))

    def scan_run():
        nonlocal state
        state, traj = collect(next(keys), state)
        jax.block_until_ready(traj)

    host_state = init_host_rollout(next(keys), host_env, sample, policy, num_envs)

    def host_run():
        nonlocal host_state
        host_state, traj = host_unroll(
            next(keys), host_state, params, actor, host_env, sample, steps
        )
        jax.block_until_ready(traj)

    tasks = jax.device_get(sample(next(keys), num_envs))
    rng = np.random.default_rng(0)
    env_state, ts = host_env.reset(rng, tasks)
    carry = policy.init_carry(num_envs)
    start = np.ones((num_envs,), bool)

    def plain_run():
        nonlocal env_state, ts, carry
        obs = ts.obs
        for key in step_keys(next(keys), steps):
            carry, action, _, _, seeds, _ = actor.act(params, carry, obs, start, key)
            env_state, ts = host_env.step(
                numpy_rng(np.asarray(seeds)[0]), env_state, np.asarray(action), tasks
            )
            obs = ts.obs
            if ts.terminated.all():
                env_state, ts = host_env.reset(rng, tasks)
                obs = ts.obs

    rows = {}
    for name, fn in (("plain loop", plain_run), ("host", host_run), ("scan", scan_run)):
        fn()  # compile and warm up
        seconds = _time(fn, repeats)
        rows[name] = {
            "steps_per_s_best": num_envs * steps / min(seconds),
            "steps_per_s_median": num_envs * steps / statistics.median(seconds),
            "seconds": seconds,
        }
    base = rows["plain loop"]["steps_per_s_median"]
    for row in rows.values():
        row["vs_plain_loop"] = row["steps_per_s_median"] / base
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--steps", type=int, default=200, help="steps per collection (a trial)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="16 and 128 envs, 50 steps, 2 repeats")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.steps, args.repeats = [16, 128], 50, 2
    out = args.out or Path("benchmarks/results") / (
        "collectors_quick.json" if args.quick else "collectors.json"
    )
    load_before = os.getloadavg()[0]
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, jax {jax.__version__}; "
        f"load before {load_before:.2f}"
    )
    results = {}
    print(f"{'envs':>5} {'collector':>11} {'steps/s (best)':>15} {'(median)':>10} {'vs plain':>9}")
    for n in args.num_envs:
        rows = bench(n, args.steps, args.repeats)
        results[str(n)] = rows
        for name, row in rows.items():
            print(
                f"{n:>5} {name:>11} {row['steps_per_s_best']:>15,.0f} "
                f"{row['steps_per_s_median']:>10,.0f} {row['vs_plain_loop']:>8.2f}x"
            )
    load_after = os.getloadavg()[0]
    print(f"load after {load_after:.2f}")
    record = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "jax": jax.__version__,
        "settings": {"steps": args.steps, "repeats": args.repeats, "policy": "RL2Config()"},
        "load_average_1m": {"before": load_before, "after": load_after},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
