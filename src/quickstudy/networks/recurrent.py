"""Recurrent networks scanned over time with a reset mask (RL², Duan et al. 2016)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.networks.distributions import Categorical, DiagGaussian, Distribution


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
    """An LSTM layer (Hochreiter & Schmidhuber 1997) with a reset mask; state is ``[B, 2H]``.

    Attributes:
        features: Hidden size ``H``.
    """

    features: int

    @nn.compact
    def __call__(self, h: jax.Array, x: jax.Array, start: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Same contract as :class:`GRU`; the state packs ``[c, h]`` along the last axis."""
        H = self.features
        gi = nn.Dense(4 * H, name="input")(x)
        w_h = self.param("hidden_kernel", nn.initializers.orthogonal(), (H, 4 * H))

        def cell(state_tm1, inputs):
            gi_t, start_t = inputs
            state_tm1 = jnp.where(start_t[:, None], 0.0, state_tm1)
            c_tm1, h_tm1 = state_tm1[:, :H], state_tm1[:, H:]
            g = gi_t + h_tm1 @ w_h
            i, f = jax.nn.sigmoid(g[:, :H]), jax.nn.sigmoid(g[:, H : 2 * H] + 1.0)
            o, u = jax.nn.sigmoid(g[:, 2 * H : 3 * H]), jnp.tanh(g[:, 3 * H :])
            c_t = f * c_tm1 + i * u
            h_t = o * jnp.tanh(c_t)
            return jnp.concatenate([c_t, h_t], -1), h_t

        return jax.lax.scan(cell, h, (gi, start))


class RecurrentActorCritic(nn.Module):
    """Recurrent actor-critic: linear policy and value heads on a recurrent torso.

    The torso is shared by both heads, or with ``separate_critic`` each head has its own
    recurrent core (then the carried state is both cores' states side by side).

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
            a hidden ReLU layer. The policy's output never depends on them.
    """

    action_dim: int
    discrete: bool
    hidden_size: int = 256
    cell: str = "gru"
    init_log_std: float = 0.0
    separate_critic: bool = False
    policy_obs_dim: int = 0

    @property
    def core_size(self) -> int:
        """State width of one recurrent core."""
        return self.hidden_size * (2 if self.cell == "lstm" else 1)

    @property
    def state_size(self) -> int:
        """Width of the carried state ``[B, state_size]``."""
        return self.core_size * (2 if self.separate_critic else 1)

    @property
    def distribution(self) -> Distribution:
        """The action distribution that the policy head parameterises."""
        return Categorical(self.action_dim) if self.discrete else DiagGaussian(self.action_dim)

    def initial_state(self, batch: int) -> jax.Array:
        """Zero recurrent state ``[batch, state_size]``."""
        return jnp.zeros((batch, self.state_size), jnp.float32)

    @nn.compact
    def __call__(
        self, h: jax.Array, obs: jax.Array, start: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Runs the policy over a sequence.

        Args:
            h: Recurrent state ``[B, state_size]``.
            obs: Observations ``[T, B, D]``.
            start: ``[T, B]`` bool, true at the first step of a trial (state reset).

        Returns:
            Final state ``[B, state_size]``, distribution parameters ``[T, B, P]``, values
            ``[T, B]``.
        """
        core = GRU if self.cell == "gru" else LSTM
        privileged = None
        if self.policy_obs_dim:
            obs, privileged = obs[..., : self.policy_obs_dim], obs[..., self.policy_obs_dim :]
        if self.separate_critic:
            h_pi, y = core(self.hidden_size, name="core")(h[:, : self.core_size], obs, start)
            h_v, y_v = core(self.hidden_size, name="critic_core")(
                h[:, self.core_size :], obs, start
            )
            h = jnp.concatenate([h_pi, h_v], -1)
        else:
            h, y = core(self.hidden_size, name="core")(h, obs, start)
            y_v = y
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
        return h, out, value[..., 0]
