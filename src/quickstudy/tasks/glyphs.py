"""Procedural glyphs: an Omniglot-like N-way K-shot classification benchmark that needs no files.

Omniglot (Lake et al. 2015) has 1623 handwritten characters with 20 drawings each; MAML uses 1200
characters for meta-training and the rest for meta-testing, at 28 x 28 pixels. This module
generates a stand-in with the same shape, computed on the fly inside ``jit``: character ``c`` is
2-4 quadratic Bézier strokes whose control points come from ``fold_in(key(seed), c)``; drawing
``j`` of it jitters the control points and applies a small random rotation, scaling and shift, all
from ``fold_in(class key, j)``; the strokes are rendered anti-aliased from their distance field.
Every (character, drawing) pair is the same image on every call and machine.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SIZE = 28
NUM_CLASSES = 1623
NUM_TRAIN_CLASSES = 1200
DRAWINGS = 20
MAX_STROKES = 4
CURVE_POINTS = 12
STROKE_WIDTH = 0.045
SEED = 20_151_211  # the date of Lake et al.'s Science paper


def _class_strokes(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Control points ``[MAX_STROKES, 3, 2]`` in ``[0, 1]^2``, stroke mask ``[MAX_STROKES]``."""
    key = jax.random.fold_in(jax.random.key(SEED), c)
    k_pts, k_num = jax.random.split(key)
    pts = jax.random.uniform(k_pts, (MAX_STROKES, 3, 2), minval=0.15, maxval=0.85)
    num = jax.random.randint(k_num, (), 2, MAX_STROKES + 1)
    return pts, jnp.arange(MAX_STROKES) < num


def render(c: jax.Array, j: jax.Array) -> jax.Array:
    """Drawing ``j`` of character ``c`` as a ``[28, 28, 1]`` float image in ``[0, 1]``."""
    pts, mask = _class_strokes(c)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(SEED + 1), c), j)
    k_jit, k_rot, k_scale, k_shift = jax.random.split(key, 4)
    pts = pts + 0.025 * jax.random.normal(k_jit, pts.shape)
    angle = jax.random.uniform(k_rot, (), minval=-0.2, maxval=0.2)
    scale = jax.random.uniform(k_scale, (), minval=0.88, maxval=1.12)
    shift = jax.random.uniform(k_shift, (2,), minval=-0.06, maxval=0.06)
    rot = jnp.array([[jnp.cos(angle), -jnp.sin(angle)], [jnp.sin(angle), jnp.cos(angle)]])
    pts = (pts - 0.5) @ rot.T * scale + 0.5 + shift
    t = jnp.linspace(0.0, 1.0, CURVE_POINTS)[None, :, None]
    p0, p1, p2 = pts[:, 0:1], pts[:, 1:2], pts[:, 2:3]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # [S, P, 2]
    a = curve[:, :-1].reshape(-1, 2)  # segment starts [S (P-1), 2]
    ab = curve[:, 1:].reshape(-1, 2) - a
    valid = jnp.repeat(mask, CURVE_POINTS - 1)
    grid = (jnp.arange(SIZE, dtype=jnp.float32) + 0.5) / SIZE
    px, py = grid[None, :, None], grid[:, None, None]  # x varies along columns
    ax, ay, bx, by = a[:, 0], a[:, 1], ab[:, 0], ab[:, 1]
    denom = jnp.maximum(bx * bx + by * by, 1e-9)
    u = jnp.clip(((px - ax) * bx + (py - ay) * by) / denom, 0.0, 1.0)  # [H, W, segments]
    d2 = (px - ax - u * bx) ** 2 + (py - ay - u * by) ** 2
    dist = jnp.sqrt(jnp.where(valid, d2, jnp.inf).min(axis=-1))
    ink = jnp.clip((STROKE_WIDTH - dist) * SIZE + 0.5, 0.0, 1.0)
    return ink[..., None]
