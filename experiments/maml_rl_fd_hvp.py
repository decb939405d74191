"""MAML-RL with the authors' finite-difference Hessian-vector product in the TRPO outer step.

cbfinn/maml_rl's ``ConjugateGradientOptimizer`` builds ``FiniteDifferenceHvp(num_slices)``,
which passes ``num_slices`` (1) as ``base_eps``: its products are central differences of the
gradient of the (post-update) KL, ``(∇KL(θ + εv) − ∇KL(θ − εv)) / 2ε`` with
``ε = 1 / ‖θ‖`` — a perturbation of about 0.08·v, not 1e-8. quickstudy's TRPO uses the exact
Gauss–Newton product. This script patches the authors' product into ``quickstudy train
maml-rl`` (over every task of the meta-batch, as theirs) and forwards its arguments:

    python experiments/maml_rl_fd_hvp.py --base-eps 1 -- --task maml-cheetah-dir \\
        --meta-batch-size 40 --episodes-per-task 20 --inner-lr 0.1 --max-kl 0.02 \\
        --total-steps 16000000 --run-dir runs/maml-dir-fdhvp
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from quickstudy import cli
from quickstudy.algorithms import maml_rl
from quickstudy.objectives.trust_region import trust_region_step


def finite_difference_update(base_eps: float):
    """``trust_region_update`` with the authors' finite-difference product of the KL."""

    def update(params, loss_fn, kl_fn, dist_fn, fisher, config):
        del dist_fn, fisher
        flat, unravel = ravel_pytree(params)
        kl_flat = lambda th: kl_fn(unravel(th))  # noqa: E731
        kl_grad = jax.grad(kl_flat)
        eps = base_eps / (jnp.linalg.norm(flat) + 1e-8)

        def fvp(v):
            return (kl_grad(flat + eps * v) - kl_grad(flat - eps * v)) / (2.0 * eps)

        new_flat, info = trust_region_step(
            lambda th: loss_fn(unravel(th)),
            kl_flat,
            flat,
            config.max_kl,
            config.cg_iters,
            config.cg_damping,
            config.backtrack_ratio,
            config.max_backtracks,
            fvp=fvp,
        )
        return unravel(new_flat), info

    return update


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-eps", type=float, default=1.0, help="the authors': 1")
    args = parser.parse_args(argv[:split])
    maml_rl.trust_region_update = finite_difference_update(args.base_eps)
    return cli.main(["train", "maml-rl", *argv[split + 1 :]])


if __name__ == "__main__":
    raise SystemExit(main())
