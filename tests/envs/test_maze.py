from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.envs.maze import (
    BUMP_PENALTY,
    GOAL_COLOR,
    GOAL_REWARD,
    STEP_PENALTY,
    WALL_COLORS,
    Maze,
    MazeParams,
    MazeState,
    egocentric_window,
    generate_maze,
    render,
)


def _reachable(walls, start):
    seen, queue = {tuple(start)}, deque([tuple(start)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = (r + dr, c + dc)
            inside = 0 <= n[0] < walls.shape[0] and 0 <= n[1] < walls.shape[1]
            if inside and not walls[n] and n not in seen:
                seen.add(n)
                queue.append(n)
    return seen


@pytest.mark.parametrize("size", [2, 5, 9])
def test_generated_mazes_are_perfect_and_padded_with_wall(size):
    for seed in range(3):
        walls = np.asarray(generate_maze(jax.random.key(seed), size, 9))
        assert walls.shape == (19, 19)
        floor = ~walls
        # a spanning tree of size² cells: size² cells and size² - 1 opened passages, connected
        assert floor.sum() == 2 * size * size - 1
        assert len(_reachable(walls, (1, 1))) == floor.sum()
        assert not floor[2 * size + 1 :, :].any() and not floor[:, 2 * size + 1 :].any()


def _corridor(goal=(1, 5)):
    """A 1 x 3-cell corridor along row 1 (blocks 1..5), the rest wall."""
    walls = np.ones((7, 7), bool)
    walls[1, 1:6] = False
    return MazeParams(
        jnp.asarray(walls),
        jnp.asarray(goal, jnp.int32),
        jnp.asarray([1, 1], jnp.int32),
        jnp.asarray(1, jnp.int32),  # facing east, along the corridor
        jnp.asarray(6, jnp.int32),
    )


def test_turns_bumps_moves_and_the_goal_ends_the_episode():
    env, params = Maze(cells=3, horizon=10, view="symbolic"), _corridor()
    state, ts = env.reset(jax.random.key(0), params)
    state, ts = env.step(jax.random.key(0), state, 0, params)  # turn left: north, a wall
    assert int(state.heading) == 0
    state, ts = env.step(jax.random.key(0), state, 2, params)  # bump
    np.testing.assert_array_equal(state.pos, [1, 1])
    assert float(ts.reward) == pytest.approx(-STEP_PENALTY - BUMP_PENALTY)
    state, ts = env.step(jax.random.key(0), state, 1, params)  # turn right: east again
    for _ in range(3):
        state, ts = env.step(jax.random.key(0), state, 2, params)
        assert not ts.terminated
    assert float(ts.reward) == pytest.approx(-STEP_PENALTY)
    state, ts = env.step(jax.random.key(0), state, 2, params)
    np.testing.assert_array_equal(state.pos, [1, 5])
    assert bool(ts.terminated) and bool(ts.info["success"]) and not bool(ts.truncated)
    assert float(ts.reward) == pytest.approx(GOAL_REWARD - STEP_PENALTY)


def test_the_tasks_cap_truncates_the_episode():
    env, params = Maze(cells=3, horizon=10, view="symbolic"), _corridor()
    state, _ = env.reset(jax.random.key(0), params)
    for t in range(6):
        state, ts = env.step(jax.random.key(0), state, 0, params)
        assert bool(ts.truncated) == (t == 5) and not bool(ts.terminated)


def test_the_egocentric_window_turns_with_the_agent():
    params = _corridor()
    east = np.asarray(egocentric_window(MazeState(params.start, jnp.asarray(1), 0), params, 5))
    # facing east down the corridor: floor straight ahead (column 2), walls to both sides
    np.testing.assert_array_equal(east[:, 2, 0], [0, 0, 0, 1, 1])  # rows: 2 ahead .. 2 behind
    assert east[2, 1, 0] == 1 and east[2, 3, 0] == 1
    north = np.asarray(egocentric_window(MazeState(params.start, jnp.asarray(0), 0), params, 5))
    np.testing.assert_array_equal(north[2, :, 0], [1, 1, 0, 0, 0])  # the corridor to the right
    assert north[..., 1].sum() == 0 and east[0, 2, 1] == 0  # the goal is 4 blocks away
    near = np.asarray(egocentric_window(MazeState(jnp.asarray([1, 3]), 1, 0), params, 5))
    assert near[0, 2, 1] == 1  # two blocks ahead


def test_the_ray_caster_draws_nearer_walls_taller_and_the_goal_when_in_sight():
    params = _corridor()
    height = 30

    def image(pos, heading):
        state = MazeState(jnp.asarray(pos, jnp.int32), jnp.asarray(heading), 0)
        return np.asarray(render(state, params, 40, height))

    def wall_rows(img):  # wall pixels in the centre column
        faces = np.asarray(WALL_COLORS)
        return int(np.isclose(img[:, 20, None], faces[None]).all(-1).any(-1).sum())

    facing_wall = image((1, 1), 0)  # the wall one half-block ahead
    far_wall = image((1, 1), 1)  # the end of the corridor, 4.5 blocks ahead
    assert facing_wall.shape == (height, 40, 3)
    assert facing_wall.min() >= 0.0 and facing_wall.max() <= 1.0
    assert wall_rows(facing_wall) > wall_rows(far_wall) > 0
    green = np.asarray(GOAL_COLOR)
    sees_goal = np.all(np.isclose(far_wall, green), -1).any()
    away = np.all(np.isclose(image((1, 1), 3), green), -1).any()
    assert sees_goal and not away


def test_small_and_large_mazes_share_one_environment_and_test_on_unseen_mazes():
    small, large = tasks.make("maze-small"), tasks.make("maze-large")
    assert small.env is large.env and small.episodes == 2
    train = small.sample(jax.random.key(0), 64)
    test = small.test_tasks()
    assert test.walls.shape == (100, 19, 19) and int(test.max_steps[0]) == 250
    assert int(large.test_tasks(3).max_steps[0]) == 500
    # small mazes stay in their 11 x 11 corner; goals and starts are different cells
    assert np.asarray(train.walls)[:, 11:, :].all()
    assert np.any(np.asarray(train.goal) != np.asarray(train.start), -1).all()
    seen = {
        np.asarray(w).tobytes()
        for w in tasks.make("maze-small").sample(jax.random.key(1), 4000).walls
    }
    assert len(seen) <= 1000
    assert not seen & {np.asarray(w).tobytes() for w in test.walls}
    sym = tasks.make("maze-small-symbolic")
    assert sym.env.observation_space(None).shape == (50,)
    assert small.env.observation_space(None).shape == (30 * 40 * 3,)


def test_the_frame_encoder_reads_the_image_and_passes_the_rest_through():
    from quickstudy.algorithms import registry
    from quickstudy.networks.conv import FrameEncoder

    enc = FrameEncoder((30, 40, 3))
    obs = jax.random.uniform(jax.random.key(0), (4, 2, 30 * 40 * 3 + 6))
    params = enc.init(jax.random.key(1), obs)
    out = enc.apply(params, obs)
    assert out.shape == (4, 2, 64 + 6)
    np.testing.assert_array_equal(out[..., 64:], obs[..., -6:])
    moved = enc.apply(params, obs.at[..., :10].add(1.0))
    assert np.abs(moved[..., :64] - out[..., :64]).max() > 0
    # RL² and SNAIL on the first-person mazes put the encoder in front of their memory
    for name in ("rl2", "snail"):
        algo = registry.build(name, "maze-small", registry.get(name).config("maze-small"))
        params = algo.parts["policy"].init(jax.random.key(0))
        assert "encoder" in params["params"]
    symbolic = registry.build(
        "rl2", "maze-small-symbolic", registry.get("rl2").config("maze-small")
    )
    assert "encoder" not in symbolic.parts["policy"].init(jax.random.key(0))["params"]
