"""Recurrent networks scanned over time with a reset mask (RL², Duan et al. 2016)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.networks.distributions import Categorical, DiagGaussian, Distribution

HEAD_ACTIVATIONS = {"relu": nn.relu, "silu": nn.silu, "tanh": jnp.tanh}
CRITIC_MODULES = frozenset({"critic_core", "value_hidden", "value"})
"""Modules of :class:`RecurrentActorCritic` that only the value estimate uses."""
PARAM_GROUPS = ("actor", "critic")
"""The labels :meth:`RecurrentActorCritic.param_groups` gives."""


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
            a hidden layer (``head_activation``). The policy's output never depends on them.
        critic_hidden_size: State size of the value head's own core (0: ``hidden_size``);
            only with ``separate_critic``.
        reward_head: Add a head on the policy core that predicts the reward of the action
            taken, ``E[r_t | history, a_t]`` (see :meth:`forward`); an auxiliary target that
            makes the policy's memory summarise what it has seen of the task's rewards.
        head_hidden_size: When positive, a hidden layer of this width (ReLU by default)
            sits between the policy core and its heads (policy and reward); it lets a head
            read what the core stores for the current observation (e.g. one state's row of
            a table of reward estimates), a product a linear head cannot form.
        head_activation: Nonlinearity of the heads' hidden layers (``head_hidden_size``,
            the task-informed value layer, the continuous reward layer): a key of
            :data:`HEAD_ACTIVATIONS`. ReLU units can die (no gradient for any input);
            ``"silu"`` and ``"tanh"`` cannot.
        next_obs_dim: When positive, a head on the policy core (beside the reward head)
            predicts the next inner observation, of this width, for the action taken: for a
            one-hot state the posterior predictive ``P(s' | history, s, a)``, the task's
            transition model as far as the history reveals it.
    """

    action_dim: int
    discrete: bool
    hidden_size: int = 256
    cell: str = "gru"
    init_log_std: float = 0.0
    separate_critic: bool = False
    policy_obs_dim: int = 0
    reward_head: bool = False
    critic_hidden_size: int = 0
    head_hidden_size: int = 0
    head_activation: str = "relu"
    next_obs_dim: int = 0

    def _carried(self, hidden_size: int) -> int:
        """State width of one core of ``hidden_size`` units (an LSTM carries ``c`` and ``h``)."""
        return hidden_size * (2 if self.cell == "lstm" else 1)

    @property
    def core_size(self) -> int:
        """State width of the policy's recurrent core."""
        return self._carried(self.hidden_size)

    @property
    def critic_width(self) -> int:
        """Hidden size of the value head's own core (with ``separate_critic``)."""
        return self.critic_hidden_size or self.hidden_size

    @property
    def state_size(self) -> int:
        """Width of the carried state ``[B, state_size]``."""
        if not self.separate_critic:
            return self.core_size
        return self.core_size + self._carried(self.critic_width)

    @property
    def activation(self):
        """The heads' hidden-layer nonlinearity (``head_activation``)."""
        return HEAD_ACTIVATIONS[self.head_activation]

    @staticmethod
    def param_groups(params: dict) -> dict:
        """Label each parameter ``"critic"`` (value path) or ``"actor"`` (everything else).

        With ``separate_critic`` the two groups share no parameters, so clipping each by its
        own norm (:func:`~quickstudy.learners.ppo.clip_by_group_norm`) keeps the critic's
        gradients from setting the size of the policy's step.

        Args:
            params: The network's variables, ``{"params": {module: ...}}``, or a gradient of
                the same structure.
        """
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "critic" if path[1].key in CRITIC_MODULES else "actor", params
        )

    @property
    def distribution(self) -> Distribution:
        """The action distribution that the policy head parameterises."""
        return Categorical(self.action_dim) if self.discrete else DiagGaussian(self.action_dim)

    def initial_state(self, batch: int) -> jax.Array:
        """Zero recurrent state ``[batch, state_size]``."""
        return jnp.zeros((batch, self.state_size), jnp.float32)

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
        h, out, value, _, _ = self.forward(h, obs, start)
        return h, out, value

    @nn.compact
    def forward(
        self, h: jax.Array, obs: jax.Array, start: jax.Array, action: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
        """:meth:`__call__` plus the model heads' predictions for the actions taken.

        Args:
            h: Recurrent state ``[B, state_size]``.
            obs: Observations ``[T, B, D]``.
            start: ``[T, B]`` bool.
            action: Actions taken ``[T, B]`` (discrete) or ``[T, B, A]``. When omitted:
                discrete actions get a prediction for every action, continuous ones for zeros.

        Returns:
            ``__call__``'s outputs; the predicted rewards ``[T, B]``, or ``[T, B, A]`` for
            discrete actions without ``action`` (None without ``reward_head``); the predicted
            next inner observations ``[T, B, next_obs_dim]``, or ``[T, B, A, next_obs_dim]``
            for discrete actions without ``action`` (None when ``next_obs_dim`` is 0).
        """
        core = GRU if self.cell == "gru" else LSTM
        privileged = None
        if self.policy_obs_dim:
            obs, privileged = obs[..., : self.policy_obs_dim], obs[..., self.policy_obs_dim :]
        if self.separate_critic:
            h_pi, y = core(self.hidden_size, name="core")(h[:, : self.core_size], obs, start)
            h_v, y_v = core(self.critic_width, name="critic_core")(
                h[:, self.core_size :], obs, start
            )
            h = jnp.concatenate([h_pi, h_v], -1)
        else:
            h, y = core(self.hidden_size, name="core")(h, obs, start)
            y_v = y
        if self.head_hidden_size:
            y = self.activation(nn.Dense(self.head_hidden_size, name="head_hidden")(y))
        small = nn.initializers.orthogonal(0.01)
        out = nn.Dense(self.action_dim, kernel_init=small, name="policy")(y)
        if not self.discrete:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            out = jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], -1)
        if privileged is not None:
            y_v = jnp.concatenate([y_v, privileged], -1)
            y_v = self.activation(nn.Dense(self.hidden_size, name="value_hidden")(y_v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(y_v)
        reward = self._predict_reward(y, action) if self.reward_head else None
        next_obs = self._predict_next_obs(y, action) if self.next_obs_dim else None
        return h, out, value[..., 0], reward, next_obs

    def _predict_reward(self, y: jax.Array, action: jax.Array | None) -> jax.Array:
        """Reward predicted for ``action`` (see :meth:`_per_action_head`), ``[T, B]``."""
        return self._per_action_head(y, action, 1, "reward")[..., 0]

    def _predict_next_obs(self, y: jax.Array, action: jax.Array | None) -> jax.Array:
        """Next inner observation predicted for ``action``, ``[T, B, next_obs_dim]``."""
        return self._per_action_head(y, action, self.next_obs_dim, "next_obs")

    def _per_action_head(
        self, y: jax.Array, action: jax.Array | None, width: int, name: str
    ) -> jax.Array:
        """A prediction of ``width`` values for ``action`` from the policy's features ``y``.

        Discrete actions: a linear head gives one prediction per action and the taken one is
        read off (all of them, ``[T, B, A, width]``, when ``action`` is None), so ``y`` (the
        core's state, or the ``head_hidden_size`` layer on it) must hold the estimates in a
        linearly readable form, as the policy head needs them.
        Continuous actions: a hidden layer (``head_activation``) on ``y ⊕ action``.

        Args:
            y: Policy features ``[T, B, F]``.
            action: Actions taken ``[T, B]`` (discrete) or ``[T, B, A]``, or None.
            width: Values predicted per action.
            name: Name of the output layer (the hidden layer is ``name + "_hidden"``).

        Returns:
            ``[T, B, width]``, or ``[T, B, A, width]`` for discrete actions without ``action``.
        """
        if self.discrete:
            per_action = nn.Dense(self.action_dim * width, name=name)(y)
            per_action = per_action.reshape(y.shape[:-1] + (self.action_dim, width))
            if action is None:
                return per_action
            idx = action[..., None, None].astype(jnp.int32)
            return jnp.take_along_axis(per_action, idx, -2)[..., 0, :]
        if action is None:
            action = jnp.zeros(y.shape[:-1] + (self.action_dim,), y.dtype)
        z = self.activation(
            nn.Dense(self.hidden_size, name=f"{name}_hidden")(jnp.concatenate([y, action], -1))
        )
        return nn.Dense(width, name=name)(z)
