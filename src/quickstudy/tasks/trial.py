"""The trial wrapper: K consecutive episodes of one task, as one RL² meta-episode.

Duan et al. 2016 (RL², §2.2): the agent's input at every step is the observation together with the
previous action, the previous reward and a flag that the previous step ended an episode; its memory
persists across the episodes of a trial and is reset between trials (that reset belongs to the
policy, driven by the trial's ``terminated`` flag).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from quickstudy.envs.base import (
    Box,
    Discrete,
    Environment,
    HostEnvironment,
    TimeStep,
    tree_select,
)

PyTree = Any


class TrialState(NamedTuple):
    """The inner environment's state and the index of the current episode."""

    inner: PyTree
    episode: jax.Array


@dataclasses.dataclass(frozen=True)
class Trial:
    """Wraps an environment so that one episode of the wrapper is ``episodes`` inner episodes.

    Observation: ``obs ⊕ prev_action ⊕ prev_reward ⊕ done`` with the previous action one-hot
    (discrete) or clipped to the action space (continuous); all zeros after ``reset``. When an
    inner episode ends the inner environment resets on the same task. The trial ends, with
    ``terminated=True``, when the ``episodes``-th inner episode ends: the trial objective is the
    finite sum of rewards over its episodes, so nothing is bootstrapped past it.

    ``info`` adds ``episode`` (index of the episode the transition belongs to) and
    ``episode_done`` (whether that inner episode ended here) to the inner info.

    Attributes:
        env: The inner environment.
        episodes: Episodes per trial ``K`` (static).
    """

    env: Environment
    episodes: int

    def _augment(self, obs, action, reward, done, params) -> jax.Array:
        space = self.env.action_space(params)
        if isinstance(space, Discrete):
            act = jax.nn.one_hot(action, space.n, dtype=jnp.float32)
        else:
            act = jnp.clip(action, space.low, space.high).astype(jnp.float32)
        extra = jnp.stack([jnp.asarray(reward, jnp.float32), jnp.asarray(done, jnp.float32)])
        return jnp.concatenate([obs.astype(jnp.float32).reshape(-1), act.reshape(-1), extra])

    def _zero_action(self, params) -> jax.Array:
        space = self.env.action_space(params)
        if isinstance(space, Discrete):
            return jnp.asarray(-1, jnp.int32)  # one_hot(-1) is all zeros
        return jnp.zeros(space.shape, jnp.float32)

    def reset(self, key: jax.Array, params: PyTree) -> tuple[TrialState, TimeStep]:
        """Starts the first episode of a trial on task ``params``."""
        inner, ts = self.env.reset(key, params)
        obs = self._augment(ts.obs, self._zero_action(params), 0.0, False, params)
        info = dict(ts.info, episode=jnp.zeros((), jnp.int32), episode_done=jnp.asarray(False))
        state = TrialState(inner, jnp.zeros((), jnp.int32))
        return state, ts._replace(obs=obs, info=info)

    def step(
        self, key: jax.Array, state: TrialState, action: jax.Array, params: PyTree
    ) -> tuple[TrialState, TimeStep]:
        """Steps the inner environment, resetting it on the same task when its episode ends."""
        k_step, k_reset = jax.random.split(key)
        inner, ts = self.env.step(k_step, state.inner, action, params)
        ep_done = ts.terminated | ts.truncated
        inner_reset, ts_reset = self.env.reset(k_reset, params)
        inner = tree_select(ep_done, inner_reset, inner)
        next_obs = jnp.where(ep_done, ts_reset.obs, ts.obs)
        episode = state.episode + ep_done.astype(jnp.int32)
        obs = self._augment(next_obs, action, ts.reward, ep_done, params)
        info = dict(ts.info, episode=state.episode, episode_done=ep_done)
        out = TimeStep(
            obs=obs,
            reward=ts.reward,
            terminated=episode >= self.episodes,
            truncated=jnp.asarray(False),
            info=info,
        )
        return TrialState(inner, episode), out

    def observation_space(self, params: PyTree) -> Box:
        """Augmented observation: inner obs, previous action, reward and done flag."""
        return augmented_space(self.env, params)

    def action_space(self, params: PyTree) -> Discrete | Box:
        """The inner action space."""
        return self.env.action_space(params)


def augmented_space(env: Environment | HostEnvironment, params: PyTree) -> Box:
    """The trial observation of ``env``: inner obs, previous action, reward and done flag."""
    inner = env.observation_space(params)
    space = env.action_space(params)
    act_dim = space.n if isinstance(space, Discrete) else math.prod(space.shape)
    return Box(-jnp.inf, jnp.inf, (math.prod(inner.shape) + act_dim + 2,))


def task_features(params: PyTree) -> jax.Array:
    """Every leaf of one task's parameters, flattened and concatenated ``[F]`` (float32)."""
    return ravel_pytree(params)[0].astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class WithTaskFeatures:
    """Appends the task's parameters (:func:`task_features`) to every observation.

    For an asymmetric critic (Pinto et al. 2018): a network that reads only the wrapped
    environment's observation for its policy can give the rest to its value head, which then
    knows the task the policy has to infer.

    Attributes:
        env: The wrapped environment (usually a :class:`Trial`).
    """

    env: Environment

    def reset(self, key: jax.Array, params: PyTree) -> tuple[PyTree, TimeStep]:
        """Resets the wrapped environment."""
        state, ts = self.env.reset(key, params)
        return state, ts._replace(obs=jnp.concatenate([ts.obs, task_features(params)]))

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> tuple[PyTree, TimeStep]:
        """Steps the wrapped environment."""
        state, ts = self.env.step(key, state, action, params)
        return state, ts._replace(obs=jnp.concatenate([ts.obs, task_features(params)]))

    def observation_space(self, params: PyTree) -> Box:
        """The wrapped observation followed by the task features."""
        inner = math.prod(self.env.observation_space(params).shape)
        return Box(-jnp.inf, jnp.inf, (inner + task_features(params).shape[0],))

    def action_space(self, params: PyTree) -> Discrete | Box:
        """The wrapped action space."""
        return self.env.action_space(params)


@dataclasses.dataclass(frozen=True)
class HostTrial:
    """:class:`Trial` for a batch of host environments (NumPy, outside ``jit``).

    The same observation (``obs ⊕ prev_action ⊕ prev_reward ⊕ done``), the same inner resets on
    the same task and the same ``terminated`` at the end of the ``episodes``-th episode, for a
    :class:`~quickstudy.envs.base.HostEnvironment`; itself a host environment.

    Attributes:
        env: The inner host environment.
        episodes: Episodes per trial ``K``.
    """

    env: HostEnvironment
    episodes: int
    host: ClassVar[bool] = True

    @property
    def horizon(self) -> int:
        """Steps of a whole trial."""
        return self.episodes * self.env.horizon

    def _augment(self, obs, action, reward, done, params) -> np.ndarray:
        n = obs.shape[0]
        space = self.env.action_space(_first(params))
        if isinstance(space, Discrete):
            act = np.zeros((n, space.n), np.float32)
            valid = action >= 0
            act[np.flatnonzero(valid), action[valid].astype(np.int64)] = 1.0
        else:
            act = np.clip(action, space.low, space.high).astype(np.float32).reshape(n, -1)
        extra = np.stack([reward.astype(np.float32), done.astype(np.float32)], axis=-1)
        return np.concatenate([obs.astype(np.float32).reshape(n, -1), act, extra], axis=-1)

    def _zero_action(self, n: int, params: PyTree) -> np.ndarray:
        space = self.env.action_space(_first(params))
        if isinstance(space, Discrete):
            return np.full((n,), -1, np.int32)
        return np.zeros((n, *space.shape), np.float32)

    def reset(self, rng: np.random.Generator, params: PyTree) -> tuple[TrialState, TimeStep]:
        """Starts the first episode of ``n`` trials on the tasks ``params``."""
        inner, ts = self.env.reset(rng, params)
        n = ts.obs.shape[0]
        zeros = np.zeros((n,), np.float32)
        obs = self._augment(ts.obs, self._zero_action(n, params), zeros, zeros > 0, params)
        episode = np.zeros((n,), np.int32)
        info = dict(ts.info, episode=episode, episode_done=np.zeros((n,), bool))
        return TrialState(inner, episode), ts._replace(obs=obs, info=info)

    def step(
        self, rng: np.random.Generator, state: TrialState, action: np.ndarray, params: PyTree
    ) -> tuple[TrialState, TimeStep]:
        """Steps the inner environments, resetting those whose episode ended on the same task."""
        inner, ts = self.env.step(rng, state.inner, action, params)
        ep_done = ts.terminated | ts.truncated
        next_obs = ts.obs
        if ep_done.any():
            idx = np.flatnonzero(ep_done)
            fresh, ts_reset = self.env.reset(rng, tree_rows(params, idx))
            inner = tree_set_rows(inner, idx, fresh)
            next_obs = next_obs.copy()
            next_obs[idx] = ts_reset.obs
        episode = state.episode + ep_done.astype(np.int32)
        obs = self._augment(next_obs, action, ts.reward, ep_done, params)
        info = dict(ts.info, episode=state.episode, episode_done=ep_done)
        out = TimeStep(obs, ts.reward, episode >= self.episodes, np.zeros_like(ep_done), info)
        return TrialState(inner, episode), out

    def observation_space(self, params: PyTree) -> Box:
        """Augmented observation of one environment (see :class:`Trial`)."""
        return augmented_space(self.env, params)

    def action_space(self, params: PyTree) -> Discrete | Box:
        """The inner action space."""
        return self.env.action_space(params)


def _first(params: PyTree) -> PyTree:
    return jax.tree.map(lambda x: x[0], params)


def tree_rows(tree: PyTree, idx: np.ndarray) -> PyTree:
    """Rows ``idx`` of every leaf ``[B, ...]`` of a pytree of NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(x)[idx], tree)


def tree_set_rows(tree: PyTree, idx: np.ndarray, rows: PyTree) -> PyTree:
    """A copy of ``tree`` with rows ``idx`` replaced by ``rows`` (leaves ``[len(idx), ...]``)."""

    def put(x, r):
        x = np.array(x)
        x[idx] = r
        return x

    return jax.tree.map(put, tree, rows)
