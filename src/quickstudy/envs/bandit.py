"""Bernoulli multi-armed bandit (Duan et al. 2016, RL², §4.1)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from quickstudy.envs.base import Box, Discrete, TimeStep, timestep


class BanditParams(NamedTuple):
    """One bandit task.

    Attributes:
        probs: Success probability of each arm, shape ``[k]``.
    """

    probs: jax.Array


@dataclasses.dataclass(frozen=True)
class BernoulliBandit:
    """A ``k``-armed Bernoulli bandit; every episode is a single pull.

    The observation is a constant dummy ``[0.0]``; pulling arm ``a`` pays 1 with probability
    ``probs[a]`` and ends the episode (``terminated``). A trial of ``n`` pulls is ``n`` episodes.

    Attributes:
        num_arms: Number of arms ``k`` (static).
    """

    num_arms: int

    @property
    def horizon(self) -> int:
        """Steps per episode: one pull."""
        return 1

    def reset(self, key: jax.Array, params: BanditParams) -> tuple[jax.Array, TimeStep]:
        """Returns the (empty) state and the dummy observation."""
        del key, params
        return jnp.zeros((), jnp.int32), timestep(jnp.zeros((1,), jnp.float32))

    def step(
        self, key: jax.Array, state: jax.Array, action: jax.Array, params: BanditParams
    ) -> tuple[jax.Array, TimeStep]:
        """Pulls arm ``action``: reward ~ Bernoulli(probs[action]), episode ends."""
        reward = jax.random.bernoulli(key, params.probs[action]).astype(jnp.float32)
        ts = timestep(jnp.zeros((1,), jnp.float32), reward, terminated=True)
        return state + 1, ts

    def observation_space(self, params: BanditParams) -> Box:
        """A one-dimensional constant observation."""
        return Box(0.0, 0.0, (1,))

    def action_space(self, params: BanditParams) -> Discrete:
        """One action per arm."""
        return Discrete(self.num_arms)


def sample_bandit(key: jax.Array, num_tasks: int, num_arms: int) -> BanditParams:
    """Draws ``num_tasks`` bandits with ``probs ~ U[0, 1]^k`` i.i.d.; leaves ``[num_tasks, k]``."""
    return BanditParams(jax.random.uniform(key, (num_tasks, num_arms)))
