"""How well can a player do whose memory averages each arm's rewards at a fixed rate?

RL² on the 500-pull bandits still gives up 0.137 per pull in its last 50 pulls, 14x Gittins'
(``experiments/rl2_bandit_settling.py``). A GRU's state moves towards its input by a gate
``z`` per step, so the simplest average it can keep of an arm's rewards is an exponential
moving average, ``m ← m + α (r − m)`` when the arm is pulled, with a rate set by a learned gate
rather than ``1 / (pulls of the arm)``, which would need a count-dependent gate. This script
plays Bernoulli bandits (arm means ~ U[0, 1]) with such fixed-rate players, ε-greedy on the
moving averages with ε tuned on separate trials, against the same player with exact means
(``α = 1 / n_pulls``; unlike the library's ``greedy`` it tries every arm first), and reports the
trial return and the regret per pull in blocks (``rl2_bandit_settling``'s summary). If a
fixed rate caps the late regret near RL²'s, that is where its memory falls short.

    python experiments/bandit_fixed_rate_memory.py [--arms 10] [--pulls 500] [--trials 1000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from rl2_bandit_settling import _blocks

RATES = (0.02, 0.05, 0.1, 0.2, 0.3)
EPSILONS = (0.0, 0.01, 0.02, 0.05, 0.1)


def play(
    probs: np.ndarray, pulls: int, rate: float | None, epsilon: float, seed: int
) -> np.ndarray:
    """Per-pull rewards ``[N, n]`` of ε-greedy play on per-arm averages.

    Args:
        probs: Arm means ``[N, k]``.
        pulls: Pulls per trial ``n``.
        rate: The moving average's rate α; ``None``: exact means (α = 1 / pulls of the arm).
        epsilon: Probability of a uniformly random arm.
        seed: Seed of the rewards, the exploration and the ties.
    """
    rng = np.random.default_rng(seed)
    trials, arms = probs.shape
    est = np.full((trials, arms), 0.5)
    count = np.zeros((trials, arms))
    rewards = np.zeros((trials, pulls))
    rows = np.arange(trials)
    for t in range(pulls):
        noisy = est + 1e-6 * rng.random((trials, arms))  # random tie-break
        arm = np.where(count.min(axis=1) == 0, count.argmin(axis=1), noisy.argmax(axis=1))
        explore = rng.random(trials) < epsilon
        arm = np.where(explore, rng.integers(0, arms, trials), arm)
        r = (rng.random(trials) < probs[rows, arm]).astype(float)
        count[rows, arm] += 1
        step = 1.0 / count[rows, arm] if rate is None else np.maximum(rate, 1.0 / count[rows, arm])
        est[rows, arm] += step * (r - est[rows, arm])
        rewards[:, t] = r
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", type=int, default=10)
    parser.add_argument("--pulls", type=int, default=500)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tune = rng.random((args.trials, args.arms))
    test = rng.random((args.trials, args.arms))
    best = test.max(axis=1)
    rows = []
    for rate in (None, *RATES):
        scores = {e: play(tune, args.pulls, rate, e, 1).sum(axis=1).mean() for e in EPSILONS}
        eps = max(scores, key=scores.get)
        rewards = play(test, args.pulls, rate, eps, 2)
        row = {"rate": rate, "epsilon": eps, **_blocks(rewards, best.mean(), args.blocks)}
        rows.append(row)
        name = "exact mean" if rate is None else f"α = {rate}"
        first, last = row["blocks"][0]["regret"], row["blocks"][-1]["regret"]
        print(
            f"{name:>11}  ε = {eps:<4}  {row['trial_return']:7.2f} ± {row['stderr']:.2f}"
            f"  regret first block {first:.3f}  last block {last:.3f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"arms": args.arms, "pulls": args.pulls, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
