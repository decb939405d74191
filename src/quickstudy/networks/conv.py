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


class FrameEncoder(nn.Module):
    """Encodes the image at the front of a flat observation; the rest passes through.

    Observations whose first ``H·W·C`` entries are an image (a maze's first-person frame, with
    the trial's previous action, reward and done after it) enter a memory through this: the
    image is cut into non-overlapping ``patch × patch`` tiles (a convolution whose stride is its
    kernel, written as one matrix product), each embedded into ``channels`` ReLU units; the
    tiles' embeddings then go through a ReLU layer of ``features`` units, concatenated with the
    observation's remaining entries. XLA's CPU convolutions (and their gradients) are far
    slower than a matrix product of the same work, so the tiling is written out.

    Attributes:
        image_shape: ``(H, W, C)`` of the image; ``H`` and ``W`` divisible by ``patch``.
        patch: Tile side in pixels.
        channels: Embedding width of a tile.
        features: Width of the image's encoding.
    """

    image_shape: tuple[int, int, int]
    patch: int = 5
    channels: int = 16
    features: int = 64

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        """Maps ``[..., D]`` to ``[..., features + D - H·W·C]``."""
        h, w, c = self.image_shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"image {self.image_shape} is not divisible into {p}x{p} tiles")
        image, rest = obs[..., : h * w * c], obs[..., h * w * c :]
        lead = obs.shape[:-1]
        tiles = image.reshape((-1, h // p, p, w // p, p, c)).transpose(0, 1, 3, 2, 4, 5)
        tiles = tiles.reshape((-1, (h // p) * (w // p), p * p * c))
        x = nn.relu(nn.Dense(self.channels, name="tiles")(tiles))
        x = nn.relu(nn.Dense(self.features, name="frame")(x.reshape((x.shape[0], -1))))
        return jnp.concatenate([x.reshape((*lead, self.features)), rest], -1)
