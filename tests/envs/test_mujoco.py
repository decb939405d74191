"""Native MuJoCo batches and the locomotion tasks built on them."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.envs.mujoco import MujocoBatch, PhysicsParams, robot_xml
from quickstudy.envs.mujoco.physics import STATE_SPEC
from quickstudy.tasks.locomotion import slope_gravity


def _cheetah(**kwargs) -> MujocoBatch:
    return MujocoBatch(robot_xml("half_cheetah"), frame_skip=5, **kwargs)


def _start(sim: MujocoBatch, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    qpos = sim.model.qpos0 + rng.uniform(-0.1, 0.1, (n, sim.model.nq))
    return sim.initial_state(qpos, 0.1 * rng.standard_normal((n, sim.model.nv)))


def test_stepping_from_saved_states_continues_the_simulation_exactly():
    sim = _cheetah(threads=2, backend="threads")
    state = _start(sim, 6)
    ctrl = np.random.default_rng(1).uniform(-1, 1, (30, 6, 6))
    for t in range(30):
        state, feats = sim.step(state, ctrl[t])
    # The same controls applied to one MjData stepped continuously.
    data = mujoco.MjData(sim.model)
    for i in range(6):
        mujoco.mj_setState(sim.model, data, _start(sim, 6)[i], STATE_SPEC)
        for t in range(30):
            data.ctrl[:] = ctrl[t, i]
            mujoco.mj_step(sim.model, data, 5)
        np.testing.assert_array_equal(feats.qpos[i], data.qpos)
        np.testing.assert_array_equal(feats.qvel[i], data.qvel)


@pytest.mark.parametrize("backend", ["threads", "rollout"])
def test_thread_count_does_not_change_results(backend):
    ctrl = np.random.default_rng(2).uniform(-1, 1, (10, 80, 6))
    results = []
    for threads in (1, 2):
        sim = _cheetah(threads=threads, backend=backend)
        state = _start(sim, 80)
        for t in range(10):
            state, _ = sim.step(state, ctrl[t])
        results.append(state)
    np.testing.assert_array_equal(results[0], results[1])


def test_rollout_backend_agrees_with_threads_over_a_short_rollout():
    """The rollout backend starts each step's solver cold: states agree to 1e-6 over 10 steps."""
    ctrl = np.random.default_rng(3).uniform(-1, 1, (10, 4, 6))
    finals = []
    for backend in ("threads", "rollout"):
        sim = _cheetah(backend=backend, features=("xpos",))
        state = _start(sim, 4)
        for t in range(10):
            state, feats = sim.step(state, ctrl[t])
        finals.append((feats.qpos, feats.qvel, feats.xpos))
    for a, b in zip(*finals, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="rollout backend"):
        _cheetah(backend="rollout", features=("cfrc_ext",))


def _physics(sim: MujocoBatch, n: int, mass_scale, gravity) -> PhysicsParams:
    base = sim.default_physics()
    scale = np.asarray(mass_scale, float)
    return PhysicsParams(
        base.body_mass[None] * scale[:, None],
        np.tile(base.body_inertia, (n, 1, 1)),
        np.tile(base.dof_damping, (n, 1)),
        np.tile(base.geom_friction, (n, 1, 1)),
        np.asarray(gravity, float),
    )


def test_each_row_has_its_own_physics_and_changes_take_effect():
    sim = _cheetah()
    level, tilted = slope_gravity(0.0), slope_gravity(-20.0)  # 20 degrees downhill
    physics = _physics(sim, 3, [1.0, 1.0, 2.0], [level, tilted, level])
    state = _start(sim, 3)
    state[:] = state[0]  # the same start everywhere
    zero = np.zeros((3, 6))
    for _ in range(40):
        state, feats = sim.step(state, zero, physics)
    x = feats.qpos[:, 0]
    assert x[1] > x[0] + 0.1  # slides down the slope (+x is downhill here)
    assert abs(x[2] - x[0]) > 1e-6  # the heavier body moves differently
    # A row whose parameters change is rewritten; the others keep theirs.
    physics2 = _physics(sim, 3, [1.0, 1.0, 1.0], [level, tilted, level])
    state2 = _start(sim, 3)
    state2[:] = state2[0]
    for _ in range(40):
        state2, feats2 = sim.step(state2, zero, physics2)
    np.testing.assert_array_equal(feats2.qpos[2], feats2.qpos[0])
    np.testing.assert_array_equal(feats2.qpos[1], feats.qpos[1])


def test_softer_contacts_change_how_the_ant_settles_on_the_floor():
    soft = MujocoBatch(robot_xml("ant"), frame_skip=1, timestep=0.02, geom_solimp=(0.8, 0.8, 0.01))
    default = MujocoBatch(robot_xml("ant"), frame_skip=1, timestep=0.02)
    np.testing.assert_array_equal(soft.model.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (14, 1)))
    np.testing.assert_allclose(default.model.geom_solimp[0, :3], [0.9, 0.95, 0.001])
    heights = []
    for sim in (soft, default):
        state = sim.initial_state(sim.model.qpos0[None], np.zeros((1, sim.model.nv)))
        for _ in range(100):  # the ant drops onto the floor and settles (2 s)
            state, feats = sim.step(state, np.zeros((1, 8)))
        heights.append(feats.qpos[0, 2])
    assert heights[0] < heights[1] - 0.01  # on softer contacts the torso sinks lower


def test_cheetah_vel_reward_is_the_published_formula():
    dist = tasks.make("cheetah-vel")
    env = dist.env
    task = jax.device_get(dist.sample(jax.random.key(0), 4))
    rng = np.random.default_rng(0)
    state, ts = env.reset(rng, task)
    assert ts.obs.shape == (4, 20) and ts.obs.dtype == np.float32
    action = rng.uniform(-1, 1, (4, 6))
    x0 = state.physics[:, 1]  # the state row starts with time, then qpos
    state, ts = env.step(rng, state, action, task)
    velocity = (state.physics[:, 1] - x0) / 0.05
    expected = -np.abs(velocity - task.velocity) - 0.05 * np.sum(action**2, axis=1)
    np.testing.assert_allclose(ts.reward, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ts.info["x_velocity"], velocity, rtol=1e-5)


def test_ant_goal_sees_contact_forces_and_ant_dir_terminates_when_flipped():
    dist = tasks.make("ant-goal")
    task = jax.device_get(dist.sample(jax.random.key(0), 2))
    rng = np.random.default_rng(0)
    state, ts = dist.env.reset(rng, task)
    for _ in range(5):
        state, ts = dist.env.step(rng, state, np.zeros((2, 8)), task)
    assert ts.obs.shape == (2, 113)
    assert np.abs(ts.obs[:, 29:]).max() > 0  # the feet touch the ground
    ant = tasks.make("ant-dir")
    task = jax.device_get(ant.sample(jax.random.key(0), 1))
    state, _ = ant.env.reset(rng, task)
    state.physics[:, 1 + 2] = 1.5  # root height above the healthy range
    _, ts = ant.env.step(rng, state, np.zeros((1, 8)), task)
    assert ts.terminated.all()


@pytest.mark.parametrize(
    "name, obs_dim, num_test",
    [
        ("cheetah-vel", 20, 30),
        ("cheetah-dir", 20, 2),
        ("ant-dir", 27, 2),
        ("ant-goal", 113, 30),
        ("maml-cheetah-vel", 20, 40),
        ("maml-cheetah-dir", 20, 40),
        ("maml-ant-vel", 125, 40),
        ("maml-ant-dir", 125, 40),
        ("cheetah-slope-up10", 20, 30),
        ("ant-slope-down5", 27, 30),
        ("walker-params", 17, 10),
        ("humanoid-dir", 376, 30),
        ("hopper-params", 11, 10),
    ],
)
def test_locomotion_tasks_are_registered_with_their_shapes(name, obs_dim, num_test):
    dist = tasks.make(name)
    assert dist.env.host and dist.env.horizon == 200
    example = dist.sample_one(jax.random.key(0))
    assert dist.env.observation_space(example).shape == (obs_dim,)
    assert len(dist.test_tasks().velocity) == num_test


def test_slope_tasks_are_the_level_tasks_on_tilted_ground():
    up = tasks.make("cheetah-slope-up10")
    level = tasks.make("cheetah-slope")
    np.testing.assert_allclose(level.train_set.physics.gravity[:, 0], 0.0)
    np.testing.assert_allclose(level.test_set.physics.gravity[:, 0], 0.0)
    for split in (up.train_set, up.test_set):  # the oracle trains on the slope's train tasks
        g = split.physics.gravity
        np.testing.assert_allclose(np.degrees(np.arctan2(-g[:, 0], -g[:, 2])), 10.0)
    # the same velocities and masses as on level ground: only the ground differs
    np.testing.assert_array_equal(up.train_set.velocity, level.train_set.velocity)
    np.testing.assert_array_equal(up.train_set.physics.body_mass, level.train_set.physics.body_mass)
    masses = level.train_set.physics.body_mass[:, 1:] / level.env.sim.model.body_mass[None, 1:]
    assert masses.min() >= 0.75 and masses.max() <= 1.25


def test_params_tasks_vary_every_element_and_end_when_the_robot_falls():
    dist = tasks.make("hopper-params")
    physics = dist.train_set.physics
    base = dist.env.sim.default_physics()
    ratio = physics.dof_damping[:, 3:] / base.dof_damping[None, 3:]
    assert ratio.min() >= 1.3**-3 - 1e-9 and ratio.max() <= 1.3**3 + 1e-9
    assert len(np.unique(np.round(ratio, 6))) > 10  # per element, per task
    rng = np.random.default_rng(0)
    task = jax.device_get(dist.sample(jax.random.key(0), 2))
    state, ts = dist.env.reset(rng, task)
    assert ts.obs.shape == (2, 11)
    for _ in range(200):  # no control: the hopper topples over
        state, ts = dist.env.step(rng, state, np.zeros((2, 3)), task)
        if ts.terminated.all():
            break
    assert ts.terminated.all()


def test_mjx_backend_agrees_with_native_stepping_over_a_short_rollout():
    """Same model, same start, same actions: MJX (float32) within 1e-3 of native over 10 steps."""
    pytest.importorskip("mujoco.mjx")
    from quickstudy.envs.mujoco.mjx import mjx_environment

    dist = tasks.make("cheetah-slope-up10")  # per-task physics: tilted gravity, scaled masses
    native = dist.env
    env = mjx_environment(native)
    task = jax.tree.map(lambda x: np.asarray(x)[:1], dist.test_tasks())
    one = jax.tree.map(lambda x: x[0], task)
    state, ts = jax.jit(env.reset)(jax.random.key(0), one)
    # The native batch starts from MJX's initial state.
    sim = native.sim
    data = env.data(state)
    qpos, qvel = np.asarray(data.qpos, float)[None], np.asarray(data.qvel, float)[None]
    from quickstudy.envs.mujoco.locomotion import LocomotionState

    nstate = LocomotionState(sim.initial_state(qpos, qvel), np.zeros((1,), np.int32))
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 6)).astype(np.float32)
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for t in range(10):
        state, ts = step(jax.random.key(t), state, jnp.asarray(actions[t]), one)
        nstate, nts = native.step(rng, nstate, actions[t][None], task)
        np.testing.assert_allclose(np.asarray(ts.obs), nts.obs[0], atol=1e-3, rtol=1e-3)
        np.testing.assert_allclose(float(ts.reward), nts.reward[0], atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="MJX backend"):
        mjx_environment(tasks.make("ant-goal").env)


def test_humanoid_dir_rewards_moving_the_centre_of_mass_along_the_task_direction():
    dist = tasks.make("humanoid-dir")
    env = dist.env
    task = jax.device_get(dist.sample(jax.random.key(0), 2))
    rng = np.random.default_rng(0)
    state, ts = env.reset(rng, task)
    state, ts = env.step(rng, state, np.zeros((2, 17)), task)
    assert ts.obs.shape == (2, 376) and np.isfinite(ts.obs).all()
    physics, feats = env.sim.step(state.physics, np.zeros((2, 17)))
    moved = feats.mass_center[:, 1, :2] - feats.mass_center[:, 0, :2]
    forward = 0.25 * np.sum(moved * task.direction, axis=1) / 0.003
    impact = np.minimum(0.5e-6 * np.sum(feats.cfrc_ext**2, axis=(1, 2)), 10.0)
    expected = forward - impact + 5.0  # zero control
    reward = env.reward_fn(feats, np.zeros((2, 17)), task, env.sim.dt)
    np.testing.assert_allclose(reward, expected, rtol=1e-6)
    assert np.all(np.abs(feats.mass_center[:, 1] - feats.mass_center[:, 0]) < 0.1)


def test_mjx_twins_are_registered_and_their_environments_checkpoint(tmp_path):
    """``NAME-mjx`` is pure JAX; a state with MJX environments in flight saves and restores."""
    pytest.importorskip("mujoco.mjx")
    from quickstudy.tasks.locomotion import MJX_TWINS
    from quickstudy.tracking.checkpoint import load_checkpoint, save_checkpoint

    assert all(f"{name}-mjx" in tasks.names() for name in MJX_TWINS)
    dist = tasks.make("walker-params-mjx")  # per-task masses, inertias, damping, friction
    assert not dist.env.host and dist.finite
    task = dist.sample(jax.random.key(1), 2)
    keys = jax.random.split(jax.random.key(0), 2)
    state, _ = jax.jit(jax.vmap(dist.env.reset))(keys, task)
    path = save_checkpoint(tmp_path, 0, state)
    restored = load_checkpoint(path, state)
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    step = jax.jit(jax.vmap(dist.env.step))
    actions = jnp.zeros((2,) + dist.env.action_space(None).shape)
    _, ts = step(keys, state, actions, task)
    _, again = step(keys, restored, actions, task)
    np.testing.assert_array_equal(ts.obs, again.obs)
