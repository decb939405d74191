"""Multi-layer perceptrons whose parameters are plain pytrees (MAML differentiates through them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """A ReLU MLP with a linear output layer.

    Attributes:
        hidden_sizes: Widths of the hidden layers, e.g. ``(40, 40)`` (MAML's sinusoid network).
        out_dim: Output size.
        kernel_init: Initialiser of every weight matrix (biases start at zero).
    """

    hidden_sizes: Sequence[int]
    out_dim: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps inputs ``[..., D]`` to outputs ``[..., out_dim]``."""
        for i, width in enumerate(self.hidden_sizes):
            x = nn.relu(nn.Dense(width, kernel_init=self.kernel_init, name=f"hidden_{i}")(x))
        return nn.Dense(self.out_dim, kernel_init=self.kernel_init, name="out")(x)
