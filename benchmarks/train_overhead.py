"""What the runner adds to the compiled training step: logging, checks, checkpoints.

    .venv/bin/python benchmarks/train_overhead.py [--repeats N] [--out FILE]

For supervised MAML on ``sinusoid-k10`` (1000 meta-iterations per chunk, the default), in one
run: the time per meta-iteration of the bare compiled chunk (the runner's own chunk program,
called back to back), and of `quickstudy.runner.train` (the same chunks plus the metric rows
to JSONL/CSV/TensorBoard, the finite check, the watch rules and checkpoints), as the CLI runs
it. The first chunk (compilation) is left out of both. Rows repeated, min and median.

It also times `MetricsLogger.log_rows` for one chunk of 1000 rows of 6 metrics: as it is now
(TensorBoard gets at most 100 rows, one event per row), with every row sent to TensorBoard, and
the way it was before (one ``add_scalar`` per value).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from results_io import write_result

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.tracking import logger as logger_module
from quickstudy.types import replace_nested

CHUNKS = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_overhead.json"))
    args = parser.parse_args()
    spec = registry.ALGORITHMS["maml"]
    size = spec.chunk_updates
    config = replace_nested(spec.config_cls(), {"total_steps": CHUNKS * size})
    load_before = os.getloadavg()
    bare, through = [], []
    for _ in range(args.repeats):
        algo = registry.build("maml", "sinusoid-k10", config)
        chunk = runner._chunk_fn(algo, size)
        state = algo.init(jax.random.key(0))
        state, _ = jax.block_until_ready(chunk(state, size, None))  # compile
        t0 = time.perf_counter()
        for _ in range(CHUNKS - 1):
            state, metrics = chunk(state, size, None)
            jax.device_get(metrics)
        bare.append((time.perf_counter() - t0) / ((CHUNKS - 1) * size))

        with tempfile.TemporaryDirectory() as tmp:
            settings = runner.RunSettings(chunk_updates=size)
            run = runner.create_run("maml", "sinusoid-k10", config, settings, run_dir=f"{tmp}/r")
            ends = []
            runner.train(run, on_chunk=lambda done, m: ends.append(time.perf_counter()))  # noqa: B023
            through.append((ends[-1] - ends[0]) / ((CHUNKS - 1) * size))
    rows = {
        "bare compiled chunk": bare,
        "runner.train (as the CLI)": through,
    }
    out_rows = []
    for label, times in rows.items():
        row = {
            "row": label,
            "ms_per_iteration_min": 1e3 * min(times),
            "ms_per_iteration_median": 1e3 * float(np.median(times)),
        }
        out_rows.append(row)
        print(
            f"{label:<28} {row['ms_per_iteration_min']:.3f} ms/iteration (median "
            f"{row['ms_per_iteration_median']:.3f})"
        )
    rows_1000 = [(i, {f"m{k}": float(i + k) for k in range(6)}) for i in range(1, 1001)]

    def per_scalar(self, records):  # the logger before: one add_scalar per value
        for record in records:
            for name, value in record.items():
                if name not in ("step", logger_module.NONFINITE) and value is not None:
                    self._writer.add_scalar(name, value, global_step=record["step"])

    variants = {
        "log_rows now (TensorBoard thinned)": {},
        "log_rows, every row to TensorBoard": {"TENSORBOARD_ROWS_PER_CALL": 10**9},
        "log_rows before (add_scalar per value)": {"per_scalar": True},
    }
    log_rows = []
    for label, patch in variants.items():
        times = []
        saved = (
            logger_module.TENSORBOARD_ROWS_PER_CALL,
            logger_module.MetricsLogger._tensorboard_rows,
        )
        logger_module.TENSORBOARD_ROWS_PER_CALL = patch.get("TENSORBOARD_ROWS_PER_CALL", saved[0])
        if patch.get("per_scalar"):
            logger_module.MetricsLogger._tensorboard_rows = per_scalar
        try:
            with tempfile.TemporaryDirectory() as tmp, logger_module.MetricsLogger(tmp) as log:
                for r in range(args.repeats + 1):
                    chunk_rows = [(s + 1000 * r, m) for s, m in rows_1000]
                    t0 = time.perf_counter()
                    log.log_rows(chunk_rows)
                    times.append(time.perf_counter() - t0)
        finally:
            (
                logger_module.TENSORBOARD_ROWS_PER_CALL,
                logger_module.MetricsLogger._tensorboard_rows,
            ) = saved
        times = times[1:]  # the first call imports the protobuf modules
        row = {
            "row": label,
            "ms_per_chunk_min": 1e3 * min(times),
            "ms_per_chunk_median": 1e3 * float(np.median(times)),
        }
        log_rows.append(row)
        print(
            f"{label:<40} {row['ms_per_chunk_min']:7.1f} ms per 1000-row chunk "
            f"(median {row['ms_per_chunk_median']:.1f})"
        )
    overhead = min(through) / min(bare) - 1
    print(f"runner overhead: {100 * overhead:+.1f} % (min against min)")
    out = {
        "task": "sinusoid-k10",
        "chunk": size,
        "chunks_timed": CHUNKS - 1,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": out_rows,
        "overhead": overhead,
        "log_rows": log_rows,
    }
    write_result(out, "train_overhead", False, args.out)


if __name__ == "__main__":
    main()
