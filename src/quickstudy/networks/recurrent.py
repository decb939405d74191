"""Recurrent networks scanned over time with a reset mask (RL², Duan et al. 2016)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.networks.distributions import Categorical, DiagGaussian, Distribution
from quickstudy.types import Policy, PolicyOutput

CRITIC_MODULES = frozenset({"critic_core", "value_hidden", "value"})
"""Modules of :class:`RecurrentActorCritic` that only the value estimate uses."""


class GRU(nn.Module):
    """A GRU layer (Cho et al. 2014) over a sequence, resetting its state where ``start`` is set.

    The input projection of all time steps is one matrix product outside the scan; only the
    recurrent product runs per step.

    Attributes:
        features: Hidden size ``H``.
    """

    features: int

    @nn.compact
    def __call__(self, h: jax.Array, x: jax.Array, start: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Runs the sequence.

        Args:
            h: Initial state ``[B, H]``.
            x: Inputs ``[T, B, D]``.
            start: ``[T, B]`` bool; where true, the state is zeroed before step t.

        Returns:
            Final state ``[B, H]`` and outputs ``[T, B, H]``.
        """
        H = self.features
        gi = nn.Dense(3 * H, name="input")(x)
        w_h = self.param("hidden_kernel", nn.initializers.orthogonal(), (H, 3 * H))
        b_h = self.param("hidden_bias", nn.initializers.zeros, (3 * H,))

        def cell(h_tm1, inputs):
            gi_t, start_t = inputs
            h_tm1 = jnp.where(start_t[:, None], 0.0, h_tm1)
            gh_t = h_tm1 @ w_h + b_h
            r = jax.nn.sigmoid(gi_t[:, :H] + gh_t[:, :H])
            z = jax.nn.sigmoid(gi_t[:, H : 2 * H] + gh_t[:, H : 2 * H])
            n = jnp.tanh(gi_t[:, 2 * H :] + r * gh_t[:, 2 * H :])
            h_t = (1.0 - z) * n + z * h_tm1
            return h_t, h_t

        return jax.lax.scan(cell, h, (gi, start))


class LSTM(nn.Module):
    """An LSTM layer (Hochreiter & Schmidhuber 1997) with a reset mask; state ``(c, h)``.

    Attributes:
        features: Hidden size ``H``.
    """

    features: int

    @nn.compact
    def __call__(
        self, state: tuple[jax.Array, jax.Array], x: jax.Array, start: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """Same contract as :class:`GRU`; the state is the pair ``(c, h)``."""
        H = self.features
        gi = nn.Dense(4 * H, name="input")(x)
        w_h = self.param("hidden_kernel", nn.initializers.orthogonal(), (H, 4 * H))

        def cell(state_tm1, inputs):
            gi_t, start_t = inputs
            c_tm1, h_tm1 = (jnp.where(start_t[:, None], 0.0, s) for s in state_tm1)
            g = gi_t + h_tm1 @ w_h
            i, f = jax.nn.sigmoid(g[:, :H]), jax.nn.sigmoid(g[:, H : 2 * H] + 1.0)
            o, u = jax.nn.sigmoid(g[:, 2 * H : 3 * H]), jnp.tanh(g[:, 3 * H :])
            c_t = f * c_tm1 + i * u
            h_t = o * jnp.tanh(c_t)
            return (c_t, h_t), h_t

        return jax.lax.scan(cell, state, (gi, start))


CELLS = {"gru": GRU, "lstm": LSTM}


def zero_state(cell: str, features: int, batch: int) -> jax.Array | tuple[jax.Array, jax.Array]:
    """The zero state of ``batch`` sequences: ``[batch, H]`` (GRU) or a pair of them (LSTM)."""
    zeros = jnp.zeros((batch, features), jnp.float32)
    return (zeros, zeros) if cell == "lstm" else zeros


class RecurrentActorCritic(nn.Module):
    """Recurrent actor-critic: policy and value heads on a recurrent torso.

    The torso is shared by both heads, or with ``separate_critic`` the value head has its own
    recurrent core. The carry is a dict of the cores' states, ``{"core": ...}`` plus
    ``"critic_core"`` with a separate critic (each a ``[B, H]`` array for a GRU, an ``(c, h)``
    pair for an LSTM).

    Attributes:
        action_dim: Number of discrete actions, or the continuous action dimension.
        discrete: Categorical (true) or diagonal-Gaussian (false) policy.
        hidden_size: Recurrent state size ``H``.
        cell: ``"gru"`` or ``"lstm"``.
        init_log_std: Initial log standard deviation of a Gaussian policy.
        separate_critic: Give the value head its own recurrent core.
        policy_obs_dim: When positive, only ``obs[..., :policy_obs_dim]`` enters the recurrent
            cores; the remaining entries (privileged inputs such as the task's parameters, see
            :class:`~quickstudy.tasks.trial.WithTaskFeatures`) go only to the value head, through
            a ReLU layer. The policy's output never depends on them.
        critic_hidden_size: State size of the value head's own core (0: ``hidden_size``);
            only with ``separate_critic``.
        head_hidden_size: When positive, a ReLU layer of this width sits between the policy
            core and its heads (policy and reward); it lets a head read what the core stores
            for the current observation (e.g. one state's row of a table of reward
            estimates), a product a linear head cannot form.
        reward_head: Add a head on the policy's features that predicts rewards for the
            auxiliary loss :func:`~quickstudy.objectives.auxiliary.reward_prediction_loss`:
            the reward of every action ``[T, B, A]`` (discrete), or the coefficients of a
            quadratic in the action ``[T, B, 1 + 2A]`` (continuous). It is ``aux["reward"]``.
    """

    action_dim: int
    discrete: bool
    hidden_size: int = 256
    cell: str = "gru"
    init_log_std: float = 0.0
    separate_critic: bool = False
    policy_obs_dim: int = 0
    critic_hidden_size: int = 0
    head_hidden_size: int = 0
    reward_head: bool = False

    @property
    def critic_width(self) -> int:
        """Hidden size of the value head's own core (with ``separate_critic``)."""
        return self.critic_hidden_size or self.hidden_size

    @property
    def distribution(self) -> Distribution:
        """The action distribution that the policy head parameterises."""
        return Categorical(self.action_dim) if self.discrete else DiagGaussian(self.action_dim)

    def initial_state(self, batch: int) -> dict:
        """The zero carry for ``batch`` sequences."""
        carry = {"core": zero_state(self.cell, self.hidden_size, batch)}
        if self.separate_critic:
            carry["critic_core"] = zero_state(self.cell, self.critic_width, batch)
        return carry

    @nn.compact
    def __call__(self, carry: dict, obs: jax.Array, start: jax.Array) -> tuple[dict, PolicyOutput]:
        """Runs the policy over a sequence.

        Args:
            carry: Recurrent state (see :meth:`initial_state`).
            obs: Observations ``[T, B, D]``.
            start: ``[T, B]`` bool, true at the first step of a trial (state reset).

        Returns:
            The final carry and the outputs: distribution parameters ``[T, B, P]``, values
            ``[T, B]`` and, with ``reward_head``, ``aux["reward"]``.
        """
        core = CELLS[self.cell]
        privileged = None
        if self.policy_obs_dim:
            obs, privileged = obs[..., : self.policy_obs_dim], obs[..., self.policy_obs_dim :]
        h, y = core(self.hidden_size, name="core")(carry["core"], obs, start)
        new_carry = {"core": h}
        y_v = y
        if self.separate_critic:
            h_v, y_v = core(self.critic_width, name="critic_core")(carry["critic_core"], obs, start)
            new_carry["critic_core"] = h_v
        if self.head_hidden_size:
            y = nn.relu(nn.Dense(self.head_hidden_size, name="head_hidden")(y))
        small = nn.initializers.orthogonal(0.01)
        out = nn.Dense(self.action_dim, kernel_init=small, name="policy")(y)
        if not self.discrete:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            out = jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], -1)
        if privileged is not None:
            y_v = jnp.concatenate([y_v, privileged], -1)
            y_v = nn.relu(nn.Dense(self.hidden_size, name="value_hidden")(y_v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(y_v)
        aux = {}
        if self.reward_head:
            width = self.action_dim if self.discrete else 1 + 2 * self.action_dim
            aux["reward"] = nn.Dense(width, name="reward")(y)
        return new_carry, PolicyOutput(out, value[..., 0], aux)


def param_groups(params: dict) -> dict:
    """Label each parameter of a :class:`RecurrentActorCritic` ``"critic"`` or ``"actor"``.

    With ``separate_critic`` the two groups share no parameters, so clipping each by its own
    norm (:func:`~quickstudy.learners.base.clip_by_group_norm`) keeps the critic's gradients
    from setting the size of the policy's step.

    Args:
        params: The network's variables, ``{"params": {module: ...}}``, or a gradient of the
            same structure.
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "critic" if path[1].key in CRITIC_MODULES else "actor", params
    )


def recurrent_policy(network: RecurrentActorCritic, obs_dim: int) -> Policy:
    """The :class:`~quickstudy.types.Policy` of a recurrent actor-critic on ``obs_dim`` inputs."""

    def init(key: jax.Array) -> dict:
        obs = jnp.zeros((1, 1, obs_dim))
        return network.init(key, network.initial_state(1), obs, jnp.ones((1, 1), bool))

    return Policy(
        init=init,
        init_carry=network.initial_state,
        apply=network.apply,
        distribution=network.distribution,
        param_groups=param_groups if network.separate_critic else None,
    )
