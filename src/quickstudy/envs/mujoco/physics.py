"""Native MuJoCo stepped on the host in batches, each environment with its own physics.

A :class:`MujocoBatch` steps ``B`` copies of one robot model, spread over a small thread pool
(``mj_step`` releases the GIL). The state of every environment is MuJoCo's integration state
(``mjSTATE_INTEGRATION``: time, positions, velocities, controls, the solver's warm start, ...)
as one float64 row, so a batch's state is a plain ``[B, S]`` array that can be checkpointed,
sliced and reset row by row, and stepping from it is exactly continuing the simulation.

Per-environment physical parameters (:class:`PhysicsParams`: masses, inertias, damping,
friction, gravity) live in a private model per environment, rewritten only when a row's
parameters change; without them every environment shares the base model.

Robot models are the XML files Gymnasium ships (``gymnasium/envs/mujoco/assets``): nothing is
downloaded.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, NamedTuple

import mujoco
import numpy as np
from mujoco import rollout

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
"""The state of the ``"threads"`` backend: everything integration reads, the warm start too."""
ROLLOUT_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
"""The state of the ``"rollout"`` backend (what ``mujoco.rollout`` takes and returns)."""
ROLLOUT_FEATURES = ("xpos",)
MIN_ROWS_PER_THREAD = 32
"""Below this many rows per worker the batch is stepped on the calling thread: the Python
work between steps holds the GIL, and handing it between threads cost more than the second
core gave (half-cheetah, 20 rows: 30k env steps/s on one thread, 25k on two)."""
FEATURES = ("xpos", "com", "comvel", "xmat", "cfrc_ext", "mass_center", "inertia")
"""What a step can report besides ``qpos``/``qvel``, for one body (the torso, by default):
``xpos`` its frame position, ``com`` its subtree's centre of mass, ``comvel`` that centre's
linear velocity (``mj_subtreeVel``), ``xmat`` its orientation, and ``cfrc_ext`` the external
contact forces of every body (``mj_rnePostConstraint``; MuJoCo leaves them zero otherwise),
``mass_center`` the whole robot's centre of mass before and after the step (``[B, 2, 3]``, by
forward kinematics of each state), ``inertia`` the bodies' ``cinert``, ``cvel`` and the joints'
``qfrc_actuator`` (the humanoid's observation)."""


def robot_xml(name: str) -> str:
    """Path of a robot model shipped with Gymnasium, e.g. ``"half_cheetah"`` or ``"ant"``."""
    path = importlib.resources.files("gymnasium") / "envs" / "mujoco" / "assets" / f"{name}.xml"
    if not path.is_file():
        raise FileNotFoundError(f"no robot model {name!r} in Gymnasium's assets ({path})")
    return str(path)


class PhysicsParams(NamedTuple):
    """Physical parameters of one environment (leaves may carry a leading batch axis).

    Attributes:
        body_mass: ``[nbody]`` masses.
        body_inertia: ``[nbody, 3]`` principal inertias.
        dof_damping: ``[nv]`` joint damping.
        geom_friction: ``[ngeom, 3]`` sliding, torsional and rolling friction.
        gravity: ``[3]`` gravitational acceleration (a tilted vector is a sloped ground).
    """

    body_mass: np.ndarray
    body_inertia: np.ndarray
    dof_damping: np.ndarray
    geom_friction: np.ndarray
    gravity: np.ndarray


class Features(NamedTuple):
    """What one batched step reports, ``[B, ...]`` (unrequested fields are ``None``)."""

    qpos_before: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray
    xpos: np.ndarray | None
    com: np.ndarray | None
    comvel: np.ndarray | None
    xmat: np.ndarray | None
    cfrc_ext: np.ndarray | None
    mass_center: np.ndarray | None = None
    cinert: np.ndarray | None = None
    cvel: np.ndarray | None = None
    qfrc_actuator: np.ndarray | None = None


@dataclasses.dataclass(eq=False)
class MujocoBatch:
    """A batch of one robot's simulations, stepped ``frame_skip`` physics steps at a time.

    Attributes:
        xml_path: The robot model.
        frame_skip: Physics steps per environment step.
        timestep: Physics timestep (``None``: the model's).
        features: Which of :data:`FEATURES` a step reports.
        body: The body whose ``xpos``/``com``/``comvel``/``xmat`` are reported.
        forward_after_step: Recompute positions and velocities after the last physics step
            (rllab's convention); without it the reported body quantities are those of the
            last step's start (Gymnasium's).
        geom_solimp: Every geom's contact impedance ``(d0, dwidth, width)``, the first three
            numbers of MuJoCo's ``solimp``, in place of the model's (``None``: the model's).
        threads: Worker threads (default: the cores this process may use, at most 4).
        backend: ``"rollout"`` steps the batch with ``mujoco.rollout`` (C++ threads, no GIL;
            reports only ``xpos``, read by a sensor, and starts each environment step's
            constraint solver cold); ``"threads"`` with ``mj_step`` on a Python thread pool
            (every feature, and the solver's warm start is part of the state, so stepping
            from a saved state is bit-identical to continuing); ``"auto"`` takes ``rollout``
            where it can report what is asked.
    """

    xml_path: str
    frame_skip: int
    timestep: float | None = None
    features: tuple[str, ...] = ("xpos",)
    body: str = "torso"
    forward_after_step: bool = False
    geom_solimp: tuple[float, float, float] | None = None
    threads: int | None = None
    backend: Literal["auto", "threads", "rollout"] = "auto"

    def __post_init__(self):
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; valid: {FEATURES}")
        can_roll = set(self.features) <= set(ROLLOUT_FEATURES) and not self.forward_after_step
        if self.backend == "rollout" and not can_roll:
            raise ValueError(
                f"the rollout backend reports only {ROLLOUT_FEATURES} without a forward pass "
                f"after the step; asked for {self.features}"
            )
        self.use_rollout = self.backend == "rollout" or (self.backend == "auto" and can_roll)
        spec = mujoco.MjSpec.from_file(self.xml_path)
        if self.use_rollout:  # the body's frame position, read by a sensor during the step
            spec.add_sensor(
                name="quickstudy_xpos",
                type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
                objtype=mujoco.mjtObj.mjOBJ_XBODY,
                objname=self.body,
            )
        self.model = spec.compile()
        if self.timestep is not None:
            self.model.opt.timestep = self.timestep
        if self.geom_solimp is not None:
            self.model.geom_solimp[:, :3] = self.geom_solimp
        self.body_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, self.body)
        if self.body_id < 0:
            raise ValueError(f"{self.xml_path} has no body {self.body!r}")
        self.state_spec = ROLLOUT_STATE_SPEC if self.use_rollout else STATE_SPEC
        self.state_size = mujoco.mj_stateSize(self.model, self.state_spec)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.num_threads = max(1, self.threads or min(cores, 4))
        self._datas = [mujoco.MjData(self.model) for _ in range(self.num_threads)]
        self._pool = ThreadPoolExecutor(self.num_threads) if self.num_threads > 1 else None
        self._rollout = rollout.Rollout(nthread=self.num_threads) if self.use_rollout else None
        self._models: list[mujoco.MjModel] = []
        self._physics: PhysicsParams | None = None
        low, high = self.model.actuator_ctrlrange.T
        self.ctrl_low, self.ctrl_high = low.copy(), high.copy()

    @property
    def dt(self) -> float:
        """Seconds per environment step."""
        return float(self.model.opt.timestep) * self.frame_skip

    def default_physics(self) -> PhysicsParams:
        """The base model's physical parameters (one environment, no batch axis)."""
        m = self.model
        return PhysicsParams(
            m.body_mass.copy(),
            m.body_inertia.copy(),
            m.dof_damping.copy(),
            m.geom_friction.copy(),
            m.opt.gravity.copy(),
        )

    def initial_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """States ``[n, S]`` that start at ``qpos [n, nq]``, ``qvel [n, nv]`` (time 0)."""
        data = mujoco.MjData(self.model)
        out = np.zeros((len(qpos), self.state_size))
        for i in range(len(qpos)):
            mujoco.mj_resetData(self.model, data)
            data.qpos[:], data.qvel[:] = qpos[i], qvel[i]
            mujoco.mj_getState(self.model, data, out[i], self.state_spec)
        return out

    def _models_for(self, physics: PhysicsParams | None, n: int) -> list[mujoco.MjModel]:
        """One model per row: the base model, or private copies holding each row's physics."""
        if physics is None:
            return [self.model] * n
        while len(self._models) < n:
            self._models.append(copy.deepcopy(self.model))
        rows = np.arange(n)
        if self._physics is not None and len(self._physics.gravity) >= n:
            same = [
                np.all((a[:n] == b[:n]).reshape(n, -1), axis=1)
                for a, b in zip(self._physics, physics, strict=True)
            ]
            rows = rows[~np.logical_and.reduce(same)]
        for i in rows:
            m = self._models[i]
            m.body_mass[:] = physics.body_mass[i]
            m.body_inertia[:] = physics.body_inertia[i]
            m.dof_damping[:] = physics.dof_damping[i]
            m.geom_friction[:] = physics.geom_friction[i]
            m.opt.gravity[:] = physics.gravity[i]
        if self._physics is None or len(self._physics.gravity) < n:
            self._physics = PhysicsParams(*(np.array(x, copy=True) for x in physics))
        else:
            for mine, new in zip(self._physics, physics, strict=True):
                mine[rows] = new[rows]
        return self._models[:n]

    def step(
        self,
        state: np.ndarray,
        ctrl: np.ndarray | None,
        physics: PhysicsParams | None = None,
        nstep: int | None = None,
    ) -> tuple[np.ndarray, Features]:
        """Advances every row ``nstep`` (default ``frame_skip``) physics steps under ``ctrl``.

        Args:
            state: ``[B, S]`` integration states.
            ctrl: ``[B, nu]`` controls in the actuators' units (clipped to their range), or
                ``None`` with ``nstep=0`` to only report the features of ``state``.
            physics: Per-row physical parameters (leaves ``[B, ...]``), or ``None`` for the
                base model.
            nstep: Physics steps (0: evaluate the state without stepping).

        Returns:
            The new states ``[B, S]`` and the requested :class:`Features`.
        """
        n = len(state)
        nstep = self.frame_skip if nstep is None else nstep
        models = self._models_for(physics, n)
        if self.use_rollout and nstep:
            return self._step_rollout(state, ctrl, models, nstep)
        m = self.model
        new_state = np.empty_like(state)
        out = {
            "qpos_before": np.empty((n, m.nq)),
            "qpos": np.empty((n, m.nq)),
            "qvel": np.empty((n, m.nv)),
        }
        for name, shape in (("xpos", (3,)), ("com", (3,)), ("comvel", (3,)), ("xmat", (9,))):
            if name in self.features:
                out[name] = np.empty((n, *shape))
        if "cfrc_ext" in self.features:
            out["cfrc_ext"] = np.empty((n, m.nbody, 6))
        if "mass_center" in self.features:
            out["mass_center"] = np.empty((n, 2, 3))
        if "inertia" in self.features:
            out["cinert"] = np.empty((n, m.nbody, 10))
            out["cvel"] = np.empty((n, m.nbody, 6))
            out["qfrc_actuator"] = np.empty((n, m.nv))
        if ctrl is not None:
            ctrl = np.clip(ctrl, self.ctrl_low, self.ctrl_high)

        def work(worker: int, lo: int, hi: int) -> None:
            data, body = self._datas[worker], self.body_id
            want = self.features
            for i in range(lo, hi):
                model = models[i]
                mujoco.mj_setState(model, data, state[i], self.state_spec)
                out["qpos_before"][i] = data.qpos
                if "mass_center" in want:
                    mujoco.mj_kinematics(model, data)
                    out["mass_center"][i, 0] = _mass_center(model, data)
                if nstep:
                    data.ctrl[:] = ctrl[i]
                    mujoco.mj_step(model, data, nstep)
                if self.forward_after_step or not nstep:
                    mujoco.mj_forward(model, data)
                if "comvel" in want:
                    mujoco.mj_subtreeVel(model, data)
                if "cfrc_ext" in want:
                    mujoco.mj_rnePostConstraint(model, data)
                    out["cfrc_ext"][i] = data.cfrc_ext
                out["qpos"][i], out["qvel"][i] = data.qpos, data.qvel
                if "xpos" in want:
                    out["xpos"][i] = data.xpos[body]
                if "com" in want:
                    out["com"][i] = data.subtree_com[body]
                if "comvel" in want:
                    out["comvel"][i] = data.subtree_linvel[body]
                if "xmat" in want:
                    out["xmat"][i] = data.xmat[body]
                if "inertia" in want:
                    out["cinert"][i], out["cvel"][i] = data.cinert, data.cvel
                    out["qfrc_actuator"][i] = data.qfrc_actuator
                if "mass_center" in want:
                    mujoco.mj_kinematics(model, data)
                    out["mass_center"][i, 1] = _mass_center(model, data)
                mujoco.mj_getState(model, data, new_state[i], self.state_spec)

        bounds = np.linspace(0, n, self.num_threads + 1).astype(int)
        if self._pool is None or n < MIN_ROWS_PER_THREAD * self.num_threads:
            work(0, 0, n)
        else:
            jobs = [
                self._pool.submit(work, w, bounds[w], bounds[w + 1])
                for w in range(self.num_threads)
            ]
            for job in jobs:
                job.result()
        features = Features(**{name: out.get(name) for name in Features._fields})
        return new_state, features

    def _step_rollout(self, state, ctrl, models, nstep) -> tuple[np.ndarray, Features]:
        m, n = self.model, len(state)
        ctrl = np.clip(ctrl, self.ctrl_low, self.ctrl_high)
        # Every input in the exact layout mujoco.rollout wants, so its checks can be skipped
        # (they cost about a tenth of a 20-row step).
        control = np.ascontiguousarray(np.repeat(ctrl[:, None, :], nstep, axis=1), np.float64)
        initial = np.ascontiguousarray(state, np.float64)
        states = np.empty((n, nstep, self.state_size))
        sensors = np.empty((n, nstep, m.nsensordata))
        self._rollout.rollout(
            list(models),
            self._datas,
            initial,
            control,
            nstep=nstep,
            state=states,
            sensordata=sensors,
            skip_checks=True,
        )
        new_state = states[:, -1]
        q0 = 1  # the state row starts with the time
        features = Features(
            qpos_before=state[:, q0 : q0 + m.nq].copy(),
            qpos=new_state[:, q0 : q0 + m.nq].copy(),
            qvel=new_state[:, q0 + m.nq : q0 + m.nq + m.nv].copy(),
            xpos=sensors[:, -1, 0:3].copy(),
            com=None,
            comvel=None,
            xmat=None,
            cfrc_ext=None,
        )
        return np.ascontiguousarray(new_state), features

    def close(self) -> None:
        """Stops the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
        if self._rollout is not None:
            self._rollout.close()


def _mass_center(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The robot's centre of mass from the bodies' ``xipos`` (world body excluded)."""
    mass = model.body_mass[:, None]
    return (mass * data.xipos).sum(axis=0) / mass.sum()
