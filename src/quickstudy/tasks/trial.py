"""The trial wrapper: K consecutive episodes of one task, as one RL² meta-episode.

Duan et al. 2016 (RL², §2.2): the agent's input at every step is the observation together with the
previous action, the previous reward and a flag that the previous step ended an episode; its memory
persists across the episodes of a trial and is reset between trials (that reset belongs to the
policy, driven by the trial's ``terminated`` flag).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from quickstudy.envs.base import Box, Discrete, Environment, TimeStep, tree_select

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

    def expected_rewards(self, state: TrialState, params: PyTree) -> jax.Array:
        """The inner environment's ``expected_rewards`` in its current state ``[A]``."""
        return self.env.expected_rewards(state.inner, params)

    def observation_space(self, params: PyTree) -> Box:
        """Augmented observation: inner obs, previous action, reward and done flag."""
        inner = self.env.observation_space(params)
        space = self.env.action_space(params)
        act_dim = space.n if isinstance(space, Discrete) else math.prod(space.shape)
        obs_dim = math.prod(inner.shape)
        return Box(-jnp.inf, jnp.inf, (obs_dim + act_dim + 2,))

    def action_space(self, params: PyTree) -> Discrete | Box:
        """The inner action space."""
        return self.env.action_space(params)


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
        progress: Also append how far the trial has got, the fraction of its episodes already
            finished (``env`` must then be a :class:`Trial`): the value of a state depends on
            the trial time left, which a critic whose memory is truncated mid-trial (RL²'s
            ``rollout_len``) cannot count itself.
        expected_rewards: Append, last, the mean reward of each action in the current state
            (``env.expected_rewards``, discrete actions only): the target of RL²'s
            ``reward_target="expected"``.
    """

    env: Environment
    progress: bool = False
    expected_rewards: bool = False

    def __post_init__(self):
        if self.progress and not isinstance(self.env, Trial):
            raise TypeError(f"progress needs a Trial to wrap, got {type(self.env).__name__}")
        inner = self.env.env if isinstance(self.env, Trial) else self.env
        if self.expected_rewards and not hasattr(inner, "expected_rewards"):
            raise TypeError(f"{type(inner).__name__} does not define expected_rewards")

    def _append(self, state: PyTree, ts: TimeStep, params: PyTree) -> TimeStep:
        extra = [task_features(params)]
        if self.progress:
            extra.append((state.episode / self.env.episodes).astype(jnp.float32)[None])
        if self.expected_rewards:
            extra.append(self.env.expected_rewards(state, params).astype(jnp.float32))
        return ts._replace(obs=jnp.concatenate([ts.obs, *extra]))

    def reset(self, key: jax.Array, params: PyTree) -> tuple[PyTree, TimeStep]:
        """Resets the wrapped environment."""
        state, ts = self.env.reset(key, params)
        return state, self._append(state, ts, params)

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> tuple[PyTree, TimeStep]:
        """Steps the wrapped environment."""
        state, ts = self.env.step(key, state, action, params)
        return state, self._append(state, ts, params)

    def observation_space(self, params: PyTree) -> Box:
        """The wrapped observation, the task features, the progress and the expected rewards."""
        inner = math.prod(self.env.observation_space(params).shape)
        extra = task_features(params).shape[0] + int(self.progress)
        if self.expected_rewards:
            extra += self.action_space(params).n
        return Box(-jnp.inf, jnp.inf, (inner + extra,))

    def action_space(self, params: PyTree) -> Discrete | Box:
        """The wrapped action space."""
        return self.env.action_space(params)
