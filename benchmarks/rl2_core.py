"""The RL² update against the machine's matmul roofline, with the old recurrent core beside it.

    .venv/bin/python benchmarks/rl2_core.py            # about 3 minutes on 2 idle cores
    .venv/bin/python benchmarks/rl2_core.py --quick    # smoke run; figures not for quoting
    .venv/bin/python benchmarks/rl2_core.py --split    # plus the networks on two devices

In one run, on one machine:

* **roofline**: a jitted ``jnp.dot`` of 1024² and 2048² float32 matrices on all cores, the
  best GFLOP/s of several repeats;
* **RL² updates** (collect + PPO, ``jax.jit(make_rl2(...).update)``, compilation excluded) of
  the default configuration (``bandit-k5-n10``, GRU 64, separate critic core) and of GRU 256,
  each with the current core (:func:`quickstudy.networks.recurrent.gru_sequence`: gate inputs as
  separate arrays, hand-written backward pass) and with the core as it was before (the textbook
  cell reading one ``[T, B, 3H]`` scanned array, JAX's own derivative), patched in for the row;
  with ``--split`` also the current core with ``split_networks`` (the policy's and the critic's
  gradients on two devices, :mod:`quickstudy.learners.split`; the script then splits the CPU
  into two devices, which the one-device rows do not use).

The fraction of roofline counts the matrix products of the model: per environment step and
core, ``2·(D·3H + H·3H)`` FLOPs forward (input and recurrent projections) plus the heads; the
update runs the network forward once to collect and ``epochs`` times forward and backward
(backward = 2 × forward) in PPO. Element-wise work is not counted, so this is the share of
the machine's matmul rate that the update turns into model FLOPs.

Every row is repeated (``--repeats``, default 5); min and median are reported, with the load
average before and after. Writes JSON to ``--out`` (default ``benchmarks/results/rl2_core.json``).
"""

from __future__ import annotations

import os
import sys

if "--split" in sys.argv:  # two CPU devices, set before JAX starts; first in XLA_FLAGS
    os.environ["XLA_FLAGS"] = (
        "--xla_force_host_platform_device_count=2 " + os.environ.get("XLA_FLAGS", "")
    ).strip()

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from results_io import write_result
from rl2_throughput import HUGE_TOTAL_STEPS, machine_info

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.networks import recurrent


def old_gru_sequence(w_h, b_h, g_r, g_z, g_n, start, h0):
    """The core before this benchmark's change: one scanned ``[T, B, 3H]`` array, autodiff."""
    H = w_h.shape[0]
    gi = jnp.concatenate([g_r, g_z, g_n], -1)

    def cell(h_tm1, inputs):
        gi_t, start_t = inputs
        h_tm1 = jnp.where(start_t[:, None], 0.0, h_tm1)
        gh_t = h_tm1 @ w_h + b_h
        r = jax.nn.sigmoid(gi_t[:, :H] + gh_t[:, :H])
        z = jax.nn.sigmoid(gi_t[:, H : 2 * H] + gh_t[:, H : 2 * H])
        n = jnp.tanh(gi_t[:, 2 * H :] + r * gh_t[:, 2 * H :])
        h_t = (1.0 - z) * n + z * h_tm1
        return h_t, h_t

    return jax.lax.scan(cell, h0, (gi, start))


def roofline(repeats: int) -> dict[str, Any]:
    out = {}
    for n in (1024, 2048):
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        dot = jax.jit(jnp.dot)
        dot(a, a).block_until_ready()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(5):
                c = dot(a, a)
            c.block_until_ready()
            times.append((time.perf_counter() - t0) / 5)
        out[f"dot_{n}"] = {
            "gflops_best": 2 * n**3 / min(times) / 1e9,
            "gflops_median": 2 * n**3 / float(np.median(times)) / 1e9,
        }
    out["gflops"] = max(v["gflops_best"] for v in out.values())
    return out


def model_flops_per_update(rl2, config: RL2Config) -> float:
    """Matrix-product FLOPs of the network in one update (see the module docstring)."""
    state = rl2.init(jax.random.key(0))
    D = int(state.rollout.obs.shape[-1])
    A = rl2.parts["network"].action_dim
    H, Hc = config.hidden_size, config.critic_hidden_size or config.hidden_size
    per_step = 2 * (D * 3 * H + H * 3 * H) + 2 * H * A
    per_step += 2 * (D * 3 * Hc + Hc * 3 * Hc) + 2 * Hc if config.separate_critic else 2 * H
    steps = rl2.steps_per_update
    return steps * per_step * (1 + 3 * config.ppo.num_epochs)


def time_update(config: RL2Config, task: str, repeats: int, updates: int) -> dict[str, Any]:
    rl2 = make_rl2(config, task_registry.make(task))
    state = rl2.init(jax.random.key(0))
    t0 = time.perf_counter()
    update = jax.jit(rl2.update).lower(state).compile()
    compile_s = time.perf_counter() - t0
    s, m = update(state)
    jax.block_until_ready((s, m))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(updates):
            s, m = update(s)
        jax.block_until_ready((s, m))
        times.append((time.perf_counter() - t0) / updates)
    flops = model_flops_per_update(rl2, config)
    return {
        "compile_s": compile_s,
        "ms_per_update_min": 1e3 * min(times),
        "ms_per_update_median": 1e3 * float(np.median(times)),
        "env_steps_per_s_best": rl2.steps_per_update / min(times),
        "env_steps_per_s_median": rl2.steps_per_update / float(np.median(times)),
        "model_gflop_per_update": flops / 1e9,
        "model_gflops_best": flops / min(times) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--split",
        action="store_true",
        help="also time the current core with the policy's and the critic's gradients on two "
        "devices (split_networks; the script splits the CPU into two devices)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10, help="updates per timed repeat")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rl2_core.json"))
    args = parser.parse_args()
    repeats, updates = (2, 2) if args.quick else (args.repeats, args.updates)
    load_before = os.getloadavg()
    roof = roofline(repeats)
    print(f"matmul roofline: {roof['gflops']:.0f} GFLOP/s (jnp.dot 1024², 2048², best)")
    sizes = [64] if args.quick else [64, 256]
    rows = []
    current = recurrent.gru_sequence
    print(f"{'row':<41} {'ms/update min':>14} {'median':>8} {'env steps/s':>12} {'roofline':>9}")
    for H in sizes:
        config = dataclasses.replace(RL2Config(total_steps=HUGE_TOTAL_STEPS), hidden_size=H)
        variants = [("before (textbook cell, autodiff)", old_gru_sequence, config)]
        variants.append(("now", current, config))
        if args.split:
            split = dataclasses.replace(config.ppo, split_networks=True)
            variants.append(
                ("now, split networks", current, dataclasses.replace(config, ppo=split))
            )
        for core, fn, cfg in variants:
            recurrent.gru_sequence = fn
            try:
                r = time_update(cfg, "bandit-k5-n10", repeats, updates)
            finally:
                recurrent.gru_sequence = current
            r |= {"hidden_size": H, "core": core, "roofline_fraction": 0.0}
            r["roofline_fraction"] = r["model_gflops_best"] / roof["gflops"]
            rows.append(r)
            print(
                f"GRU {H:<4} {core:<32} {r['ms_per_update_min']:>14.2f} "
                f"{r['ms_per_update_median']:>8.2f} {r['env_steps_per_s_best']:>12.0f} "
                f"{100 * r['roofline_fraction']:>8.1f}%",
                flush=True,
            )
    for H in sizes:
        before, *later = (r for r in rows if r["hidden_size"] == H)
        for r in later:
            speedup = before["ms_per_update_min"] / r["ms_per_update_min"]
            print(f"GRU {H}, {r['core']}: {speedup:.2f}x faster update than before")
    out = {
        "machine": machine_info(),
        "task": "bandit-k5-n10",
        "repeats": repeats,
        "updates_per_repeat": updates,
        "quick": args.quick,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "roofline": roof,
        "rows": rows,
    }
    write_result(out, "rl2_core", args.quick, args.out)


if __name__ == "__main__":
    main()
