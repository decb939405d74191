"""Random tabular MDPs (Duan et al. 2016, RL², §4.2)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Box, Discrete, TimeStep, timestep


class MDPParams(NamedTuple):
    """One tabular MDP.

    Attributes:
        transitions: ``P(s' | s, a)``, shape ``[S, A, S]`` (rows sum to 1).
        mean_rewards: ``R(s, a)``, shape ``[S, A]``; observed rewards are ``N(R(s, a), 1)``.
    """

    transitions: jax.Array
    mean_rewards: jax.Array


class MDPState(NamedTuple):
    """Current state index and step counter (scalars)."""

    s: jax.Array
    t: jax.Array


@dataclasses.dataclass(frozen=True)
class TabularMDP:
    """Finite-horizon tabular MDP; episodes start in state 0 and are truncated after ``horizon``.

    Observation is the one-hot current state, shape ``[S]``.

    Attributes:
        num_states: ``|S|`` (static).
        num_actions: ``|A|`` (static).
        horizon: Episode length ``T`` (static).
    """

    num_states: int = 10
    num_actions: int = 5
    horizon: int = 10

    def reset(self, key: jax.Array, params: MDPParams) -> tuple[MDPState, TimeStep]:
        """Starts in state 0."""
        del key, params
        state = MDPState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return state, timestep(self._obs(state.s))

    def step(
        self, key: jax.Array, state: MDPState, action: jax.Array, params: MDPParams
    ) -> tuple[MDPState, TimeStep]:
        """Samples ``r ~ N(R(s, a), 1)`` and ``s' ~ P(. | s, a)``."""
        k_r, k_s = jax.random.split(key)
        reward = params.mean_rewards[state.s, action] + jax.random.normal(k_r)
        s_next = jax.random.choice(k_s, self.num_states, p=params.transitions[state.s, action])
        t = state.t + 1
        next_state = MDPState(s_next.astype(jnp.int32), t)
        return next_state, timestep(self._obs(s_next), reward, truncated=t >= self.horizon)

    def _obs(self, s: jax.Array) -> jax.Array:
        return jax.nn.one_hot(s, self.num_states, dtype=jnp.float32)

    def observation_space(self, params: MDPParams) -> Box:
        """One-hot state vectors."""
        return Box(0.0, 1.0, (self.num_states,))

    def action_space(self, params: MDPParams) -> Discrete:
        """``|A|`` discrete actions."""
        return Discrete(self.num_actions)


def sample_mdp(key: jax.Array, num_tasks: int, num_states: int, num_actions: int) -> MDPParams:
    """Draws MDPs: ``P(.|s,a) ~ Dirichlet(1,...,1)``, ``R(s,a) ~ N(1, 1)``; batched leaves."""
    k_p, k_r = jax.random.split(key)
    shape = (num_tasks, num_states, num_actions)
    transitions = jax.random.dirichlet(k_p, jnp.ones((num_states,)), shape)
    mean_rewards = 1.0 + jax.random.normal(k_r, shape)
    return MDPParams(transitions, mean_rewards)
