"""2-D point navigation: MAML's ``nav2d`` and PEARL's (sparse) point robot.

References: Finn et al. 2017 (MAML), §5.3 and ``maml_rl``'s point environment; Rakelly et al.
2019 (PEARL), appendix, and its point-robot environments.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.base import Box, TimeStep, timestep


class GoalParams(NamedTuple):
    """One navigation task.

    Attributes:
        goal: Goal position, shape ``[2]``.
    """

    goal: jax.Array


class PointState(NamedTuple):
    """Position ``[2]`` and step counter."""

    pos: jax.Array
    t: jax.Array


@dataclasses.dataclass(frozen=True)
class PointNavigation:
    """A point that moves by its (clipped) action: ``s' = s + clip(a, -max_action, max_action)``.

    Starts at the origin, or with ``start_range`` anywhere in ``[-start_range, start_range]^2``
    (PEARL's authors' point robot); observation is the position ``[2]``. Rewards, on the new
    position:

    * dense (``sparse=False``): ``-||s' - g||_2``;
    * sparse: ``1 - ||s' - g||_2`` when ``||s' - g||_2 <= goal_radius``, else 0; the dense
      reward is then ``info["dense_reward"]`` (PEARL's authors train the critic on it).

    With ``terminate_at_goal`` the episode ends when ``|dx| < 0.01 and |dy| < 0.01`` (MAML's
    rule) and ``info["success"]`` marks that step; otherwise the episode is truncated after
    ``horizon`` steps and ``info["success"]`` is 1 while the point is within ``goal_radius``.

    Attributes:
        horizon: Episode length limit (static).
        max_action: Per-coordinate action bound.
        sparse: Use the sparse reward.
        goal_radius: Success (and sparse reward) radius.
        terminate_at_goal: End the episode on reaching the goal (|dx|, |dy| < 0.01).
        start_range: Start uniformly in ``[-start_range, start_range]^2`` (0: the origin).
    """

    horizon: int = 100
    max_action: float = 0.1
    sparse: bool = False
    goal_radius: float = 0.2
    terminate_at_goal: bool = False
    start_range: float = 0.0

    def reset(self, key: jax.Array, params: GoalParams) -> tuple[PointState, TimeStep]:
        """Starts at the origin (or uniformly within ``start_range``)."""
        del params
        pos = jnp.zeros((2,), jnp.float32)
        if self.start_range:
            r = self.start_range
            pos = jax.random.uniform(key, (2,), jnp.float32, minval=-r, maxval=r)
        state = PointState(pos, jnp.zeros((), jnp.int32))
        extra = {"dense_reward": jnp.float32(0.0)} if self.sparse else {}
        return state, timestep(state.pos, success=jnp.float32(0.0), **extra)

    def step(
        self, key: jax.Array, state: PointState, action: jax.Array, params: GoalParams
    ) -> tuple[PointState, TimeStep]:
        """Moves by the clipped action and scores the new position."""
        del key
        pos = state.pos + jnp.clip(action, -self.max_action, self.max_action)
        delta = pos - params.goal
        dist = jnp.sqrt(jnp.sum(delta**2))
        within = dist <= self.goal_radius
        reward = jnp.where(within, 1.0 - dist, 0.0) if self.sparse else -dist
        t = state.t + 1
        if self.terminate_at_goal:
            terminated = jnp.all(jnp.abs(delta) < 0.01)
            success = terminated
        else:
            terminated, success = jnp.asarray(False), within
        truncated = (t >= self.horizon) & ~terminated
        extra = {"dense_reward": -dist} if self.sparse else {}
        ts = timestep(
            pos, reward, terminated, truncated, success=success.astype(jnp.float32), **extra
        )
        return PointState(pos, t), ts

    def observation_space(self, params: GoalParams) -> Box:
        """Unbounded 2-D position."""
        return Box(-jnp.inf, jnp.inf, (2,))

    def action_space(self, params: GoalParams) -> Box:
        """Displacement per step, clipped to ``[-max_action, max_action]^2``."""
        return Box(-self.max_action, self.max_action, (2,))


@dataclasses.dataclass(frozen=True)
class HostPointNavigation:
    """A :class:`PointNavigation` stepped in NumPy behind the host protocol (outside ``jit``).

    The same dynamics, rewards and flags in float32, so that from the same actions it produces
    the same trajectories as the JAX version: the reference implementation of
    :class:`~quickstudy.envs.base.HostEnvironment` that the host collector is tested on before
    native physics plugs into the same seam.

    Attributes:
        spec: The JAX environment whose settings (horizon, action bound, reward) it follows.
    """

    spec: PointNavigation
    host: ClassVar[bool] = True

    @property
    def horizon(self) -> int:
        """Episode length limit."""
        return self.spec.horizon

    def observation_space(self, params: GoalParams) -> Box:
        """Unbounded 2-D position."""
        return self.spec.observation_space(params)

    def action_space(self, params: GoalParams) -> Box:
        """Displacement per step (see :class:`PointNavigation`)."""
        return self.spec.action_space(params)

    def reset(self, rng: np.random.Generator, params: GoalParams) -> tuple[PointState, TimeStep]:
        """Starts ``n`` points at the origin or within ``start_range`` (``goal`` is ``[n, 2]``).

        Random starts come from ``rng``, so they differ from the JAX version's.
        """
        n = np.shape(params.goal)[0]
        pos = np.zeros((n, 2), np.float32)
        if self.spec.start_range:
            r = self.spec.start_range
            pos = rng.uniform(-r, r, size=(n, 2)).astype(np.float32)
        state = PointState(pos, np.zeros((n,), np.int32))
        false = np.zeros((n,), bool)
        info = {"success": np.zeros((n,), np.float32)}
        if self.spec.sparse:
            info["dense_reward"] = np.zeros((n,), np.float32)
        return state, TimeStep(state.pos.copy(), np.zeros((n,), np.float32), false, false, info)

    def step(
        self, rng: np.random.Generator, state: PointState, action: np.ndarray, params: GoalParams
    ) -> tuple[PointState, TimeStep]:
        """Moves every point by its clipped action and scores the new positions."""
        del rng
        spec = self.spec
        step = np.clip(np.asarray(action, np.float32), -spec.max_action, spec.max_action)
        pos = (state.pos + step).astype(np.float32)
        delta = pos - np.asarray(params.goal, np.float32)
        dist = np.sqrt(np.sum(delta**2, axis=-1))
        within = dist <= spec.goal_radius
        sparse = np.where(within, np.float32(1.0) - dist, np.float32(0.0))
        reward = sparse if spec.sparse else -dist
        t = state.t + 1
        if spec.terminate_at_goal:
            terminated = np.all(np.abs(delta) < 0.01, axis=-1)
            success = terminated
        else:
            terminated, success = np.zeros_like(within), within
        truncated = (t >= spec.horizon) & ~terminated
        info = {"success": success.astype(np.float32)}
        if spec.sparse:
            info["dense_reward"] = (-dist).astype(np.float32)
        ts = TimeStep(pos.copy(), reward.astype(np.float32), terminated, truncated, info)
        return PointState(pos, t.astype(np.int32)), ts
