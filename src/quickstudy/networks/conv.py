"""MAML's convolutional few-shot classifier (Finn et al. 2017, §5.2; Vinyals et al. 2016)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class ConvNet(nn.Module):
    """``blocks`` x [3x3 conv (stride 2), batch-statistics normalisation, ReLU], then a linear head.

    The normalisation always uses the statistics of the batch it is given (no running averages),
    as MAML's implementation does, so the parameters stay one plain pytree.

    Attributes:
        out_dim: Number of classes.
        channels: Filters per convolution (MAML: 64 for Omniglot).
        blocks: Convolutional blocks.
    """

    out_dim: int
    channels: int = 64
    blocks: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps images ``[B, H, W, C]`` to logits ``[B, out_dim]``."""
        for i in range(self.blocks):
            x = nn.Conv(self.channels, (3, 3), strides=2, padding="SAME", name=f"conv_{i}")(x)
            mean = x.mean(axis=(0, 1, 2))
            var = x.var(axis=(0, 1, 2))
            scale = self.param(f"scale_{i}", nn.initializers.ones, (self.channels,))
            bias = self.param(f"bias_{i}", nn.initializers.zeros, (self.channels,))
            x = nn.relu((x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias)
        return nn.Dense(self.out_dim, name="out")(jnp.reshape(x, (x.shape[0], -1)))
