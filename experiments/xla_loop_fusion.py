"""Why the GRU was slow inside ``lax.scan`` on CPU: the element-wise gate code, one layout each.

    python experiments/xla_loop_fusion.py

Times, per step of a 100-step scan over [128, 64] (the element-wise GRU gate math only, no
matrix product), the same arithmetic with the gate inputs read as slices of one scanned
``[T, B, 3H]`` array, as leading-axis slices of ``[T, 3, B, H]``, and as three separate
``[T, B, H]`` arrays; and one sigmoid alone for scale. On the reference machine (2026-12-05)
the first two took 120-135 µs per step and the separate arrays 13 µs: XLA's CPU code for a
fused loop body that reads several slices of one scanned array is about ten times slower.
"""

import time

import jax
import jax.numpy as jnp

B, T, H = 128, 100, 64
sig = jax.nn.sigmoid


def gates(h, gr, gz, gn):
    r, z = sig(gr), sig(gz)
    n = jnp.tanh(gn + r * h)
    return (1 - z) * n + z * h


def per_step_us(cell, xs) -> float:
    fn = jax.jit(lambda h: jax.lax.scan(cell, h, xs)[0])
    h0 = jnp.zeros((B, H))
    jax.block_until_ready(fn(h0))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            out = fn(h0)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / 20 / T)
    return 1e6 * min(times)


def main() -> None:
    k = jax.random.split(jax.random.key(0), 3)
    joint = jax.random.normal(k[0], (T, B, 3 * H))
    gate_major = joint.reshape(T, B, 3, H).transpose(0, 2, 1, 3)
    split = (joint[..., :H], joint[..., H : 2 * H], joint[..., 2 * H :])
    rows = {
        "slices of one [T, B, 3H] array": (
            lambda h, g: (gates(h, g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]), None),
            joint,
        ),
        "leading slices of [T, 3, B, H]": (
            lambda h, g: (gates(h, g[0], g[1], g[2]), None),
            gate_major,
        ),
        "three separate [T, B, H] arrays": (lambda h, g: (gates(h, *g), None), split),
        "one sigmoid (scale)": (lambda h, g: (sig(g[:, :H]) * h, None), joint),
    }
    for label, (cell, xs) in rows.items():
        print(f"{label:<34} {per_step_us(cell, xs):7.1f} µs/step")  # noqa: T201


if __name__ == "__main__":
    main()
