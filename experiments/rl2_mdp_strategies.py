"""What RL²'s MDP plateau corresponds to: simple strategies on the held-out tabular MDPs.

Plays, on the same 1000 held-out MDPs that ``quickstudy train rl2`` meta-tests on, two one-step
(myopic) players that re-plan after every step:

- ``pooled``: greedy in each action's posterior-mean reward pooled over *all* states (a bandit
  strategy that ignores the state it is in);
- ``per-state``: greedy in the current state's posterior-mean rewards.

Both use the task distribution's own reward prior, N(1, 1), or an optimistic prior mean.
RL² trained here levels off at the pooled player's score; the per-state one scores above the
paper's RL². Prints a table and writes JSON::

    python experiments/rl2_mdp_strategies.py --out runs/mdp-strategies.json
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import numpy as np

from quickstudy import tasks
from quickstudy.algorithms import mdp_baselines as mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[10, 25])
    parser.add_argument("--prior-means", type=float, nargs="+", default=[1.0, 1.5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = []
    for n in args.episodes:
        dist = tasks.make(f"mdp-s10-a5-n{n}")
        test = dist.test_tasks()
        horizon = dist.env.horizon
        for mu0 in args.prior_means:
            prior = mb.Prior(alpha0=1.0, mu0=mu0, tau0=1.0, tau=1.0)
            players = {
                "pooled": functools.partial(mb.plan_pooled_myopic, prior=prior),
                "per-state": mb.plan_myopic,
            }
            for name, plan in players.items():
                t0 = time.perf_counter()
                rng = np.random.default_rng(args.seed)
                returns = mb.play(rng, test, horizon, plan, 0.0, n, prior, every_step=True)
                total = returns.sum(-1)
                rows.append(
                    dict(
                        task=dist.name,
                        player=name,
                        prior_mean=mu0,
                        mean=float(total.mean()),
                        se=float(total.std(ddof=1) / np.sqrt(len(total))),
                        trials=len(total),
                        seconds=time.perf_counter() - t0,
                    )
                )
    for r in rows:
        print(
            f"{r['task']:16s} {r['player']:10s} prior mean {r['prior_mean']:.1f}: "
            f"{r['mean']:7.1f} ± {r['se']:.1f}  ({r['trials']} trials)"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
