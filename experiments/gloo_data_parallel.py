"""Data parallel across two pinned processes with JAX's CPU collectives (gloo): not a win here.

    .venv/bin/python experiments/gloo_data_parallel.py [--repeats 3]

Two processes pinned to one core each run 1.87x the env steps/s of one process on both cores
(``benchmarks/seeds_parallel.py``), so one run split over two such processes, gradients
averaged by JAX's multi-process collectives (``jax.distributed`` with
``jax_cpu_collectives_implementation="gloo"``), looked like the way to use the second core for
a single run. This script measures the two things that decide it, each in fresh processes with
single-threaded XLA:

* the latency of one all-reduce between the two processes (a scalar, and a 600 kB gradient),
  pinned to one core each and unpinned;
* RL² on ``bandit-k10-n100`` (GRU 128, task-informed critic, 20-step rollouts, strided PPO
  minibatches so that each process computes the gradient of its own sequences): seconds per
  update in one pinned process, and with the 128 environments split over two.

Prints a table and writes ``benchmarks/results/gloo_data_parallel.json`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _start(processes: int, pid: int, port: int):
    import jax

    if processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"localhost:{port}", num_processes=processes, process_id=pid)
    return jax


def allreduce_worker(pid: int, port: int, size: int, reps: int) -> dict:
    jax = _start(2, pid, port)
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()), ("data",))
    host = np.ones((2, size), np.float32)
    x = jax.make_array_from_callback(
        host.shape, NamedSharding(mesh, PartitionSpec("data")), lambda idx: host[idx]
    )
    total = jax.jit(lambda x: x.sum(0), out_shardings=NamedSharding(mesh, PartitionSpec()))
    total(x).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(reps):
        y = total(x)
    y.block_until_ready()
    return {"us_per_allreduce": (time.perf_counter() - t0) / reps * 1e6}


def rl2_worker(processes: int, pid: int, port: int, chunks: int) -> dict:
    jax = _start(processes, pid, port)
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from quickstudy import runner
    from quickstudy.algorithms import registry

    overrides = {"task_critic": True, "rollout_len": 20, "hidden_size": 128,
                 "critic_hidden_size": 64, "ppo": {"strided_minibatches": True}}  # fmt: skip
    config = registry.get("rl2").config("bandit-k10-n100", overrides=overrides)
    algo = registry.build("rl2", "bandit-k10-n100", config)
    state = jax.jit(algo.init)(jax.random.key(0))
    if processes > 1:  # every process holds the whole initial state; each keeps its part
        mesh = Mesh(np.array(jax.devices()), ("data",))
        split = NamedSharding(mesh, PartitionSpec("data"))
        whole = NamedSharding(mesh, PartitionSpec())

        def to_global(x, sharding):
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                impl, data = jax.random.key_impl(x), to_global(jax.random.key_data(x), sharding)
                wrap = jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl),
                               out_shardings=sharding)  # fmt: skip
                return wrap(data)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

        mask = jax.tree.map(lambda m, x: bool(m) and x.ndim > 0, algo.data_axes(state), state)
        state = jax.tree.map(lambda m, x: to_global(x, split if m else whole), mask, state)
    chunk = runner._chunk_fn(algo, 10)
    state, _ = chunk(state, 10, None)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(chunks):
        state, metrics = chunk(state, 10, None)
    jax.block_until_ready(state)
    seconds = (time.perf_counter() - t0) / (10 * chunks)
    return {"s_per_update": seconds, "steps_per_s": algo.steps_per_update / seconds}


def _launch(args: list[str], processes: int, pinned: bool) -> list[dict]:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FLAGS}".strip()}
    procs = []
    for pid in range(processes):
        cmd = [sys.executable, __file__, "--_worker", str(pid), "--_port", str(port), *args]
        if pinned:
            cmd = ["taskset", "-c", str(pid), *cmd]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: {[p.returncode for p in procs]}")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--_worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--_job", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker is not None:
        kind, *rest = args._job
        if kind == "allreduce":
            out = allreduce_worker(args._worker, args._port, int(rest[0]), 200)
        else:
            out = rl2_worker(int(rest[0]), args._worker, args._port, args.chunks)
        print(json.dumps(out))  # noqa: T201
        return
    load_before = os.getloadavg()
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for size, pinned in ((1, True), (1, False), (150_000, True)):
            label = f"all-reduce of {size * 4:,} B, {'pinned' if pinned else 'unpinned'} (us)"
            out = _launch(["--_job", "allreduce", str(size)], 2, pinned)
            rows.setdefault(label, []).append(out[0]["us_per_allreduce"])
        for processes in (1, 2):
            label = f"RL2 update, {processes} pinned process{'es' if processes > 1 else ''} (s)"
            out = _launch(["--chunks", str(args.chunks), "--_job", "rl2", str(processes)],
                          processes, True)  # fmt: skip
            rows.setdefault(label, []).append(out[0]["s_per_update"])
    for label, values in rows.items():
        print(f"{label:<52} min {min(values):10.4g}  median {np.median(values):10.4g}")  # noqa: T201
    record = {
        "experiment": "gloo_data_parallel",
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": {
            k: {"min": min(v), "median": float(np.median(v)), "all": v} for k, v in rows.items()
        },
    }
    out_dir = Path(__file__).parent.parent / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gloo_data_parallel.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out_dir / 'gloo_data_parallel.json'}")  # noqa: T201


if __name__ == "__main__":
    main()
