"""Recurrent networks scanned over time with a reset mask (RL², Duan et al. 2016)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from quickstudy.networks.conv import FrameEncoder
from quickstudy.networks.distributions import (
    Categorical,
    DiagGaussian,
    Distribution,
    action_head,
)
from quickstudy.types import Policy, PolicyOutput

CRITIC_MODULES = frozenset({"critic_core", "value_hidden", "value"})
"""Modules of :class:`RecurrentActorCritic` that only the value estimate uses."""


def _gru_forward(w_h, b_h, g_r, g_z, g_n, start, h0):
    """The GRU recurrence; per step also returns what the backward pass needs."""
    H = w_h.shape[0]

    def cell(h, inputs):
        gr_t, gz_t, gn_t, start_t = inputs
        h_prev = jnp.where(start_t[:, None], 0.0, h)
        gh = h_prev @ w_h + b_h
        r = jax.nn.sigmoid(gr_t + gh[:, :H])
        z = jax.nn.sigmoid(gz_t + gh[:, H : 2 * H])
        gh_n = gh[:, 2 * H :]
        n = jnp.tanh(gn_t + r * gh_n)
        h_t = (1.0 - z) * n + z * h_prev
        return h_t, (h_t, h_prev, r, z, n, gh_n)

    return jax.lax.scan(cell, h0, (g_r, g_z, g_n, start))


@jax.custom_vjp
def gru_sequence(w_h, b_h, g_r, g_z, g_n, start, h0):
    """A GRU over a sequence from its input projections, resetting where ``start`` is set.

    ``h_t = (1 - z) * n + z * h'`` with ``h' = 0 if start_t else h_{t-1}``,
    ``r = σ(g_r + h' W_r + b_r)``, ``z = σ(g_z + h' W_z + b_z)``,
    ``n = tanh(g_n + r * (h' W_n + b_n))``.

    Two things make it several times faster on CPU than ``lax.scan`` over the textbook cell
    with JAX's own derivative (``benchmarks/rl2_core.py``):

    * The three gates' inputs are separate arrays. XLA's CPU code for a loop body that reads
      several slices of one scanned array is about ten times slower than for separate arrays.
    * A hand-written backward pass: per step one product with ``W_hᵀ`` and the gate
      derivatives; the weight gradient is one product over all steps after the loop.

    Args:
        w_h: Recurrent kernel ``[H, 3H]`` (gates r, z, n).
        b_h: Recurrent bias ``[3H]``.
        g_r: Input projection of the reset gate (bias included) ``[T, B, H]``.
        g_z: Input projection of the update gate ``[T, B, H]``.
        g_n: Input projection of the candidate ``[T, B, H]``.
        start: ``[T, B]`` bool; where true, the state is zeroed before step t.
        h0: Initial state ``[B, H]``.

    Returns:
        Final state ``[B, H]`` and outputs ``[T, B, H]``.
    """
    h_last, residuals = _gru_forward(w_h, b_h, g_r, g_z, g_n, start, h0)
    return h_last, residuals[0]


def _gru_sequence_fwd(w_h, b_h, g_r, g_z, g_n, start, h0):
    h_last, residuals = _gru_forward(w_h, b_h, g_r, g_z, g_n, start, h0)
    return (h_last, residuals[0]), (w_h, start, residuals[1:])


def _gru_sequence_bwd(saved, cotangents):
    w_h, start, (h_prev, r, z, n, gh_n) = saved
    dh_last, dys = cotangents
    H = w_h.shape[0]
    w_t = w_h.T  # [3H, H]

    def cell(dh_next, inputs):
        dy, start_t, h_prev_t, r_t, z_t, n_t, gh_n_t = inputs
        dh = dh_next + dy
        da_n = dh * (1.0 - z_t) * (1.0 - n_t * n_t)
        da_z = dh * (h_prev_t - n_t) * z_t * (1.0 - z_t)
        da_r = da_n * gh_n_t * r_t * (1.0 - r_t)
        dgh_n = da_n * r_t
        dh_prev = dh * z_t + da_r @ w_t[:H] + da_z @ w_t[H : 2 * H] + dgh_n @ w_t[2 * H :]
        return jnp.where(start_t[:, None], 0.0, dh_prev), (da_r, da_z, da_n, dgh_n)

    dh0, (da_r, da_z, da_n, dgh_n) = jax.lax.scan(
        cell, dh_last, (dys, start, h_prev, r, z, n, gh_n), reverse=True
    )
    dgh = jnp.concatenate([da_r, da_z, dgh_n], -1)  # [T, B, 3H]
    dw_h = jnp.einsum("tbh,tbg->hg", h_prev, dgh)
    return dw_h, dgh.sum((0, 1)), da_r, da_z, da_n, None, dh0


gru_sequence.defvjp(_gru_sequence_fwd, _gru_sequence_bwd)


class GRU(nn.Module):
    """A GRU layer (Cho et al. 2014) over a sequence, resetting its state where ``start`` is set.

    The input projection of all time steps is one matrix product outside the scan; the
    recurrence is :func:`gru_sequence`.

    Attributes:
        features: Hidden size ``H``.
        custom_backward: Use the hand-written backward pass of :func:`gru_sequence` (faster).
            Turn it off where the network is differentiated in forward mode (``jax.jvp``,
            ``jax.linearize``: TRPO's Fisher product), which a custom VJP does not support;
            the forward computation is the same.
    """

    features: int
    custom_backward: bool = True

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
        g_r, g_z, g_n = gi[..., :H], gi[..., H : 2 * H], gi[..., 2 * H :]
        if self.custom_backward:
            return gru_sequence(w_h, b_h, g_r, g_z, g_n, start, h)
        h_last, residuals = _gru_forward(w_h, b_h, g_r, g_z, g_n, start, h)
        return h_last, residuals[0]


class LSTM(nn.Module):
    """An LSTM layer (Hochreiter & Schmidhuber 1997) with a reset mask; state ``(c, h)``.

    Its backward pass is JAX's own (:func:`gru_sequence` has a hand-written one).

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
            gi_t, gf_t, go_t, gu_t, start_t = inputs
            c_tm1, h_tm1 = (jnp.where(start_t[:, None], 0.0, s) for s in state_tm1)
            g = h_tm1 @ w_h
            i, f = jax.nn.sigmoid(gi_t + g[:, :H]), jax.nn.sigmoid(gf_t + g[:, H : 2 * H] + 1.0)
            o, u = jax.nn.sigmoid(go_t + g[:, 2 * H : 3 * H]), jnp.tanh(gu_t + g[:, 3 * H :])
            c_t = f * c_tm1 + i * u
            h_t = o * jnp.tanh(c_t)
            return (c_t, h_t), h_t

        # Separate arrays per gate: XLA's CPU loop code is much slower when it reads several
        # slices of one scanned array (see gru_sequence).
        gates = tuple(gi[..., k * H : (k + 1) * H] for k in range(4))
        return jax.lax.scan(cell, state, (*gates, start))


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
        custom_backward: The GRU cores' hand-written backward pass (see :class:`GRU`); off for
            a learner that differentiates the policy in forward mode (TRPO).
        image_shape: ``(H, W, C)`` when the observation starts with an image: a
            :class:`~quickstudy.networks.conv.FrameEncoder` (shared by the policy and the critic
            cores) encodes it before the cores.
        explore_head: A second action head on the same features, ``aux["explore_dist"]``,
            for :func:`~quickstudy.networks.explore.two_phase_policy`.
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
    custom_backward: bool = True
    image_shape: tuple[int, int, int] | None = None
    explore_head: bool = False

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
        if self.cell == "gru":
            core = functools.partial(core, custom_backward=self.custom_backward)
        privileged = None
        if self.policy_obs_dim:
            obs, privileged = obs[..., : self.policy_obs_dim], obs[..., self.policy_obs_dim :]
        if self.image_shape:
            obs = FrameEncoder(self.image_shape, name="encoder")(obs)
        h, y = core(self.hidden_size, name="core")(carry["core"], obs, start)
        new_carry = {"core": h}
        y_v = y
        if self.separate_critic:
            h_v, y_v = core(self.critic_width, name="critic_core")(carry["critic_core"], obs, start)
            new_carry["critic_core"] = h_v
        if self.head_hidden_size:
            y = nn.relu(nn.Dense(self.head_hidden_size, name="head_hidden")(y))
        out = action_head(self, y, self.action_dim, self.discrete, self.init_log_std)
        if privileged is not None:
            y_v = jnp.concatenate([y_v, privileged], -1)
            y_v = nn.relu(nn.Dense(self.hidden_size, name="value_hidden")(y_v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(y_v)
        aux = {}
        if self.explore_head:
            aux["explore_dist"] = action_head(
                self, y, self.action_dim, self.discrete, self.init_log_std, "explore_"
            )
        if self.reward_head:
            aux["reward"] = nn.Dense(reward_width(self.action_dim, self.discrete), name="reward")(y)
        return new_carry, PolicyOutput(out, value[..., 0], aux)


def reward_width(action_dim: int, discrete: bool) -> int:
    """Outputs of a reward head: a reward per action (discrete), or a quadratic's coefficients.

    See :func:`~quickstudy.objectives.auxiliary.reward_prediction_loss`.
    """
    return action_dim if discrete else 1 + 2 * action_dim


def param_groups(params: dict, critic_modules: frozenset[str] = CRITIC_MODULES) -> dict:
    """Label each parameter of an actor-critic ``"critic"`` or ``"actor"``.

    With a separate critic the two groups share no parameters, so clipping each by its own
    norm (:func:`~quickstudy.learners.base.clip_by_group_norm`) keeps the critic's gradients
    from setting the size of the policy's step.

    Args:
        params: The network's variables, ``{"params": {module: ...}}``, or a gradient of the
            same structure.
        critic_modules: The top-level modules only the value estimate uses (those of
            :class:`RecurrentActorCritic` by default).
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "critic" if path[1].key in critic_modules else "actor", params
    )


def recurrent_policy(
    network: nn.Module, obs_dim: int, critic_modules: frozenset[str] = CRITIC_MODULES
) -> Policy:
    """The :class:`~quickstudy.types.Policy` of a memory-based actor-critic on ``obs_dim`` inputs.

    Args:
        network: A :class:`RecurrentActorCritic`, or any module with its ``initial_state``,
            ``distribution``, ``separate_critic`` and ``__call__(carry, obs, start)``.
        obs_dim: Width of the observations.
        critic_modules: The network's modules that only the value estimate uses.
    """

    def init(key: jax.Array) -> dict:
        obs = jnp.zeros((1, 1, obs_dim))
        return network.init(key, network.initial_state(1), obs, jnp.ones((1, 1), bool))

    groups = functools.partial(param_groups, critic_modules=critic_modules)
    return Policy(
        init=init,
        init_carry=network.initial_state,
        apply=network.apply,
        distribution=network.distribution,
        param_groups=groups if network.separate_critic else None,
    )
