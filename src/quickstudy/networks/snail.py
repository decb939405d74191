"""SNAIL: temporal convolutions and causal attention over a whole trial (Mishra et al. 2018).

The torso is a stack of blocks over the trial's time axis:

* a **TC block** is dense layers of causal dilated convolutions (kernel 2, dilations
  1, 2, 4, ... up to the trial length), each with the gated activation ``tanh(f) ⊙ σ(g)`` and
  its ``F`` outputs concatenated to its input;
* an **attention block** is one causal single-head soft attention (keys and queries of size
  ``K``, values of size ``V``) whose read is concatenated to its input.

The network fits the :class:`~quickstudy.types.Policy` contract of the recurrent policies: its
carry is a cache of the trial so far, so the same ``apply`` runs a whole trial at once
(training) or one step at a time (collection). A step costs a constant amount for the
convolutions, which keep the last ``d`` inputs of a layer of dilation ``d`` in a ring buffer,
and one attention read over the cached keys and values; the prefix is never recomputed. A
``start`` flag begins a new trial anywhere in a sequence: the convolutions and the attention
then see only the steps of that trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
from quickstudy.networks.recurrent import recurrent_policy, reward_width
from quickstudy.types import Policy, PolicyOutput

BLOCKS = ("tc", "attention")
CRITIC_MODULES = frozenset({"critic_torso", "value_hidden", "value"})
"""Modules of :class:`SNAILActorCritic` that only the value estimate uses."""


def dilations(max_len: int) -> tuple[int, ...]:
    """Dilations of a TC block over trials of up to ``max_len`` steps: 1, 2, ..., 2^(⌈log2 L⌉-1).

    Their receptive field, ``2^⌈log2 L⌉ ≥ L`` steps, covers the whole trial.
    """
    return tuple(2**i for i in range(max(1, math.ceil(math.log2(max(max_len, 2))))))


def trial_positions(pos0: jax.Array, start: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Where each step of a sequence sits in its trial.

    Args:
        pos0: Steps of the current trial seen before the sequence ``[B]`` (int32).
        start: ``[T, B]`` bool, true at the first step of a trial.

    Returns:
        ``pos`` ``[T, B]``: the step's index within its trial; ``carried`` ``[T, B]``: the step
        continues the trial in flight before the sequence; ``final`` ``[T, B]``: the step
        belongs to the sequence's last trial (whose memory the new carry keeps).
    """
    t = jnp.arange(start.shape[0], dtype=jnp.int32)[:, None]
    last_start = jax.lax.cummax(jnp.where(start, t, -1), axis=0)
    carried = last_start < 0
    pos = jnp.where(carried, pos0[None, :] + t, t - last_start)
    final = t >= last_start[-1][None, :]
    return pos, carried, final


def _after(read: jax.Array, update: jax.Array) -> jax.Array:
    """``update`` unchanged, made to depend on ``read``, so that a cache is written in place.

    XLA's CPU backend copies a loop-carried cache that one operation reads and a later scatter
    writes, unless the scatter's updates depend on what was read: the whole cache at every step,
    151 MB of TC buffers for 128 trials of 750 steps, 37-54 % of the update's time
    (``benchmarks/snail_speed.py --sections long``; docs/results/snail.md). No number exceeds
    +inf, so this always returns ``update``.

    Args:
        read: A result computed from the cache before the write (any shape).
        update: The values to write.
    """
    return jnp.where(jnp.any(read > jnp.inf), jnp.zeros_like(update), update)


class CausalConv(nn.Module):
    """One dense layer of a TC block: a causal convolution (kernel 2, dilation ``d``), gated.

    Attributes:
        filters: Output channels ``F`` (concatenated to the input).
        dilation: Dilation ``d``: the layer reads its input at ``t - d`` and ``t``.
    """

    filters: int
    dilation: int

    @nn.compact
    def __call__(
        self, buffer: jax.Array, x: jax.Array, pos: jax.Array, final: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Runs the layer over a sequence.

        Args:
            buffer: The layer's last ``d`` inputs, slot ``p mod d`` holding trial step ``p``
                ``[B, d, C]``.
            x: Inputs ``[T, B, C]``.
            pos: Trial positions ``[T, B]`` (see :func:`trial_positions`).
            final: Steps of the sequence's last trial ``[T, B]``.

        Returns:
            The new buffer and ``x`` with the layer's ``F`` outputs appended ``[T, B, C + F]``.
        """
        d, (T, B, _) = self.dilation, x.shape
        rows = jnp.arange(B)[None, :]
        slot = pos % d
        t = jnp.arange(T)[:, None, None]
        cached = buffer[rows, slot]
        if d < T:
            shifted = jnp.concatenate([jnp.zeros_like(x[:d]), x[:-d]])
            x_prev = jnp.where(t >= d, shifted, cached)
        else:
            x_prev = cached
        x_prev = jnp.where((pos >= d)[..., None], x_prev, 0.0)
        pair = jnp.concatenate([x_prev, x], -1)
        fg = nn.Dense(2 * self.filters, name="conv")(pair)  # filter and gate in one product
        out = jnp.tanh(fg[..., : self.filters]) * jax.nn.sigmoid(fg[..., self.filters :])
        keep = final & (jnp.arange(T)[:, None] >= T - d)  # the last d steps of the last trial
        buffer = buffer.at[rows, jnp.where(keep, slot, d)].set(_after(cached, x), mode="drop")
        return buffer, jnp.concatenate([x, out], -1)


class CausalAttention(nn.Module):
    """A causal single-head soft-attention block whose read is appended to its input.

    Attributes:
        key_size: Size ``K`` of queries and keys.
        value_size: Size ``V`` of the values (the read appended to the input).
    """

    key_size: int
    value_size: int

    @nn.compact
    def __call__(
        self,
        cache: tuple[jax.Array, jax.Array],
        x: jax.Array,
        pos0: jax.Array,
        pos: jax.Array,
        carried: jax.Array,
        final: jax.Array,
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """Runs the block over a sequence.

        Args:
            cache: Keys ``[B, L, K]`` and values ``[B, L, V]`` of the trial in flight, row ``p``
                holding trial step ``p`` (steps at ``p ≥ L`` are not kept).
            x: Inputs ``[T, B, C]``.
            pos0: Steps of the trial in flight before the sequence ``[B]``.
            pos: Trial positions ``[T, B]`` (see :func:`trial_positions`).
            carried: Steps of the trial in flight ``[T, B]``.
            final: Steps of the sequence's last trial ``[T, B]``.

        Returns:
            The new cache and ``x`` with the read appended ``[T, B, C + V]``.
        """
        keys, values = cache
        (T, B, _), L = x.shape, keys.shape[1]
        q = nn.Dense(self.key_size, name="query")(x) / math.sqrt(self.key_size)
        k = nn.Dense(self.key_size, name="key")(x)
        v = nn.Dense(self.value_size, name="value")(x)
        # Scores against the cached steps of the trial in flight, then against the sequence.
        s_cache = jnp.einsum("tbk,blk->tbl", q, keys)
        m_cache = carried[..., None] & (jnp.arange(L)[None, None, :] < pos0[None, :, None])
        t = jnp.arange(T)
        s_seq = jnp.einsum("tbk,sbk->tbs", q, k)
        first = (t[:, None] - pos)[..., None]  # the sequence index where the step's trial began
        m_seq = (t[None, None, :] <= t[:, None, None]) & (t[None, None, :] >= first)
        m_seq &= (pos.T < L)[None]  # as the cache, which keeps no step at p ≥ L
        low = jnp.finfo(s_seq.dtype).min
        s_cache, s_seq = jnp.where(m_cache, s_cache, low), jnp.where(m_seq, s_seq, low)
        top = jnp.maximum(s_cache.max(-1), s_seq.max(-1))[..., None]
        e_cache = jnp.where(m_cache, jnp.exp(s_cache - top), 0.0)
        e_seq = jnp.where(m_seq, jnp.exp(s_seq - top), 0.0)
        norm = e_cache.sum(-1, keepdims=True) + e_seq.sum(-1, keepdims=True)
        read_cache = jnp.einsum("tbl,blv->tbv", e_cache, values)
        read = (read_cache + jnp.einsum("tbs,sbv->tbv", e_seq, v)) / norm
        rows, index = jnp.arange(B)[None, :], jnp.where(final, pos, L)
        # read_cache comes from both caches (its weights from the keys): it orders both writes
        keys = keys.at[rows, index].set(_after(read_cache, k), mode="drop")
        values = values.at[rows, index].set(_after(read_cache, v), mode="drop")
        return (keys, values), jnp.concatenate([x, read], -1)


class SNAILTorso(nn.Module):
    """An input layer, then TC and attention blocks, over trials of up to ``max_len`` steps.

    Attributes:
        max_len: The longest trial (sets the TC blocks' depth and the attention cache).
        filters: Channels ``F`` of the input layer and of each convolution.
        key_size: Attention key size ``K``.
        value_size: Attention value size ``V``.
        blocks: The blocks in order, each ``"tc"`` or ``"attention"``.
    """

    max_len: int
    filters: int = 32
    key_size: int = 32
    value_size: int = 32
    blocks: Sequence[str] = ("tc", "attention", "tc", "attention")

    @nn.compact
    def __call__(self, carry: dict, x: jax.Array, start: jax.Array) -> tuple[dict, jax.Array]:
        """Maps inputs ``[T, B, D]`` to features ``[T, B, C]`` (see :func:`snail_width`).

        The carry is the cache :func:`snail_state` starts.
        """
        pos, carried, final = trial_positions(carry["pos"], start)
        y = nn.relu(nn.Dense(self.filters, name="embed")(x))
        conv, attention = [], []
        buffers, caches = iter(carry["conv"]), iter(carry["attention"])
        for i, block in enumerate(self.blocks):
            if block == "tc":
                for d in dilations(self.max_len):
                    name = f"tc{i}_d{d}"
                    buf, y = CausalConv(self.filters, d, name=name)(next(buffers), y, pos, final)
                    conv.append(buf)
            else:
                att = CausalAttention(self.key_size, self.value_size, name=f"attention{i}")
                cache, y = att(next(caches), y, carry["pos"], pos, carried, final)
                attention.append(cache)
        new = {"pos": pos[-1] + 1, "conv": tuple(conv), "attention": tuple(attention)}
        return new, y


def snail_width(max_len: int, filters: int, value_size: int, blocks: Sequence[str]) -> int:
    """Channels of the torso's output."""
    width = filters
    for block in blocks:
        width += filters * len(dilations(max_len)) if block == "tc" else value_size
    return width


def snail_state(
    batch: int, max_len: int, filters: int, key_size: int, value_size: int, blocks: Sequence[str]
) -> dict:
    """The empty cache: position 0, zeroed convolution buffers and attention caches."""
    conv, attention, width = [], [], filters
    for block in blocks:
        if block == "tc":
            for d in dilations(max_len):
                conv.append(jnp.zeros((batch, d, width), jnp.float32))
                width += filters
        else:
            keys = jnp.zeros((batch, max_len, key_size), jnp.float32)
            attention.append((keys, jnp.zeros((batch, max_len, value_size), jnp.float32)))
            width += value_size
    return {
        "pos": jnp.zeros((batch,), jnp.int32),
        "conv": tuple(conv),
        "attention": tuple(attention),
    }


class SNAILActorCritic(nn.Module):
    """Policy and value heads on a SNAIL torso (or the value on a torso of its own).

    The carry is ``{"torso": cache}`` plus ``"critic_torso"`` with a separate critic.

    Attributes:
        action_dim: Number of discrete actions, or the continuous action dimension.
        discrete: Categorical (true) or diagonal-Gaussian (false) policy.
        max_len: The longest trial.
        filters: See :class:`SNAILTorso`.
        key_size: See :class:`SNAILTorso`.
        value_size: See :class:`SNAILTorso`.
        blocks: See :class:`SNAILTorso`.
        separate_critic: Give the value head its own torso (twice the compute).
        policy_obs_dim: When positive, only ``obs[..., :policy_obs_dim]`` enters the torsos;
            the rest (privileged task features) reaches only the value head.
        init_log_std: Initial log standard deviation of a Gaussian policy.
        image_shape: ``(H, W, C)`` when the observation starts with an image: a
            :class:`~quickstudy.networks.conv.FrameEncoder` (shared by both torsos) encodes
            it first.
        explore_head: A second action head on the same features, ``aux["explore_dist"]``,
            for :func:`~quickstudy.networks.explore.two_phase_policy`.
        head_hidden_size: Width of a ReLU layer between the torso and the policy's heads
            (0: none).
        reward_head: A head on the policy's features that predicts rewards,
            ``aux["reward"]`` (see :class:`~quickstudy.networks.recurrent.RecurrentActorCritic`).
    """

    action_dim: int
    discrete: bool
    max_len: int
    filters: int = 32
    key_size: int = 32
    value_size: int = 32
    blocks: Sequence[str] = ("tc", "attention", "tc", "attention")
    separate_critic: bool = False
    policy_obs_dim: int = 0
    init_log_std: float = 0.0
    image_shape: tuple[int, int, int] | None = None
    explore_head: bool = False
    head_hidden_size: int = 0
    reward_head: bool = False

    @property
    def distribution(self) -> Distribution:
        """The action distribution that the policy head parameterises."""
        return Categorical(self.action_dim) if self.discrete else DiagGaussian(self.action_dim)

    def _torso(self, name: str) -> SNAILTorso:
        return SNAILTorso(
            self.max_len,
            self.filters,
            self.key_size,
            self.value_size,
            tuple(self.blocks),
            name=name,
        )

    def initial_state(self, batch: int) -> dict:
        """The empty carry of ``batch`` trials."""
        state = snail_state(
            batch, self.max_len, self.filters, self.key_size, self.value_size, self.blocks
        )
        return {"torso": state, "critic_torso": state} if self.separate_critic else {"torso": state}

    @nn.compact
    def __call__(self, carry: dict, obs: jax.Array, start: jax.Array) -> tuple[dict, PolicyOutput]:
        """Runs the policy over a sequence.

        Args:
            carry: The cache (see :meth:`initial_state`).
            obs: Observations ``[T, B, D]``.
            start: ``[T, B]`` bool, true at the first step of a trial.

        Returns:
            The new carry and the outputs: distribution parameters ``[T, B, P]`` and values
            ``[T, B]``.
        """
        privileged = None
        if self.policy_obs_dim:
            obs, privileged = obs[..., : self.policy_obs_dim], obs[..., self.policy_obs_dim :]
        if self.image_shape:
            obs = FrameEncoder(self.image_shape, name="encoder")(obs)
        state, y = self._torso("torso")(carry["torso"], obs, start)
        new_carry, y_v = {"torso": state}, y
        if self.separate_critic:
            new_carry["critic_torso"], y_v = self._torso("critic_torso")(
                carry["critic_torso"], obs, start
            )
        if self.head_hidden_size:
            y = nn.relu(nn.Dense(self.head_hidden_size, name="head_hidden")(y))
        out = action_head(self, y, self.action_dim, self.discrete, self.init_log_std)
        aux = {}
        if self.explore_head:
            aux["explore_dist"] = action_head(
                self, y, self.action_dim, self.discrete, self.init_log_std, "explore_"
            )
        if self.reward_head:
            aux["reward"] = nn.Dense(reward_width(self.action_dim, self.discrete), name="reward")(y)
        if privileged is not None:
            y_v = jnp.concatenate([y_v, privileged], -1)
            y_v = nn.relu(nn.Dense(self.filters, name="value_hidden")(y_v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(y_v)
        return new_carry, PolicyOutput(out, value[..., 0], aux)


def snail_policy(network: SNAILActorCritic, obs_dim: int) -> Policy:
    """The :class:`~quickstudy.types.Policy` of a SNAIL actor-critic on ``obs_dim`` inputs."""
    return recurrent_policy(network, obs_dim, CRITIC_MODULES)
