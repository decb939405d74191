"""A freshly initialised MAML-RL policy stepped by plain policy gradient (the authors' test steps).

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        python experiments/maml_rl_random_init_step.py --task maml-cheetah-dir --inner-lr 1.0

A calibration that needs no meta-learning: the authors' result pickles (``cbfinn/maml_rl``,
``icml/icml_cheetahdirec_results_*.pkl``) hold a "random" row, a fresh Xavier-initialised
policy stepped by their test script with α = 1.0, then α/2. The same here (the meta-test's
inner steps: baseline fit, standardised advantages, one policy-gradient step on all
parameters) on the held-out tasks, prints the mean return after 0..k steps.
Findings: docs/results/mujoco.md (MAML's locomotion table).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.algorithms.maml_rl import MAMLRLConfig
from quickstudy.envs.mujoco.physics import MujocoBatch


def _patch_physics(explicit_damping: bool, solver: str | None) -> None:
    """Every MujocoBatch built from now on uses these physics options."""
    import mujoco

    built = MujocoBatch.__post_init__

    def post_init(self):
        built(self)
        if explicit_damping:
            self.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_EULERDAMP
        if solver:
            self.model.opt.solver = getattr(mujoco.mjtSolver, f"mjSOL_{solver.upper()}")

    MujocoBatch.__post_init__ = post_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="maml-cheetah-dir")
    parser.add_argument("--inner-lr", type=float, default=1.0)
    parser.add_argument("--later-scale", type=float, default=0.5)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task and step")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--explicit-damping",
        action="store_true",
        help="integrate joint damping explicitly (MuJoCo's eulerdamp off), as old MuJoCo may have",
    )
    parser.add_argument(
        "--solver", choices=("newton", "cg", "pgs"), help="MuJoCo's constraint solver (3.3: newton)"
    )
    args = parser.parse_args()
    if args.explicit_damping or args.solver:
        _patch_physics(args.explicit_damping, args.solver)

    config = MAMLRLConfig(
        inner_lr=args.inner_lr,
        test_later_lr_scale=args.later_scale,
        test_episodes=args.episodes,
    )
    algo = registry.build("maml-rl", args.task, config)
    for seed in args.seeds:
        params = jax.jit(algo.init)(jax.random.key(seed)).params
        result = runner.meta_test(algo, params, args.steps, args.tasks, seed)
        returns = np.asarray(result.values)  # [tasks, steps + 1]
        mean, se = returns.mean(axis=0), returns.std(axis=0) / np.sqrt(len(returns))
        cells = " / ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, se, strict=True))
        print(f"seed {seed}, α {args.inner_lr} then ×{args.later_scale}: {cells}")


if __name__ == "__main__":
    main()
