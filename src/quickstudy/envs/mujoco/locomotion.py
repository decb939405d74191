"""Locomotion task families on native MuJoCo: goal velocities, directions, goals, slopes, dynamics.

:class:`Locomotion` is a :class:`~quickstudy.envs.base.HostEnvironment`: a batch of one robot,
every environment on its own task. A task is a :class:`LocomotionTask` row: the target
velocity, direction or goal the reward asks for, plus optional per-environment physics
(:class:`~quickstudy.envs.mujoco.physics.PhysicsParams`; a tilted gravity is a sloped ground).

Two conventions are implemented because the papers used different ones, and the same task name
means different things in different libraries:

* ``"gym"`` (PEARL): Gymnasium's model and timestep, ``frame_skip`` physics steps per action,
  velocity as the torso's displacement over the step, observations from the state after the
  step, reset noise ``U(-0.1, 0.1)`` on positions and ``0.1·N(0, 1)`` on velocities;
* ``"rllab"`` (MAML): one physics step per action with rllab's timestep, positions and
  velocities recomputed after the step, velocity the torso subtree's centre-of-mass velocity,
  reset noise ``0.01·N(0, 1)`` on positions and ``0.1·N(0, 1)`` on velocities.

Actions are in ``[-1, 1]`` per actuator and mapped linearly onto the actuators' control range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.base import Box, TimeStep
from quickstudy.envs.mujoco.physics import Features, MujocoBatch, PhysicsParams


class LocomotionTask(NamedTuple):
    """One locomotion task (leaves carry a leading batch axis in a batch of tasks).

    Attributes:
        velocity: Target forward velocity (velocity tasks), m/s.
        direction: Unit vector ``[2]`` of the rewarded direction of travel in the ground plane.
        goal: Goal position ``[2]`` (goal tasks).
        physics: Physical parameters, or ``None`` for the robot's own.
    """

    velocity: np.ndarray
    direction: np.ndarray
    goal: np.ndarray
    physics: PhysicsParams | None = None


class LocomotionState(NamedTuple):
    """Batch state: MuJoCo integration states ``[B, S]`` and steps taken ``[B]``."""

    physics: np.ndarray
    t: np.ndarray


RewardFn = Callable[[Features, np.ndarray, LocomotionTask, float], np.ndarray]
ObsFn = Callable[[Features], np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False)
class Locomotion:
    """A batch of one robot on per-environment locomotion tasks, stepped natively on the host.

    Attributes:
        sim: The batched simulator.
        obs_fn: Features after a step -> observations ``[B, D]``.
        reward_fn: ``(features, ctrl, task, dt) -> reward [B]``.
        obs_dim: Observation size.
        horizon: Steps before an episode is truncated.
        healthy_z: ``(low, high)`` of the root's height (``qpos[2]``) outside which the
            episode terminates, or ``None`` for never (a non-finite state always terminates).
        convention: ``"gym"`` or ``"rllab"`` reset noise (see the module docstring).
        terminate_fn: Features after a step -> ``[B]`` bool, when the episode also ends for
            other reasons than ``healthy_z`` (e.g. the walker's torso angle).
        reset_noise: Scale of the uniform position noise at reset in the gym convention; the
            walker and the hopper also draw their velocities from it (the others
            ``0.1·N(0, 1)``), see ``uniform_velocity_noise``.
        uniform_velocity_noise: Velocities at reset ~ ``U(-reset_noise, reset_noise)``.
    """

    sim: MujocoBatch
    obs_fn: ObsFn
    reward_fn: RewardFn
    obs_dim: int
    horizon: int = 200
    healthy_z: tuple[float, float] | None = None
    convention: Literal["gym", "rllab"] = "gym"
    terminate_fn: Callable[[Features], np.ndarray] | None = None
    reset_noise: float = 0.1
    uniform_velocity_noise: bool = False
    host: ClassVar[bool] = True

    @property
    def action_dim(self) -> int:
        """Number of actuators."""
        return int(self.sim.model.nu)

    def observation_space(self, params: LocomotionTask) -> Box:
        """Unbounded real vectors."""
        return Box(-np.inf, np.inf, (self.obs_dim,))

    def action_space(self, params: LocomotionTask) -> Box:
        """``[-1, 1]`` per actuator, mapped onto the control range."""
        return Box(-1.0, 1.0, (self.action_dim,))

    def to_ctrl(self, action: np.ndarray) -> np.ndarray:
        """Maps actions in ``[-1, 1]`` onto the actuators' control range."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        low, high = self.sim.ctrl_low, self.sim.ctrl_high
        return low + (a + 1.0) * 0.5 * (high - low)

    def reset(
        self, rng: np.random.Generator, params: LocomotionTask
    ) -> tuple[LocomotionState, TimeStep]:
        """Starts ``n`` episodes near the initial pose (``params`` leaves ``[n, ...]``)."""
        m = self.sim.model
        n = np.shape(params.velocity)[0]
        if self.convention == "gym":
            qpos = m.qpos0 + rng.uniform(-self.reset_noise, self.reset_noise, (n, m.nq))
            if self.uniform_velocity_noise:
                qvel = rng.uniform(-self.reset_noise, self.reset_noise, (n, m.nv))
            else:
                qvel = 0.1 * rng.standard_normal((n, m.nv))
        else:
            qpos = m.qpos0 + 0.01 * rng.standard_normal((n, m.nq))
            qvel = 0.1 * rng.standard_normal((n, m.nv))
        state = self.sim.initial_state(qpos, qvel)
        state, features = self.sim.step(state, None, params.physics, nstep=0)
        obs = self.obs_fn(features).astype(np.float32)
        false = np.zeros((n,), bool)
        info = {"x_velocity": np.zeros((n,), np.float32)}
        ts = TimeStep(obs, np.zeros((n,), np.float32), false, false, info)
        return LocomotionState(state, np.zeros((n,), np.int32)), ts

    def step(
        self,
        rng: np.random.Generator,
        state: LocomotionState,
        action: np.ndarray,
        params: LocomotionTask,
    ) -> tuple[LocomotionState, TimeStep]:
        """Applies ``action [B, nu]`` for one environment step on every row's own task."""
        del rng
        ctrl = self.to_ctrl(action)
        physics, features = self.sim.step(state.physics, ctrl, params.physics)
        reward = self.reward_fn(features, ctrl, params, self.sim.dt)
        obs = self.obs_fn(features).astype(np.float32)
        t = state.t + 1
        finite = np.all(np.isfinite(physics), axis=1)
        if self.healthy_z is None:
            terminated = ~finite
        else:
            z = features.qpos[:, 2]  # the free root joint's height
            terminated = ~finite | (z < self.healthy_z[0]) | (z > self.healthy_z[1])
        if self.terminate_fn is not None:
            terminated = terminated | self.terminate_fn(features)
        truncated = (t >= self.horizon) & ~terminated
        x_velocity = (features.qpos[:, 0] - features.qpos_before[:, 0]) / self.sim.dt
        info = {"x_velocity": x_velocity.astype(np.float32)}
        ts = TimeStep(obs, reward.astype(np.float32), terminated, truncated, info)
        return LocomotionState(physics, t.astype(np.int32)), ts


# --------------------------------------------------------------------------------------------
# Observations and rewards of the published task families.
# --------------------------------------------------------------------------------------------


def array_module(x) -> Any:
    """``jax.numpy`` for JAX arrays (the MJX backend), NumPy otherwise."""
    return jnp if isinstance(x, jax.Array) else np


def cheetah_obs(f: Features) -> np.ndarray:
    """``qpos[1:] ⊕ qvel ⊕ torso position`` (20 numbers): PEARL's and MAML's cheetah."""
    body = f.com if f.com is not None else f.xpos
    return array_module(f.qpos).concatenate([f.qpos[:, 1:], f.qvel, body], axis=1)


def ant_obs(f: Features) -> np.ndarray:
    """``qpos[2:] ⊕ qvel`` (27 numbers): PEARL's ant-dir."""
    return np.concatenate([f.qpos[:, 2:], f.qvel], axis=1)


def ant_contact_obs(f: Features) -> np.ndarray:
    """``qpos ⊕ qvel ⊕ clip(cfrc_ext, -1, 1)`` (15 + 14 + 84 = 113 numbers): PEARL's ant-goal.

    Unlike ant-dir's, it includes the torso's x and y: a goal task needs the position.
    """
    contacts = np.clip(f.cfrc_ext, -1.0, 1.0).reshape(len(f.qpos), -1)
    return np.concatenate([f.qpos, f.qvel, contacts], axis=1)


def rllab_ant_obs(f: Features) -> np.ndarray:
    """``qpos ⊕ qvel ⊕ clip(cfrc_ext) ⊕ torso xmat ⊕ torso COM`` (125 numbers): MAML's ant."""
    contacts = np.clip(f.cfrc_ext, -1.0, 1.0).reshape(len(f.qpos), -1)
    return np.concatenate([f.qpos, f.qvel, contacts, f.xmat, f.com], axis=1)


def _ctrl_cost(ctrl: np.ndarray, weight: float) -> np.ndarray:
    return weight * array_module(ctrl).sum(ctrl**2, axis=1)


def _contact_cost(f: Features) -> np.ndarray:
    return 0.5 * 1e-3 * np.sum(np.clip(f.cfrc_ext, -1.0, 1.0) ** 2, axis=(1, 2))


def displacement_velocity(f: Features, dt: float) -> np.ndarray:
    """``Δx / dt`` of the root over the step ``[B]`` (Gymnasium's forward velocity)."""
    return (f.qpos[:, 0] - f.qpos_before[:, 0]) / dt


def velocity_reward(velocity: Callable[[Features, float], np.ndarray]) -> RewardFn:
    """``-|v - v*| - 0.05‖a‖²`` (cheetah-vel, PEARL and MAML)."""

    def reward(f, ctrl, task, dt):
        v = velocity(f, dt)
        return -array_module(v).abs(v - task.velocity) - _ctrl_cost(ctrl, 0.05)

    return reward


def direction_reward(velocity: Callable[[Features, float], np.ndarray]) -> RewardFn:
    """``d·v - 0.05‖a‖²`` with ``d = direction[0] ∈ {-1, +1}`` (cheetah-dir)."""

    def reward(f, ctrl, task, dt):
        return task.direction[:, 0] * velocity(f, dt) - _ctrl_cost(ctrl, 0.05)

    return reward


def ant_direction_reward(f, ctrl, task, dt):
    """``⟨Δxy/dt, d⟩ - 0.5‖a‖² - 5e-4‖clip(cfrc_ext)‖² + 1`` (PEARL's ant-dir)."""
    v = (f.qpos[:, :2] - f.qpos_before[:, :2]) / dt
    forward = np.sum(v * task.direction, axis=1)
    return forward - _ctrl_cost(ctrl, 0.5) - _contact_cost(f) + 1.0


def ant_goal_reward(f, ctrl, task, dt):
    """``-‖xy - g‖₁ - 0.1‖a‖² - 5e-4‖clip(cfrc_ext)‖²`` (PEARL's ant-goal)."""
    del dt
    dist = np.sum(np.abs(f.qpos[:, :2] - task.goal), axis=1)
    return -dist - _ctrl_cost(ctrl, 0.1) - _contact_cost(f)


def rllab_ant_velocity_reward(f, ctrl, task, dt):
    """``-|v_com - v*| + 1 - 5e-3‖a‖² - 5e-4‖clip(cfrc_ext)‖² + 0.05`` (MAML's ant-vel)."""
    del dt
    forward = -np.abs(f.comvel[:, 0] - task.velocity) + 1.0
    return forward - _ctrl_cost(ctrl, 0.005) - _contact_cost(f) + 0.05


def rllab_ant_direction_reward(f, ctrl, task, dt):
    """``d·v_com - 5e-3‖a‖² - 5e-4‖clip(cfrc_ext)‖² + 0.05`` (MAML's ant forward/backward)."""
    del dt
    forward = task.direction[:, 0] * f.comvel[:, 0]
    return forward - _ctrl_cost(ctrl, 0.005) - _contact_cost(f) + 0.05


def com_velocity(f: Features, dt: float) -> np.ndarray:
    """The torso subtree's centre-of-mass velocity along x ``[B]`` (rllab's ``comvel``)."""
    del dt
    return f.comvel[:, 0]


def planar_walker_obs(f: Features) -> np.ndarray:
    """``qpos[1:] ⊕ clip(qvel, -10, 10)``: the walker's 17 and the hopper's 11 numbers."""
    xp = array_module(f.qpos)
    return xp.concatenate([f.qpos[:, 1:], xp.clip(f.qvel, -10.0, 10.0)], axis=1)


def planar_walker_reward(f, ctrl, task, dt):
    """``Δx/dt + 1 - 1e-3‖a‖²`` (PEARL's walker-params and hopper-params)."""
    del task
    return displacement_velocity(f, dt) + 1.0 - _ctrl_cost(ctrl, 1e-3)


def walker_fallen(f: Features) -> np.ndarray:
    """The walker's episode ends unless ``0.8 < height < 2`` and ``|angle| < 1``."""
    height, angle = f.qpos[:, 1], f.qpos[:, 2]
    return ~((height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0))


def hopper_fallen(f: Features) -> np.ndarray:
    """The hopper's ends unless every ``|state[2:]| < 100``, ``height > 0.7``, ``|angle| < 0.2``."""
    xp = array_module(f.qpos)
    state = xp.concatenate([f.qpos, f.qvel], axis=1)
    height, angle = f.qpos[:, 1], f.qpos[:, 2]
    ok = xp.all(xp.abs(state[:, 2:]) < 100.0, axis=1) & (height > 0.7) & (xp.abs(angle) < 0.2)
    return ~ok


def humanoid_obs(f: Features) -> np.ndarray:
    """``qpos[2:] ⊕ qvel ⊕ cinert ⊕ cvel ⊕ qfrc_actuator ⊕ cfrc_ext`` (376 numbers)."""
    n = len(f.qpos)
    parts = [f.qpos[:, 2:], f.qvel, f.cinert.reshape(n, -1), f.cvel.reshape(n, -1)]
    parts += [f.qfrc_actuator, f.cfrc_ext.reshape(n, -1)]
    return np.concatenate(parts, axis=1)


def humanoid_direction_reward(timestep: float) -> RewardFn:
    """PEARL's humanoid-dir reward.

    ``0.25·⟨d, Δcom_xy⟩ / timestep - 0.1‖ctrl‖² - min(5e-7‖cfrc_ext‖², 10) + 5``, with the
    displacement of the centre of mass divided by the physics timestep (not the step's
    duration), as PEARL's code does.
    """

    def reward(f, ctrl, task, dt):
        del dt
        moved = f.mass_center[:, 1, :2] - f.mass_center[:, 0, :2]
        forward = 0.25 * np.sum(moved * task.direction, axis=1) / timestep
        impact = np.minimum(0.5e-6 * np.sum(f.cfrc_ext**2, axis=(1, 2)), 10.0)
        return forward - _ctrl_cost(ctrl, 0.1) - impact + 5.0

    return reward
