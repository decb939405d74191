"""The Random row of SNAIL's maze table (Table 5) on our mazes, until ``reproduce snail-mazes``.

    .venv/bin/python experiments/maze_random.py

Uniform actions (:func:`quickstudy.evaluation.random_play.random_play`) on the 100 held-out
mazes of each size, one trial of 2 episodes each; prints the steps to the goal per episode (a
failure counts the cap: 250 small, 500 large) and the success rate, beside the paper's Random.
"""

from __future__ import annotations

import numpy as np

from quickstudy import tasks
from quickstudy.evaluation.random_play import random_play

PAPER = {"maze-small": (188.6, 187.7), "maze-large": (420.2, 420.8)}


def main() -> None:
    for name, paper in PAPER.items():
        res = random_play(tasks.make(name), seed=0)
        lengths, success = np.asarray(res.extras["lengths"]), np.asarray(res.success)
        se = lengths.std(0, ddof=1) / np.sqrt(lengths.shape[0])
        cells = ", ".join(
            f"episode {k + 1}: {lengths[:, k].mean():.1f} ± {se[k]:.1f} steps "
            f"({success[:, k].mean():.0%} reach the goal; paper {paper[k]})"
            for k in range(2)
        )
        print(f"{name}: {cells}")  # noqa: T201


if __name__ == "__main__":
    main()
