"""The MJX backend: a locomotion task as a pure-JAX environment, for accelerators.

:func:`mjx_environment` turns a native :class:`~quickstudy.envs.mujoco.locomotion.Locomotion`
into a pure-JAX :class:`~quickstudy.envs.base.Environment` stepped by MuJoCo XLA (``mujoco-mjx``,
the ``mjx`` extra) from the same compiled model, with the same observation and reward
functions and per-environment physics read from the task. The pure-JAX collectors then run
the physics inside the training program, so on a GPU a whole update is one compiled program.

On a CPU the native batches are much faster (the machine notes give 1-2k env steps/s for MJX
on this CPU against 30-60k natively), so the registered tasks use the native path, and their
twins ``NAME-mjx`` (:data:`quickstudy.tasks.locomotion.MJX_TWINS`) this one; a parity test
checks that both paths agree over a short rollout. MJX computes in float32 by default and
supports only what a task's features need without contact forces (the ``xpos`` tasks: PEARL's
cheetahs, the slopes' cheetah, the walker and the hopper).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Box, TimeStep
from quickstudy.envs.mujoco.locomotion import Locomotion, LocomotionTask
from quickstudy.envs.mujoco.physics import Features


class MjxState(NamedTuple):
    """One environment: the leaves of MJX's ``Data`` and the steps taken.

    The leaves, not ``Data`` itself, so that a checkpoint (a pytree of arrays, tuples and
    dicts) can hold environments in flight; :meth:`MjxLocomotion.data` rebuilds ``Data``.
    """

    data: tuple[jax.Array, ...]
    t: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class MjxLocomotion:
    """A :class:`Locomotion` task stepped by MJX (pure JAX, one environment; ``vmap`` it).

    Attributes:
        native: The native environment whose model, conventions and functions it uses.
    """

    native: Locomotion
    host: ClassVar[bool] = False

    def __post_init__(self):
        from mujoco import mjx  # the optional dependency

        native = self.native
        if native.convention != "gym" or set(native.sim.features) - {"xpos"}:
            raise ValueError(
                "the MJX backend supports the gym convention with the xpos feature only; "
                f"got {native.convention} with {native.sim.features}"
            )
        object.__setattr__(self, "_mjx", mjx)
        object.__setattr__(self, "_model", mjx.put_model(native.sim.model))
        object.__setattr__(self, "_data_tree", jax.tree.structure(mjx.make_data(self._model)))

    def data(self, state: MjxState):
        """MJX's ``Data`` of an environment state."""
        return jax.tree.unflatten(self._data_tree, state.data)

    @property
    def horizon(self) -> int:
        """Steps before an episode is truncated."""
        return self.native.horizon

    def observation_space(self, params: LocomotionTask) -> Box:
        """As the native environment's."""
        return self.native.observation_space(params)

    def action_space(self, params: LocomotionTask) -> Box:
        """As the native environment's."""
        return self.native.action_space(params)

    def _model_for(self, params: LocomotionTask):
        model = self._model
        if params.physics is None:
            return model
        p = params.physics
        return model.replace(
            body_mass=p.body_mass,
            body_inertia=p.body_inertia,
            dof_damping=p.dof_damping,
            geom_friction=p.geom_friction,
            opt=model.opt.replace(gravity=p.gravity),
        )

    def _features(self, before, data) -> Features:
        body = self.native.sim.body_id
        return Features(
            qpos_before=before[None],
            qpos=data.qpos[None],
            qvel=data.qvel[None],
            xpos=data.xpos[body][None],
            com=None,
            comvel=None,
            xmat=None,
            cfrc_ext=None,
        )

    def reset(self, key: jax.Array, params: LocomotionTask) -> tuple[MjxState, TimeStep]:
        """Starts an episode near the initial pose (the native convention's noise)."""
        mjx, m = self._mjx, self.native.sim.model
        model = self._model_for(params)
        k_pos, k_vel = jax.random.split(key)
        noise = self.native.reset_noise
        qpos = m.qpos0 + jax.random.uniform(k_pos, (m.nq,), minval=-noise, maxval=noise)
        if self.native.uniform_velocity_noise:
            qvel = jax.random.uniform(k_vel, (m.nv,), minval=-noise, maxval=noise)
        else:
            qvel = 0.1 * jax.random.normal(k_vel, (m.nv,))
        data = mjx.make_data(model).replace(qpos=qpos, qvel=qvel)
        data = mjx.forward(model, data)
        obs = self.native.obs_fn(self._features(qpos, data))[0]
        info = {"x_velocity": jnp.zeros((), jnp.float32)}
        zero = jnp.zeros((), jnp.float32)
        ts = TimeStep(obs.astype(jnp.float32), zero, jnp.bool_(False), jnp.bool_(False), info)
        return MjxState(tuple(jax.tree.leaves(data)), jnp.zeros((), jnp.int32)), ts

    def step(
        self, key: jax.Array, state: MjxState, action: jax.Array, params: LocomotionTask
    ) -> tuple[MjxState, TimeStep]:
        """Applies ``action`` for ``frame_skip`` physics steps."""
        del key
        native, mjx = self.native, self._mjx
        model = self._model_for(params)
        sim = native.sim
        a = jnp.clip(action, -1.0, 1.0)
        ctrl = sim.ctrl_low + (a + 1.0) * 0.5 * (sim.ctrl_high - sim.ctrl_low)
        data = self.data(state)
        before = data.qpos
        data = data.replace(ctrl=ctrl)
        data = jax.lax.fori_loop(0, sim.frame_skip, lambda _, d: mjx.step(model, d), data)
        batched = jax.tree.map(lambda x: x[None], params)
        features = self._features(before, data)
        reward = native.reward_fn(features, ctrl[None], batched, sim.dt)[0]
        obs = native.obs_fn(features)[0]
        t = state.t + 1
        finite = jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
        terminated = ~finite
        if native.healthy_z is not None:
            z = data.qpos[2]
            terminated = terminated | (z < native.healthy_z[0]) | (z > native.healthy_z[1])
        if native.terminate_fn is not None:
            terminated = terminated | native.terminate_fn(features)[0]
        truncated = (t >= native.horizon) & ~terminated
        info = {"x_velocity": ((data.qpos[0] - before[0]) / sim.dt).astype(jnp.float32)}
        ts = TimeStep(
            obs.astype(jnp.float32), reward.astype(jnp.float32), terminated, truncated, info
        )
        return MjxState(tuple(jax.tree.leaves(data)), t), ts


def mjx_environment(native: Locomotion) -> MjxLocomotion:
    """The MJX counterpart of a native locomotion environment (needs ``mujoco-mjx``)."""
    return MjxLocomotion(native)
