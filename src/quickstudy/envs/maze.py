"""Random perfect mazes seen first-person, for in-context navigation (RL² §4.3; SNAIL §5.2).

A maze of ``n × n`` cells is a uniform-weight random spanning tree of the cell grid (Prim's
algorithm on random edge weights), drawn on a block grid of ``2n + 1`` blocks a side: cells and
opened passages are floor, everything else wall. The agent stands on a floor block facing one
of four headings and acts with three discrete actions: turn left, turn right, move forward.
A trial keeps the maze, the goal and the start for all its episodes, so an agent that found the
goal in episode 1 can walk straight back to it in episode 2.

Two views of the same maze:

* ``rgb``: a first-person image rendered by a ray caster written in JAX (one ray per pixel
  column through the block grid; walls shaded by the face they show, the goal a green marker on
  the floor), ``height × width × 3`` floats in [0, 1], flattened;
* ``symbolic``: an egocentric window of the block grid around the agent, rotated to its
  heading, with a wall and a goal channel (fast, for tests and quick experiments).

One environment holds mazes of up to ``cells`` cells a side (smaller ones are padded with wall)
and episodes of up to ``horizon`` steps (each task has its own cap), so small and large mazes
are tasks of one environment and a policy trained on one can be meta-tested on the other.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Box, Discrete, TimeStep, timestep

HEADINGS = jnp.asarray([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)
"""(row, column) steps of the headings north, east, south, west."""

STEP_PENALTY = 0.001
BUMP_PENALTY = 0.01
GOAL_REWARD = 1.0
_SKY, _FLOOR = jnp.asarray([0.55, 0.7, 0.9]), jnp.asarray([0.35, 0.3, 0.25])
WALL_COLORS = jnp.asarray([[0.75, 0.7, 0.65], [0.5, 0.47, 0.44]])  # faces across columns / rows
GOAL_COLOR = jnp.asarray([0.1, 0.85, 0.2])


class MazeParams(NamedTuple):
    """One task: a maze with its goal, start and episode cap.

    Attributes:
        walls: Block grid ``[G, G]`` bool, true for wall (``G = 2 * cells + 1``).
        goal: Goal block ``[2]`` int32 (row, column).
        start: Start block ``[2]`` int32.
        heading: Start heading (0 north, 1 east, 2 south, 3 west), int32 scalar.
        max_steps: Steps before the episode is truncated, int32 scalar.
    """

    walls: jax.Array
    goal: jax.Array
    start: jax.Array
    heading: jax.Array
    max_steps: jax.Array


class MazeState(NamedTuple):
    """Agent block ``[2]``, heading and step counter (int32)."""

    pos: jax.Array
    heading: jax.Array
    t: jax.Array


def generate_maze(key: jax.Array, size: int, cells: int) -> jax.Array:
    """A random perfect maze of ``size × size`` cells on a ``2 * cells + 1`` block grid.

    Prim's algorithm with random edge weights: from cell (0, 0), repeatedly open the heaviest
    wall between a visited and an unvisited cell.

    Args:
        key: PRNG key.
        size: Cells a side of this maze (static), at most ``cells``.
        cells: Cells a side of the grid's capacity (static).

    Returns:
        Walls ``[2 * cells + 1, 2 * cells + 1]`` bool; blocks beyond the maze are wall.
    """
    k_right, k_down = jax.random.split(key)
    w_right = jax.random.uniform(k_right, (size, size - 1))
    w_down = jax.random.uniform(k_down, (size - 1, size))

    def grow(_, carry):
        seen, right, down = carry
        s_right = jnp.where(seen[:, :-1] ^ seen[:, 1:], w_right, -1.0)
        s_down = jnp.where(seen[:-1, :] ^ seen[1:, :], w_down, -1.0)
        pick_right = s_right.max() >= s_down.max()
        r1, c1 = jnp.divmod(jnp.argmax(s_right), size - 1)
        r2, c2 = jnp.divmod(jnp.argmax(s_down), size)
        right = jnp.where(pick_right, right.at[r1, c1].set(True), right)
        down = jnp.where(pick_right, down, down.at[r2, c2].set(True))
        seen = jnp.where(
            pick_right,
            seen.at[r1, c1].set(True).at[r1, c1 + 1].set(True),
            seen.at[r2, c2].set(True).at[r2 + 1, c2].set(True),
        )
        return seen, right, down

    seen = jnp.zeros((size, size), bool).at[0, 0].set(True)
    init = (seen, jnp.zeros((size, size - 1), bool), jnp.zeros((size - 1, size), bool))
    _, right, down = jax.lax.fori_loop(0, size * size - 1, grow, init)
    grid = 2 * cells + 1
    floor = jnp.zeros((grid, grid), bool)
    floor = floor.at[1 : 2 * size : 2, 1 : 2 * size : 2].set(True)
    floor = floor.at[1 : 2 * size : 2, 2 : 2 * size - 1 : 2].set(right)
    floor = floor.at[2 : 2 * size - 1 : 2, 1 : 2 * size : 2].set(down)
    return ~floor


def sample_placement(key: jax.Array, size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Goal and start: two different cells of a ``size``-cell maze, and a start heading."""
    k_cells, k_heading = jax.random.split(key)
    pair = jax.random.choice(k_cells, size * size, (2,), replace=False)
    rows, cols = jnp.divmod(pair, size)
    blocks = jnp.stack([2 * rows + 1, 2 * cols + 1], -1).astype(jnp.int32)
    return blocks[0], blocks[1], jax.random.randint(k_heading, (), 0, 4)


@dataclasses.dataclass(frozen=True)
class Maze:
    """Navigation in a maze to a goal; the episode ends at the goal or at the task's cap.

    Reward: ``+1`` on reaching the goal, ``-0.001`` per step and ``-0.01`` more for walking into
    a wall. ``info["success"]`` is true at the step that reaches the goal.

    Attributes:
        cells: Cells a side of the largest maze (static).
        horizon: The longest episode (static); each task's ``max_steps`` may be shorter.
        view: ``"rgb"`` (first-person image) or ``"symbolic"`` (egocentric window).
        width: Image width in pixels (``rgb``).
        height: Image height in pixels (``rgb``).
        window: Side of the egocentric window in blocks (``symbolic``, odd).
        fov: Tangent of half the horizontal field of view (``rgb``).
    """

    cells: int = 9
    horizon: int = 500
    view: Literal["rgb", "symbolic"] = "rgb"
    width: int = 40
    height: int = 30
    window: int = 5
    fov: float = 0.66

    def reset(self, key: jax.Array, params: MazeParams) -> tuple[MazeState, TimeStep]:
        """Starts at the task's start block and heading."""
        del key
        state = MazeState(params.start, params.heading, jnp.zeros((), jnp.int32))
        return state, timestep(self.observe(state, params), success=False)

    def step(
        self, key: jax.Array, state: MazeState, action: jax.Array, params: MazeParams
    ) -> tuple[MazeState, TimeStep]:
        """Turns left (0), right (1) or moves one block forward (2)."""
        del key
        heading = (state.heading + jnp.where(action == 0, -1, jnp.where(action == 1, 1, 0))) % 4
        ahead = state.pos + HEADINGS[state.heading]
        bump = (action == 2) & params.walls[ahead[0], ahead[1]]
        moves = (action == 2) & ~bump
        pos = jnp.where(moves, ahead, state.pos)
        t = state.t + 1
        success = jnp.all(pos == params.goal)
        reward = -STEP_PENALTY - BUMP_PENALTY * bump + GOAL_REWARD * success
        new = MazeState(pos, heading, t)
        ts = timestep(
            self.observe(new, params),
            reward,
            terminated=success,
            truncated=~success & (t >= params.max_steps),
            success=success,
        )
        return new, ts

    def observe(self, state: MazeState, params: MazeParams) -> jax.Array:
        """The flat observation of ``state`` in the configured view."""
        if self.view == "symbolic":
            return egocentric_window(state, params, self.window).reshape(-1)
        return render(state, params, self.width, self.height, self.fov).reshape(-1)

    def observation_space(self, params: MazeParams) -> Box:
        """Flat images ``height * width * 3`` or windows ``window² * 2``, in [0, 1]."""
        size = self.window**2 * 2 if self.view == "symbolic" else self.height * self.width * 3
        return Box(0.0, 1.0, (size,))

    def action_space(self, params: MazeParams) -> Discrete:
        """Turn left, turn right, forward."""
        return Discrete(3)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(height, width, 3)`` of the ``rgb`` view's observation; ``None`` for ``symbolic``."""
        return (self.height, self.width, 3) if self.view == "rgb" else None


def egocentric_window(state: MazeState, params: MazeParams, window: int) -> jax.Array:
    """The ``window × window`` blocks around the agent, rows ahead-first, columns left to right.

    Returns:
        ``[window, window, 2]``: channel 0 wall (blocks off the grid count as wall), channel 1
        goal.
    """
    half = window // 2
    fwd = HEADINGS[state.heading]
    right = HEADINGS[(state.heading + 1) % 4]
    ahead = jnp.arange(half, -half - 1, -1)[:, None, None]  # top row: farthest ahead
    side = jnp.arange(-half, half + 1)[None, :, None]
    blocks = state.pos + ahead * fwd + side * right  # [window, window, 2]
    grid = params.walls.shape[0]
    inside = jnp.all((blocks >= 0) & (blocks < grid), -1)
    r, c = jnp.clip(blocks[..., 0], 0, grid - 1), jnp.clip(blocks[..., 1], 0, grid - 1)
    wall = jnp.where(inside, params.walls[r, c], True)
    goal = inside & (r == params.goal[0]) & (c == params.goal[1])
    return jnp.stack([wall, goal], -1).astype(jnp.float32)


def render(
    state: MazeState, params: MazeParams, width: int = 40, height: int = 30, fov: float = 0.66
) -> jax.Array:
    """A first-person image by ray casting through the block grid.

    One ray per pixel column walks the grid block by block (digital differential analysis)
    until it enters a wall; the wall's slice is ``height / distance`` pixels tall, shaded by the
    face it hit. A ray that crosses the goal block before the wall draws a green marker on the
    floor at the goal's distance.

    Returns:
        The image ``[height, width, 3]`` in [0, 1].
    """
    grid = params.walls.shape[0]
    origin = state.pos[::-1].astype(jnp.float32) + 0.5  # (x = column, y = row), block centre
    direction = HEADINGS[state.heading][::-1].astype(jnp.float32)
    plane = jnp.asarray([-direction[1], direction[0]]) * fov
    cam = 2.0 * (jnp.arange(width) + 0.5) / width - 1.0
    ray = direction[None, :] + cam[:, None] * plane[None, :]  # [W, 2]
    safe = jnp.where(jnp.abs(ray) < 1e-9, 1e-9, ray)
    delta = jnp.abs(1.0 / safe)
    step = jnp.where(ray < 0, -1, 1).astype(jnp.int32)
    cell0 = jnp.floor(origin).astype(jnp.int32)
    side_dist = jnp.where(ray < 0, (origin - cell0) * delta, (cell0 + 1.0 - origin) * delta)
    far = jnp.float32(4.0 * grid)

    def march(_, carry):
        cell, side_dist, hit, wall_dist, face, goal_dist = carry
        axis = jnp.where(side_dist[:, 0] < side_dist[:, 1], 0, 1)  # which boundary is nearer
        dist = jnp.take_along_axis(side_dist, axis[:, None], 1)[:, 0]
        onehot = jax.nn.one_hot(axis, 2, dtype=jnp.int32)
        cell = jnp.where(hit[:, None], cell, cell + onehot * step)
        side_dist = jnp.where(hit[:, None], side_dist, side_dist + onehot * delta)
        x, y = jnp.clip(cell[:, 0], 0, grid - 1), jnp.clip(cell[:, 1], 0, grid - 1)
        is_wall = params.walls[y, x]
        new_hit = ~hit & is_wall
        wall_dist = jnp.where(new_hit, dist, wall_dist)
        face = jnp.where(new_hit, axis, face)
        at_goal = ~hit & ~is_wall & (y == params.goal[0]) & (x == params.goal[1])
        goal_dist = jnp.where(at_goal & (goal_dist >= far), dist, goal_dist)
        return cell, side_dist, hit | is_wall, wall_dist, face, goal_dist

    init = (
        jnp.broadcast_to(cell0, (width, 2)),
        side_dist,
        jnp.zeros((width,), bool),
        jnp.full((width,), far),
        jnp.zeros((width,), jnp.int32),
        jnp.full((width,), far),
    )
    _, _, _, wall_dist, face, goal_dist = jax.lax.fori_loop(0, 2 * grid + 2, march, init)
    on_goal = jnp.all(state.pos == params.goal)
    goal_dist = jnp.where(on_goal, 0.5, goal_dist)  # standing on it: the marker fills the floor
    row = (jnp.arange(height) + 0.5 - height / 2.0)[:, None]  # pixel row offset from the horizon
    half_wall = 0.5 * height / jnp.maximum(wall_dist, 1e-3)[None, :]
    half_goal = 0.5 * height / jnp.maximum(goal_dist, 1e-3)[None, :]
    background = jnp.where(row[..., None] < 0, _SKY, _FLOOR)
    image = jnp.broadcast_to(background, (height, width, 3))
    image = jnp.where((jnp.abs(row) < half_wall)[..., None], WALL_COLORS[face][None], image)
    marker = (row >= 0) & (row < half_goal) & (goal_dist < wall_dist)[None, :]
    return jnp.where(marker[..., None], GOAL_COLOR, image)


def maze_set(key: jax.Array, num: int, size: int, cells: int, max_steps: int) -> MazeParams:
    """``num`` mazes of ``size`` cells with their goals and starts, leaves ``[num, ...]``."""
    keys = jax.random.split(key, num)

    def one(k):
        k_maze, k_place = jax.random.split(k)
        goal, start, heading = sample_placement(k_place, size)
        walls = generate_maze(k_maze, size, cells)
        return MazeParams(walls, goal, start, heading, jnp.asarray(max_steps, jnp.int32))

    return jax.jit(jax.vmap(one))(keys)


def sample_from_mazes(
    key: jax.Array, n: int, walls: jax.Array, size: int, max_steps: int
) -> MazeParams:
    """``n`` tasks on mazes of the fixed set ``walls``, each with a fresh goal and start.

    Args:
        key: PRNG key.
        n: Number of tasks.
        walls: The set's mazes ``[N, G, G]``, of ``size`` cells a side.
        size: Cells a side (static).
        max_steps: The tasks' episode cap.

    Returns:
        Tasks with leaves ``[n, ...]``.
    """
    k_idx, k_place = jax.random.split(key)
    idx = jax.random.randint(k_idx, (n,), 0, walls.shape[0])
    goal, start, heading = jax.vmap(lambda k: sample_placement(k, size))(
        jax.random.split(k_place, n)
    )
    return MazeParams(
        jnp.asarray(walls)[idx], goal, start, heading, jnp.full((n,), max_steps, jnp.int32)
    )
