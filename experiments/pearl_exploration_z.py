"""PEARL's meta-test with more exploration episodes than the run was trained to use.

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        python experiments/pearl_exploration_z.py runs/pearl-pr --exploration 1 2 3

Meta-tests a trained PEARL run on its held-out tasks with ``exploration_episodes`` replaced,
``E + 2`` episodes per trial (E acted with the prior's z, then two with the posterior's), and
prints the mean return of each episode and the share of tasks whose last episode succeeds.
Written to compare one prior z for all exploration episodes with a fresh one per episode, as
the authors' meta-test draws (docs/results/pearl.md).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from quickstudy import runner
from quickstudy.algorithms import registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--exploration", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tasks", type=int, default=0, help="held-out tasks (0: the task's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    run = runner.open_run(args.run_dir)
    state, update = runner.restore_latest(run)
    for explore in args.exploration:
        config = dataclasses.replace(run.algo.config, exploration_episodes=explore)
        algo = registry.build(run.algo_name, run.task_name, config)
        result = runner.meta_test(algo, state.params, explore + 2, args.tasks, args.seed)
        values = np.asarray(result.values)
        mean, se = values.mean(0), values.std(0) / np.sqrt(len(values))
        cells = " / ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, se, strict=True))
        reached = (
            ""
            if result.success is None
            else f", last episode reached {np.asarray(result.success)[:, -1].mean():.0%}"
        )
        print(f"update {update}, {explore} exploration episode(s): {cells}{reached}")


if __name__ == "__main__":
    main()
