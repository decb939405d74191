"""Where a MAML-RL meta-iteration on a host-stepped MuJoCo task spends its time.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 0 python experiments/maml_rl_update_profile.py [--task T] [--updates N] \\
        [--cg-iters K]

Builds MAML-RL as the ``maml-locomotion`` table configures it on ``--task`` (on cheetah-dir the
authors' 40 tasks x 20 episodes, α = 0.1, KL ≤ 0.02), runs one warm-up meta-iteration
(compilation), then times ``--updates`` more. It
prints the seconds per meta-iteration, the part spent collecting episodes (physics and the
policy in the loop), the rest (processing, inner step, the second-order TRPO step), env steps/s,
and the top of a ``cProfile`` listing. ``--cg-iters`` changes the conjugate-gradient iterations
(each one Fisher-vector product through the inner step), to see what they cost. An experiment,
not a benchmark: one row, no baseline.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time

import jax

import quickstudy.algorithms.maml_rl as maml_rl
from quickstudy.algorithms import registry
from quickstudy.presets.maml_tables import MAML_LOCOMOTION
from quickstudy.reproduce.engine import method_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", default="maml-cheetah-dir", choices=[c.task for c in MAML_LOCOMOTION.cells]
    )
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--cg-iters", type=int, default=10)
    args = parser.parse_args()

    collecting = {"seconds": 0.0}
    sample = maml_rl.host_sample_episodes

    def timed_sample(*a, **k):
        t0 = time.perf_counter()
        out = jax.block_until_ready(sample(*a, **k))
        collecting["seconds"] += time.perf_counter() - t0
        return out

    maml_rl.host_sample_episodes = timed_sample
    cell = MAML_LOCOMOTION.cell(args.task)
    config = method_config(MAML_LOCOMOTION, cell, "maml", cell.budget or MAML_LOCOMOTION.budget)
    trust = dataclasses.replace(config.trust_region, cg_iters=args.cg_iters)
    config = dataclasses.replace(config, trust_region=trust)
    algo = registry.build("maml-rl", args.task, config)
    state = algo.init(jax.random.key(0))
    state, _ = jax.block_until_ready(algo.update(state))  # compiles
    collecting["seconds"] = 0.0
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    for _ in range(args.updates):
        state, _ = jax.block_until_ready(algo.update(state))
    profile.disable()
    total = (time.perf_counter() - t0) / args.updates
    collect = collecting["seconds"] / args.updates
    print(
        f"{args.task}, {args.cg_iters} CG iterations: {total:.2f} s per meta-iteration; "
        f"collecting {collect:.2f} s, "
        f"the rest (processing, inner step, TRPO) {total - collect:.2f} s; "
        f"{algo.steps_per_update / total:,.0f} env steps/s"
    )
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
