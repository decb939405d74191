"""Where the fused GRU forward kernel spends its time: full, without the recurrent product,
without the gate nonlinearities (``gru_kernels.cc`` built three ways), beside the ``lax.scan``.

    python experiments/gru_ffi/split.py --out benchmarks/results/gru_ffi_split.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
from pathlib import Path

import jax
import probe

from quickstudy.networks.recurrent import _gru_forward

VARIANTS = {"full": (), "no_matmul": ("QS_NO_MATMUL",), "no_gates": ("QS_NO_GATES",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    for name, defines in VARIANTS.items():
        lib = ctypes.cdll.LoadLibrary(str(probe.build(tmp / f"libqs_gru_{name}.so", defines)))
        capsule = jax.ffi.pycapsule(lib.qs_gru_forward)
        jax.ffi.register_ffi_target(f"fwd_{name}", capsule, platform="cpu")
    rows = []
    load_before = os.getloadavg()[0]
    for T, B, H in [(10, 32, 64), (10, 128, 64), (10, 32, 256)]:
        x = probe.inputs(T, B, H)
        row = dict(T=T, B=B, H=H)
        row["scan_us"] = probe.timeit(jax.jit(_gru_forward), x, 7, 200)[0]
        for name in VARIANTS:
            call = probe.forward_call(f"fwd_{name}")
            row[f"ffi_{name}_us"] = probe.timeit(jax.jit(call), x, 7, 200)[0]
        row["empty_jit_us"] = probe.timeit(jax.jit(lambda a: a + 1.0), (x[6],), 7, 200)[0]
        row["matmul_flop_per_step"] = 2 * B * H * 3 * H
        rows.append(row)
        print({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()})
    result = dict(rows=rows, load_before=load_before, load_after=os.getloadavg()[0])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
