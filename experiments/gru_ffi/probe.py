"""Probe: a fused GRU recurrence as an XLA FFI kernel against quickstudy's ``gru_sequence``.

Builds ``gru_kernels.cc`` with g++ (the XLA FFI headers ship with jaxlib), registers it, checks
outputs and gradients against the ``lax.scan`` implementation, and times the gradient of a
scalar loss through one GRU for a few shapes (min and median of repeats).

    python experiments/gru_ffi/probe.py --out benchmarks/results/gru_ffi_probe.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.networks.recurrent import gru_sequence

HERE = Path(__file__).parent


def build(out: Path, defines: tuple[str, ...] = ()) -> Path:
    include = jax.ffi.include_dir()
    cmd = ["g++", "-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math"]
    cmd += ["-fopenmp-simd", "-std=c++17"]
    cmd += ["-shared", "-fPIC", "-w", f"-I{include}", str(HERE / "gru_kernels.cc")]
    cmd += [f"-D{d}" for d in defines] + ["-o", str(out), "-lmvec", "-lm"]
    subprocess.run(cmd, check=True)
    return out


def register(lib_path: Path) -> None:
    lib = ctypes.cdll.LoadLibrary(str(lib_path))
    for name in ("qs_gru_forward", "qs_gru_backward"):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")


def forward_call(target="qs_gru_forward"):
    """The registered forward kernel ``target`` as a function of ``gru_sequence``'s inputs."""

    def call(w_h, b_h, g_r, g_z, g_n, start, h0):
        T, B, H = g_r.shape
        seq = jax.ShapeDtypeStruct((T, B, H), jnp.float32)
        shapes = [jax.ShapeDtypeStruct((B, H), jnp.float32)] + [seq] * 6
        return jax.ffi.ffi_call(target, shapes, vmap_method="sequential")(
            w_h, b_h, g_r, g_z, g_n, start, h0
        )

    return call


_fwd_call = forward_call()


@jax.custom_vjp
def gru_ffi(w_h, b_h, g_r, g_z, g_n, start, h0):
    h_last, hs, *_ = _fwd_call(w_h, b_h, g_r, g_z, g_n, start, h0)
    return h_last, hs


def _fwd(w_h, b_h, g_r, g_z, g_n, start, h0):
    h_last, hs, *res = _fwd_call(w_h, b_h, g_r, g_z, g_n, start, h0)
    return (h_last, hs), (w_h, start, res)


def _bwd(saved, cot):
    w_h, start, (h_prev, r, z, n, gh_n) = saved
    dh_last, dys = cot
    T, B, H = h_prev.shape
    shapes = [jax.ShapeDtypeStruct((B, H), jnp.float32)]
    shapes += [jax.ShapeDtypeStruct((T, B, H), jnp.float32)] * 4
    dh0, da_r, da_z, da_n, dgh_n = jax.ffi.ffi_call(
        "qs_gru_backward", shapes, vmap_method="sequential"
    )(w_h, start, h_prev, r, z, n, gh_n, dh_last, dys)
    dgh = jnp.concatenate([da_r, da_z, dgh_n], -1)
    dw_h = jnp.einsum("tbh,tbg->hg", h_prev, dgh)
    return dw_h, dgh.sum((0, 1)), da_r, da_z, da_n, None, dh0


gru_ffi.defvjp(_fwd, _bwd)


def inputs(T, B, H, seed=0):
    rng = np.random.default_rng(seed)
    w_h = jnp.asarray(rng.normal(size=(H, 3 * H)) / np.sqrt(H), jnp.float32)
    b_h = jnp.asarray(rng.normal(size=(3 * H,)) * 0.1, jnp.float32)
    g = [jnp.asarray(rng.normal(size=(T, B, H)), jnp.float32) for _ in range(3)]
    start = jnp.asarray(rng.random((T, B)) < 0.2)
    h0 = jnp.asarray(rng.normal(size=(B, H)) * 0.5, jnp.float32)
    return (w_h, b_h, *g, start, h0)


def loss_of(fn):
    def loss(w_h, b_h, g_r, g_z, g_n, start, h0):
        h_last, hs = fn(w_h, b_h, g_r, g_z, g_n, start, h0)
        return jnp.sum(jnp.sin(hs)) + jnp.sum(h_last**2)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4, 6)))


def timeit(f, args, repeats, number):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            out = f(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / number * 1e6)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    lib = build(Path(os.environ.get("TMPDIR", "/tmp")) / "libqs_gru_probe.so")
    register(lib)
    rows = []
    load_before = os.getloadavg()[0]
    for T, B, H in [(10, 32, 64), (10, 128, 64), (100, 32, 64), (10, 32, 256), (25, 64, 256)]:
        x = inputs(T, B, H)
        out_ref = jax.jit(gru_sequence)(*x)
        out_ffi = jax.jit(gru_ffi)(*x)
        fwd_err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(out_ref, out_ffi, strict=True))
        g_ref, g_ffi = loss_of(gru_sequence)(*x), loss_of(gru_ffi)(*x)
        grad_err = max(
            float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-12))
            for a, b in zip(g_ref, g_ffi, strict=True)
        )
        t_ref = timeit(loss_of(gru_sequence), x, args.repeats, 50)
        t_ffi = timeit(loss_of(gru_ffi), x, args.repeats, 50)
        row = dict(
            T=T, B=B, H=H, fwd_max_abs_err=fwd_err, grad_max_rel_err=grad_err,
            scan_us_min=t_ref[0], scan_us_median=t_ref[1],
            ffi_us_min=t_ffi[0], ffi_us_median=t_ffi[1], speedup_min=t_ref[0] / t_ffi[0],
        )  # fmt: skip
        rows.append(row)
        print(
            f"T={T:4d} B={B:4d} H={H:4d}  grad of loss: scan {t_ref[0]:8.1f} us  "
            f"ffi {t_ffi[0]:8.1f} us  ({t_ref[0] / t_ffi[0]:.2f}x)  "
            f"fwd err {fwd_err:.1e}  grad rel err {grad_err:.1e}"
        )
    result = dict(rows=rows, load_before=load_before, load_after=os.getloadavg()[0])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
