"""The RL² update (collect + PPO) with the fused FFI GRU patched in, against the current core.

Same timing as ``benchmarks/rl2_core.py`` (``time_update``: jitted update, compilation
excluded, min and median of repeats), alternating the two cores row by row.

    python experiments/gru_ffi/update.py --out benchmarks/results/gru_ffi_update.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks"))

import probe  # noqa: E402
from rl2_core import time_update  # noqa: E402
from rl2_throughput import HUGE_TOTAL_STEPS  # noqa: E402

from quickstudy.algorithms.rl2 import RL2Config  # noqa: E402
from quickstudy.networks import recurrent  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    probe.register(probe.build(Path(os.environ.get("TMPDIR", "/tmp")) / "libqs_gru_upd.so"))
    current = recurrent.gru_sequence
    rows = []
    load_before = os.getloadavg()[0]
    for H in args.sizes:
        config = dataclasses.replace(RL2Config(total_steps=HUGE_TOTAL_STEPS), hidden_size=H)
        for core, fn in (("scan", current), ("ffi", probe.gru_ffi)):
            recurrent.gru_sequence = fn
            try:
                r = time_update(config, "bandit-k5-n10", args.repeats, 10)
            finally:
                recurrent.gru_sequence = current
            r |= {"hidden_size": H, "core": core}
            rows.append(r)
            print(
                f"GRU {H:<4} {core:<5} {r['ms_per_update_min']:8.2f} ms min "
                f"{r['ms_per_update_median']:8.2f} median  {r['env_steps_per_s_best']:9.0f} "
                "env steps/s",
                flush=True,
            )
    out = dict(rows=rows, load_before=load_before, load_after=os.getloadavg()[0])
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
