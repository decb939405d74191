"""MuJoCo collection throughput: quickstudy's native batches against bare MuJoCo and Gymnasium.

Half-cheetah (Gymnasium's model, frame_skip 5), env steps/s at batch sizes 20, 64 and 128:

* **bare, 1 thread**: ``mj_step(model, data, 5)`` over B ``MjData`` in a Python loop, random
  controls, nothing else (the physical limit of one core);
* **bare rollout, all threads**: ``mujoco.rollout.Rollout`` stepping the B states 5 physics
  steps per call, a new control per call;
* **quickstudy cheetah-vel**: the ``cheetah-vel`` host environment (per-row tasks, rewards,
  observations, states kept as arrays) with the policy in the loop;
* **Gymnasium Sync/AsyncVectorEnv**: ``gymnasium.make_vec("HalfCheetah-v5", B, ...)`` (the same
  model and frame skip) with the same policy in the loop.

The policy is the same jitted Gaussian MLP (2 x 64 tanh) in every row that has one, called on
the whole batch each step. Each row is repeated (min and median of the env steps/s);
load average before and after. Usage::

    .venv/bin/pip install -e ".[bench]"             # imageio, which Gymnasium's MuJoCo envs import
    .venv/bin/python benchmarks/mujoco_throughput.py          # about 3 minutes on 2 idle cores
    .venv/bin/python benchmarks/mujoco_throughput.py --quick

Writes JSON to ``--out`` (default ``benchmarks/results/mujoco_throughput.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import rollout
from results_io import write_result

from quickstudy import tasks as task_registry
from quickstudy.envs.mujoco import robot_xml


def make_policy(obs_dim: int, act_dim: int):
    """A jitted Gaussian MLP ``obs [B, D] -> action [B, A]`` with fixed random weights."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w1 = jax.random.normal(k1, (obs_dim, 64)) / np.sqrt(obs_dim)
    w2 = jax.random.normal(k2, (64, 64)) / 8.0
    w3 = jax.random.normal(k3, (64, act_dim)) / 8.0

    @jax.jit
    def act(obs, t):
        key = jax.random.fold_in(jax.random.key(1), t)
        h = jnp.tanh(jnp.tanh(obs.astype(jnp.float32) @ w1) @ w2)
        return jnp.clip(h @ w3 + 0.3 * jax.random.normal(key, (obs.shape[0], act_dim)), -1, 1)

    def policy(obs, t):
        return np.asarray(act(obs, np.int32(t)))

    return policy


def bare_loop(batch: int, steps: int) -> float:
    model = mujoco.MjModel.from_xml_path(robot_xml("half_cheetah"))
    datas = [mujoco.MjData(model) for _ in range(batch)]
    ctrl = np.random.default_rng(0).uniform(-1, 1, (steps, batch, model.nu))
    t0 = time.perf_counter()
    for t in range(steps):
        for i, d in enumerate(datas):
            d.ctrl[:] = ctrl[t, i]
            mujoco.mj_step(model, d, 5)
    return batch * steps / (time.perf_counter() - t0)


def bare_rollout(batch: int, steps: int) -> float:
    model = mujoco.MjModel.from_xml_path(robot_xml("half_cheetah"))
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((batch, mujoco.mj_stateSize(model, spec)))
    for i in range(batch):
        mujoco.mj_getState(model, data, state[i], spec)
    ctrl = np.random.default_rng(0).uniform(-1, 1, (steps, batch, 1, model.nu))
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    with rollout.Rollout(nthread=threads) as pool:
        datas = [mujoco.MjData(model) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in range(steps):
            out, _ = pool.rollout(model, datas, state, ctrl[t], nstep=5)
            state = out[:, -1]
    return batch * steps / (time.perf_counter() - t0)


def quickstudy_env(batch: int, steps: int) -> float:
    dist = task_registry.make("cheetah-vel")
    env = dist.env
    params = jax.device_get(dist.sample(jax.random.key(0), batch))
    rng = np.random.default_rng(0)
    policy = make_policy(20, 6)
    state, ts = env.reset(rng, params)
    policy(ts.obs, 0)  # compile
    t0 = time.perf_counter()
    for t in range(steps):
        state, ts = env.step(rng, state, policy(ts.obs, t), params)
    return batch * steps / (time.perf_counter() - t0)


def gymnasium_vec(batch: int, steps: int, mode: str) -> float:
    import gymnasium

    vec = gymnasium.make_vec("HalfCheetah-v5", num_envs=batch, vectorization_mode=mode)
    policy = make_policy(17, 6)
    obs, _ = vec.reset(seed=0)
    policy(obs, 0)
    vec.step(policy(obs, 0))  # start the workers
    t0 = time.perf_counter()
    for t in range(steps):
        obs, *_ = vec.step(policy(obs, t))
    rate = batch * steps / (time.perf_counter() - t0)
    vec.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[20, 64, 128])
    parser.add_argument("--steps", type=int, default=200, help="env steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="few steps; not for quoting")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.batches = 20, 1, [20]
    rows = {
        "bare mj_step loop, 1 thread": bare_loop,
        "bare mujoco.rollout, all threads": bare_rollout,
        "quickstudy cheetah-vel + policy": quickstudy_env,
        "Gymnasium SyncVectorEnv + policy": lambda b, s: gymnasium_vec(b, s, "sync"),
        "Gymnasium AsyncVectorEnv + policy": lambda b, s: gymnasium_vec(b, s, "async"),
    }
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict]] = {}
    print(
        f"{'env steps/s (best / median)':40s}" + "".join(f"{f'B={b}':>22s}" for b in args.batches)
    )
    for label, fn in rows.items():
        results[label] = {}
        cells = []
        for batch in args.batches:
            rates = [fn(batch, args.steps) for _ in range(args.repeats)]
            results[label][str(batch)] = {
                "best": max(rates),
                "median": float(np.median(rates)),
                "rates": rates,
            }
            cells.append(f"{max(rates):>10,.0f} / {np.median(rates):>9,.0f}")
        print(f"{label:40s}" + "".join(f"{c:>22s}" for c in cells), flush=True)
    ratios = {}
    for batch in map(str, args.batches):
        ours = results["quickstudy cheetah-vel + policy"][batch]["median"]
        bare = results["bare mj_step loop, 1 thread"][batch]["median"]
        gym_best = max(results[k][batch]["median"] for k in results if k.startswith("Gymnasium"))
        ratios[batch] = {"vs_bare_1_thread": ours / bare, "vs_best_gymnasium": ours / gym_best}
        print(
            f"B={batch}: quickstudy is {ours / bare:.2f}x bare one-thread stepping and "
            f"{ours / gym_best:.2f}x Gymnasium's best vector env"
        )
    record = {
        "benchmark": "mujoco_throughput",
        "quick": args.quick,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "mujoco": mujoco.__version__,
        },
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {"steps": args.steps, "repeats": args.repeats, "batches": args.batches},
        "results": results,
        "ratios": ratios,
    }
    write_result(record, "mujoco_throughput", args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
