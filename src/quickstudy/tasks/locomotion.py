"""MuJoCo locomotion task distributions: PEARL's, MAML's, and the slopes experiment's.

PEARL's tasks (``cheetah-vel``, ``cheetah-dir``, ``ant-dir``, ``ant-goal``) follow Gymnasium's
physics (frame_skip 5, dt 0.05 s) and PEARL's seeded finite train/test splits; MAML's
(``maml-cheetah-vel``, ``maml-cheetah-dir``, ``maml-ant-vel``, ``maml-ant-dir``) follow rllab's
(one physics step per action, cheetah timestep 0.01 s, ant 0.02 s, velocity of the torso
subtree's centre of mass) with continuous task distributions. The same name in another library
may mean the other convention: PEARL's cheetah-vel draws v* from U[0, 3], MAML's from U[0, 2].

The MuJoCo ant model is Gymnasium's in both conventions; MAML's gets rllab's softer contacts
(see :func:`rllab_ant`), which makes it rllab's ant. The physics engine is MuJoCo 3.3, not the
1.31 of MAML's runs, so MAML's returns are comparable in kind, not to the decimal.

Slopes: ``cheetah-slope`` and ``ant-slope`` are level ground, with random target velocities and
body masses; ``<robot>-slope-up<N>``/``-down<N>`` hold the same tasks on ground tilted by N degrees
(gravity rotated about the y axis). The experiment meta-trains on level ground and meta-tests on
the slopes' held-out tasks out of distribution (``quickstudy evaluate RUN --task
cheetah-slope-up10``); training on a slope itself gives the per-slope oracle.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.mujoco.locomotion import (
    Locomotion,
    LocomotionTask,
    ant_contact_obs,
    ant_direction_reward,
    ant_goal_reward,
    ant_obs,
    cheetah_obs,
    com_velocity,
    direction_reward,
    displacement_velocity,
    hopper_fallen,
    humanoid_direction_reward,
    humanoid_obs,
    planar_walker_obs,
    planar_walker_reward,
    rllab_ant_direction_reward,
    rllab_ant_obs,
    rllab_ant_velocity_reward,
    velocity_reward,
    walker_fallen,
)
from quickstudy.envs.mujoco.physics import MujocoBatch, PhysicsParams, robot_xml
from quickstudy.tasks.distribution import TaskDistribution

HORIZON = 200
EPISODES = 2
SLOPE_ANGLES = (5, 10, 15, 20)
"""Degrees of the held-out slopes, each registered uphill and downhill."""


def _tasks(
    n: int,
    velocity=None,
    direction=None,
    goal=None,
    physics: PhysicsParams | None = None,
) -> LocomotionTask:
    zeros = np.zeros((n,), np.float32)
    return LocomotionTask(
        velocity=zeros if velocity is None else np.asarray(velocity, np.float32),
        direction=(
            np.tile(np.float32([1.0, 0.0]), (n, 1))
            if direction is None
            else np.asarray(direction, np.float32)
        ),
        goal=np.zeros((n, 2), np.float32) if goal is None else np.asarray(goal, np.float32),
        physics=physics,
    )


def _split(tasks: LocomotionTask, num_train: int) -> tuple[LocomotionTask, LocomotionTask]:
    head = jax.tree.map(lambda x: x[:num_train], tasks)
    tail = jax.tree.map(lambda x: x[num_train:], tasks)
    return head, tail


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------


@functools.cache
def gym_cheetah(reward: str) -> Locomotion:
    """PEARL's half-cheetah: Gymnasium's model, frame_skip 5, velocity Δx/dt."""
    sim = MujocoBatch(robot_xml("half_cheetah"), frame_skip=5, features=("xpos",))
    fn = velocity_reward if reward == "vel" else direction_reward
    return Locomotion(sim, cheetah_obs, fn(displacement_velocity), obs_dim=20, horizon=HORIZON)


@functools.cache
def rllab_cheetah(reward: str) -> Locomotion:
    """MAML's half-cheetah: timestep 0.01, one physics step per action, torso COM velocity."""
    sim = MujocoBatch(
        robot_xml("half_cheetah"),
        frame_skip=1,
        timestep=0.01,
        features=("com", "comvel"),
        forward_after_step=True,
    )
    fn = velocity_reward if reward == "vel" else direction_reward
    return Locomotion(
        sim, cheetah_obs, fn(com_velocity), obs_dim=20, horizon=HORIZON, convention="rllab"
    )


@functools.cache
def gym_ant(reward: str) -> Locomotion:
    """PEARL's ant: Gymnasium's model, frame_skip 5, contact forces computed."""
    sim = MujocoBatch(robot_xml("ant"), frame_skip=5, features=("xpos", "cfrc_ext"))
    if reward == "dir":
        return Locomotion(
            sim, ant_obs, ant_direction_reward, obs_dim=27, horizon=HORIZON, healthy_z=(0.2, 1.0)
        )
    return Locomotion(sim, ant_contact_obs, ant_goal_reward, obs_dim=15 + 14 + 84, horizon=HORIZON)


@functools.cache
def rllab_ant(reward: str) -> Locomotion:
    """MAML's ant: timestep 0.02, one physics step per action, torso COM velocity.

    rllab's ant model (``vendor/mujoco_models/ant.xml`` in ``cbfinn/maml_rl``) differs from
    Gymnasium's in two ways once compiled: torques come from ``ctrlrange`` ±150 with gear 1
    rather than ±1 with gear 150, which gives the same torque for a normalised action, and every
    geom's contacts are softer (``solimp`` 0.8 0.8 0.01 against MuJoCo's default 0.9 0.95
    0.001). Gymnasium's model with rllab's timestep and ``solimp`` is rllab's ant.
    """
    sim = MujocoBatch(
        robot_xml("ant"),
        frame_skip=1,
        timestep=0.02,
        features=("com", "comvel", "xmat", "cfrc_ext"),
        forward_after_step=True,
        geom_solimp=(0.8, 0.8, 0.01),
    )
    fn = rllab_ant_velocity_reward if reward == "vel" else rllab_ant_direction_reward
    return Locomotion(
        sim,
        rllab_ant_obs,
        fn,
        obs_dim=15 + 14 + 84 + 9 + 3,
        horizon=HORIZON,
        healthy_z=(0.2, 1.0),
        convention="rllab",
    )


# --------------------------------------------------------------------------------------------
# PEARL's tasks: finite, seeded splits
# --------------------------------------------------------------------------------------------


def _cheetah_vel() -> TaskDistribution:
    velocities = np.random.RandomState(1337).uniform(0.0, 3.0, size=(130,))
    train, test = _split(_tasks(130, velocity=velocities), 100)
    return TaskDistribution(
        name="cheetah-vel",
        env=gym_cheetah("vel"),
        description="PEARL half-cheetah velocity: v* ~ U[0,3], 100 train / 30 test, H=200.",
        reward="-|Δx/dt - v*| - 0.05||a||², dt = 0.05 (frame_skip 5)",
        episodes=EPISODES,
        train_set=train,
        test_set=test,
    )


def _cheetah_dir() -> TaskDistribution:
    both = _tasks(2, direction=[[-1.0, 0.0], [1.0, 0.0]])
    return TaskDistribution(
        name="cheetah-dir",
        env=gym_cheetah("dir"),
        description="PEARL half-cheetah direction: d ∈ {-1,+1}, train = test = both, H=200.",
        reward="d·Δx/dt - 0.05||a||², dt = 0.05 (frame_skip 5)",
        episodes=EPISODES,
        train_set=both,
        test_set=both,
    )


def _ant_dir() -> TaskDistribution:
    both = _tasks(2, direction=[[1.0, 0.0], [-1.0, 0.0]])
    return TaskDistribution(
        name="ant-dir",
        env=gym_ant("dir"),
        description="PEARL ant direction: θ ∈ {0, π}, train = test = both, H=200.",
        reward=(
            "<Δxy/dt, (cos θ, sin θ)> - 0.5||a||² - 5e-4||clip(cfrc_ext)||² + 1; "
            "ends if z ∉ [0.2, 1]"
        ),
        episodes=EPISODES,
        train_set=both,
        test_set=both,
    )


def _ant_goal() -> TaskDistribution:
    rng = np.random.RandomState(1337)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(180,))
    radius = 3.0 * rng.uniform(0.0, 1.0, size=(180,)) ** 0.5
    goals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    train, test = _split(_tasks(180, goal=goals), 150)
    return TaskDistribution(
        name="ant-goal",
        env=gym_ant("goal"),
        description="PEARL ant goal: g uniform on the disc of radius 3, 150 train / 30 test.",
        reward="-||xy - g||₁ - 0.1||a||² - 5e-4||clip(cfrc_ext)||²",
        episodes=EPISODES,
        train_set=train,
        test_set=test,
    )


def random_physics(sim: MujocoBatch, n: int, seed: int) -> PhysicsParams:
    """PEARL's random dynamics for ``n`` tasks.

    Every element of the masses and inertias is scaled by 1.5^u, of the joint damping by 1.3^u
    and of the friction by 1.5^u, each with its own u ~ U[-3, 3].
    """
    rng = np.random.RandomState(seed)
    base = sim.default_physics()

    def scaled(x, factor):
        return x[None] * factor ** rng.uniform(-3.0, 3.0, size=(n, *x.shape))

    return PhysicsParams(
        body_mass=scaled(base.body_mass, 1.5),
        body_inertia=scaled(base.body_inertia, 1.5),
        dof_damping=scaled(base.dof_damping, 1.3),
        geom_friction=scaled(base.geom_friction, 1.5),
        gravity=np.tile(base.gravity, (n, 1)),
    )


@functools.cache
def planar_walker(robot: str) -> Locomotion:
    """PEARL's walker or hopper: Gymnasium's model, frame_skip 4."""
    sim = MujocoBatch(robot_xml(robot), frame_skip=4, features=("xpos",))
    walker = robot == "walker2d"
    return Locomotion(
        sim,
        planar_walker_obs,
        planar_walker_reward,
        obs_dim=17 if walker else 11,
        horizon=HORIZON,
        terminate_fn=walker_fallen if walker else hopper_fallen,
        reset_noise=0.005,
        uniform_velocity_noise=True,
    )


def _params_task(robot: str) -> TaskDistribution:
    env = planar_walker(robot)
    tasks = _tasks(50, physics=random_physics(env.sim, 50, seed=1337))
    train, test = _split(tasks, 40)
    name = "walker-params" if robot == "walker2d" else "hopper-params"
    return TaskDistribution(
        name=name,
        env=env,
        description=(
            f"PEARL {name}: random body mass, inertia (x1.5^u), damping (x1.3^u), friction "
            f"(x1.5^u) per element, u ~ U[-3,3]; 40 train / 10 test, H=200."
        ),
        reward="Δx/dt + 1 - 1e-3||a||²; ends when the robot falls",
        episodes=EPISODES,
        train_set=train,
        test_set=test,
    )


@functools.cache
def gym_humanoid() -> Locomotion:
    """PEARL's humanoid: Gymnasium's model (timestep 0.003), frame_skip 5."""
    sim = MujocoBatch(
        robot_xml("humanoid"), frame_skip=5, features=("cfrc_ext", "mass_center", "inertia")
    )
    reward = humanoid_direction_reward(float(sim.model.opt.timestep))
    return Locomotion(
        sim,
        humanoid_obs,
        reward,
        obs_dim=376,
        horizon=HORIZON,
        healthy_z=(1.0, 2.0),
        reset_noise=0.01,
        uniform_velocity_noise=True,
    )


def _humanoid_dir() -> TaskDistribution:
    angles = np.random.RandomState(1337).uniform(0.0, 2.0 * np.pi, size=(130,))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    train, test = _split(_tasks(130, direction=directions), 100)
    return TaskDistribution(
        name="humanoid-dir",
        env=gym_humanoid(),
        description="PEARL humanoid direction: θ ~ U[0, 2π), 100 train / 30 test, H=200.",
        reward=(
            "0.25<(cos θ, sin θ), Δcom_xy>/timestep - 0.1||ctrl||² - min(5e-7||cfrc_ext||², 10)"
            " + 5; ends if z ∉ [1, 2]"
        ),
        episodes=EPISODES,
        train_set=train,
        test_set=test,
    )


# --------------------------------------------------------------------------------------------
# MAML's tasks: continuous distributions
# --------------------------------------------------------------------------------------------


def _velocity_sampler(high: float):
    def sampler(key: jax.Array, n: int) -> LocomotionTask:
        v = jax.random.uniform(key, (n,), minval=0.0, maxval=high)
        return LocomotionTask(v, jnp.tile(jnp.float32([1.0, 0.0]), (n, 1)), jnp.zeros((n, 2)))

    return sampler


def _direction_sampler(key: jax.Array, n: int) -> LocomotionTask:
    sign = jnp.where(jax.random.bernoulli(key, 0.5, (n,)), 1.0, -1.0)
    direction = jnp.stack([sign, jnp.zeros_like(sign)], axis=1)
    return LocomotionTask(jnp.zeros((n,)), direction, jnp.zeros((n, 2)))


def _maml_cheetah_vel() -> TaskDistribution:
    return TaskDistribution(
        name="maml-cheetah-vel",
        env=rllab_cheetah("vel"),
        description="MAML half-cheetah velocity (rllab physics): v* ~ U[0,2], H=200.",
        reward="-|v_com - v*| - 0.05||a||², v_com = torso subtree COM velocity, dt = 0.01",
        episodes=EPISODES,
        sampler=_velocity_sampler(2.0),
        num_test=40,
    )


def _maml_cheetah_dir() -> TaskDistribution:
    return TaskDistribution(
        name="maml-cheetah-dir",
        env=rllab_cheetah("dir"),
        description="MAML half-cheetah forward/backward (rllab physics): d = ±1, H=200.",
        reward="d·v_com - 0.05||a||², v_com = torso subtree COM velocity, dt = 0.01",
        episodes=EPISODES,
        sampler=_direction_sampler,
        num_test=40,
    )


def _maml_ant_vel() -> TaskDistribution:
    return TaskDistribution(
        name="maml-ant-vel",
        env=rllab_ant("vel"),
        description="MAML ant velocity (rllab timestep 0.02, Gymnasium's ant): v* ~ U[0,3].",
        reward="-|v_com - v*| + 1 - 5e-3||a||² - 5e-4||clip(cfrc_ext)||² + 0.05",
        episodes=EPISODES,
        sampler=_velocity_sampler(3.0),
        num_test=40,
    )


def _maml_ant_dir() -> TaskDistribution:
    return TaskDistribution(
        name="maml-ant-dir",
        env=rllab_ant("dir"),
        description="MAML ant forward/backward (rllab timestep 0.02, Gymnasium's ant): d = ±1.",
        reward="d·v_com - 5e-3||a||² - 5e-4||clip(cfrc_ext)||² + 0.05",
        episodes=EPISODES,
        sampler=_direction_sampler,
        num_test=40,
    )


# --------------------------------------------------------------------------------------------
# Slopes: train on level ground, test on tilted ground
# --------------------------------------------------------------------------------------------


def slope_gravity(degrees: float) -> np.ndarray:
    """Gravity ``[3]`` on ground tilted by ``degrees`` about y: positive is uphill along +x."""
    theta = math.radians(degrees)
    return 9.81 * np.array([-math.sin(theta), 0.0, -math.cos(theta)])


def slope_tasks(env: Locomotion, n: int, degrees: float, seed: int) -> LocomotionTask:
    """``n`` slope tasks on ground tilted by ``degrees``.

    Each has a target velocity v* ~ U[0, 2] and every body's mass (and inertia) scaled by one
    factor ~ U[0.75, 1.25].
    """
    rng = np.random.RandomState(seed)
    base = env.sim.default_physics()
    scale = rng.uniform(0.75, 1.25, size=(n,))
    physics = PhysicsParams(
        body_mass=base.body_mass[None] * scale[:, None],
        body_inertia=base.body_inertia[None] * scale[:, None, None],
        dof_damping=np.tile(base.dof_damping, (n, 1)),
        geom_friction=np.tile(base.geom_friction, (n, 1, 1)),
        gravity=np.tile(slope_gravity(degrees), (n, 1)),
    )
    return _tasks(n, velocity=rng.uniform(0.0, 2.0, size=(n,)), physics=physics)


def _slope(robot: str, degrees: float = 0.0) -> TaskDistribution:
    env = gym_cheetah("vel") if robot == "cheetah" else gym_ant_velocity()
    train = slope_tasks(env, 200, degrees, seed=1337)
    test = slope_tasks(env, 30, degrees, seed=7331 + int(round(degrees * 10)))
    where = (
        "level ground"
        if degrees == 0
        else (f"{abs(degrees):g}° {'uphill' if degrees > 0 else 'downhill'}")
    )
    suffix = "" if degrees == 0 else f"-{'up' if degrees > 0 else 'down'}{abs(degrees):g}"
    return TaskDistribution(
        name=f"{robot}-slope{suffix}",
        env=env,
        description=(
            f"Slopes experiment, {robot} on {where}: 200 train / 30 test tasks, v* ~ U[0,2], "
            f"mass x U[0.75,1.25]"
            + ("" if degrees == 0 else f" (meta-test {robot}-slope runs here)")
        ),
        reward="-|Δx/dt - v*| - 0.05||a||² (ant: + its contact cost and +1 alive)",
        episodes=EPISODES,
        train_set=train,
        test_set=test,
        num_test=30,
    )


def _ant_velocity_reward(f, ctrl, task, dt):
    v = (f.qpos[:, 0] - f.qpos_before[:, 0]) / dt
    return (
        -np.abs(v - task.velocity)
        - 0.5 * np.sum(ctrl**2, axis=1)
        + 1.0
        - (0.5 * 1e-3 * np.sum(np.clip(f.cfrc_ext, -1.0, 1.0) ** 2, axis=(1, 2)))
    )


@functools.cache
def gym_ant_velocity() -> Locomotion:
    """The ant of the slopes experiment: PEARL's physics, a target velocity along +x."""
    sim = MujocoBatch(robot_xml("ant"), frame_skip=5, features=("xpos", "cfrc_ext"))
    return Locomotion(
        sim, ant_obs, _ant_velocity_reward, obs_dim=27, horizon=HORIZON, healthy_z=(0.2, 1.0)
    )


FACTORIES = {
    "cheetah-vel": _cheetah_vel,
    "cheetah-dir": _cheetah_dir,
    "ant-dir": _ant_dir,
    "ant-goal": _ant_goal,
    "maml-cheetah-vel": _maml_cheetah_vel,
    "maml-cheetah-dir": _maml_cheetah_dir,
    "maml-ant-vel": _maml_ant_vel,
    "maml-ant-dir": _maml_ant_dir,
    "humanoid-dir": _humanoid_dir,
    "walker-params": functools.partial(_params_task, "walker2d"),
    "hopper-params": functools.partial(_params_task, "hopper"),
}
MJX_TWINS = ("cheetah-vel", "cheetah-dir", "cheetah-slope", "walker-params", "hopper-params")
"""Tasks whose MJX twin is registered as ``NAME-mjx``: the gym-convention tasks whose features
MJX computes (no contact forces), see :mod:`quickstudy.envs.mujoco.mjx`."""


def _mjx_twin(name: str) -> TaskDistribution:
    """``name`` with its environment stepped by MJX: pure JAX, for accelerators."""
    from quickstudy.envs.mujoco.mjx import mjx_environment

    native = FACTORIES[name]()
    return dataclasses.replace(
        native,
        name=f"{name}-mjx",
        env=mjx_environment(native.env),
        description=f"{native.description} Stepped by MJX (pure JAX, for accelerators).",
    )


for _robot in ("cheetah", "ant"):
    FACTORIES[f"{_robot}-slope"] = functools.partial(_slope, _robot)
    for _deg in SLOPE_ANGLES:
        FACTORIES[f"{_robot}-slope-up{_deg}"] = functools.partial(_slope, _robot, float(_deg))
        FACTORIES[f"{_robot}-slope-down{_deg}"] = functools.partial(_slope, _robot, -float(_deg))
for _name in MJX_TWINS:
    FACTORIES[f"{_name}-mjx"] = functools.partial(_mjx_twin, _name)
