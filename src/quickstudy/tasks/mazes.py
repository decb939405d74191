"""Maze navigation task distributions: a fixed set of training mazes, unseen test mazes.

``maze-small`` (5 × 5 cells, episodes capped at 250 steps) and ``maze-large`` (9 × 9 cells, 500
steps) as in RL²'s visual navigation (Duan et al. 2016, §4.3) and SNAIL's Table 5; each in the
first-person ``rgb`` view and the ``-symbolic`` egocentric view. A trial is 2 episodes in one
maze with one goal and start. Meta-training draws one of 1000 fixed mazes (seeded) with a fresh
goal, start and heading; the meta-test holds 100 other mazes with fixed placements. All four
distributions are tasks of one environment per view, so a policy trained on small mazes is
meta-tested on large ones with ``quickstudy evaluate RUN --task maze-large``.
"""

from __future__ import annotations

import functools

import jax

from quickstudy.envs.maze import Maze, maze_set, sample_from_mazes
from quickstudy.tasks.distribution import TaskDistribution

SIZES = {"small": (5, 250), "large": (9, 500)}
"""Maze kind -> (cells a side, episode cap)."""

NUM_TRAIN, NUM_TEST = 1000, 100
_TRAIN_SEED, _TEST_SEED = 2016, 2018
ENVS = {view: Maze(cells=9, horizon=500, view=view) for view in ("rgb", "symbolic")}
"""One environment per view, shared by the small and large mazes."""


@functools.cache
def _mazes(kind: str, split: str):
    size, cap = SIZES[kind]
    seed = _TRAIN_SEED if split == "train" else _TEST_SEED
    key = jax.random.fold_in(jax.random.key(seed), size)
    return maze_set(key, NUM_TRAIN if split == "train" else NUM_TEST, size, ENVS["rgb"].cells, cap)


def maze_tasks(kind: str, view: str) -> TaskDistribution:
    """The ``kind`` (``small``/``large``) mazes in ``view`` (``rgb``/``symbolic``)."""
    size, cap = SIZES[kind]
    walls = _mazes(kind, "train").walls
    name = f"maze-{kind}" + ("-symbolic" if view == "symbolic" else "")
    seen = (
        "first-person 40x30 RGB (ray cast)"
        if view == "rgb"
        else "egocentric 5x5 window (wall, goal)"
    )
    return TaskDistribution(
        name=name,
        env=ENVS[view],
        description=(
            f"Random perfect mazes of {size}x{size} cells, {seen}; turn left/right, forward; "
            f"{NUM_TRAIN} training mazes (fresh goal and start per trial), {NUM_TEST} unseen "
            f"test mazes; 2 episodes of at most {cap} steps per trial (RL², SNAIL)."
        ),
        reward="+1 at the goal (episode ends), -0.001 per step, -0.01 per bump into a wall",
        episodes=2,
        sampler=functools.partial(sample_from_mazes, walls=walls, size=size, max_steps=cap),
        test_set=_mazes(kind, "test"),
        num_test=NUM_TEST,
    )


FACTORIES = {
    f"maze-{kind}" + ("-symbolic" if view == "symbolic" else ""): functools.partial(
        maze_tasks, kind, view
    )
    for kind in SIZES
    for view in ("rgb", "symbolic")
}
