"""Where one PPO gradient step of the default RL² configuration spends its time, per XLA kernel.

    python experiments/rl2_grad_profile.py [--hidden-size 64] [--steps 20] [--top 25]

Builds the default configuration (``bandit-k5-n10``, GRU 64 policy and critic cores), and one
minibatch of its PPO update (32 trials of 10 steps). It times four jitted bodies, each repeated
16 times inside one ``lax.scan``: the forward pass, the gradient, Adam alone, and gradient +
Adam. Then it records ``--steps`` gradient steps with ``jax.profiler`` and sums the duration of
every XLA kernel ("thunk") in the trace. A kernel inside a loop counts once per iteration.

It prints the top kernels with the operation each one comes from. The trace adds about
50 % to the wall time, so the per-kernel figures are for ranking, not for quoting. Findings on
the reference machine (2026-12-06) are in ``docs/results/performance.md``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.learners.base import SequenceBatch, linear_decay
from quickstudy.learners.ppo import group_optimizer, ppo_loss

T, B, REPEATS = 10, 32, 16


def minibatch(policy, obs_dim: int) -> SequenceBatch:
    """One minibatch of the default update's shape with random observations."""
    key = jax.random.key(1)
    zeros = jnp.zeros((T, B))
    return SequenceBatch(
        carry0=policy.init_carry(B),
        obs=jax.random.normal(key, (T, B, obs_dim)),
        start=jnp.zeros((T, B), bool).at[0].set(True),
        action=jnp.zeros((T, B), jnp.int32),
        log_prob=zeros - 1.6,
        value=zeros,
        advantage=jax.random.normal(key, (T, B)),
        target=zeros + 1.0,
        reward=zeros,
    )


def time_body(body, params, opt_state) -> float:
    """ms per call of ``body(params, opt_state) -> (params, opt_state)``, min of 7."""

    def repeated(p, o):
        return jax.lax.scan(lambda c, _: (body(*c), None), (p, o), None, length=REPEATS)[0]

    fn = jax.jit(repeated)
    jax.block_until_ready(fn(params, opt_state))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, opt_state))
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times) / REPEATS


def kernel_times(fn, state: tuple, calls: int) -> tuple[collections.Counter, ...]:
    """µs and calls per call of ``fn(*state) -> state`` for every XLA kernel, and its operation.

    Runs ``fn`` a few times, then ``calls`` times under ``jax.profiler``; a kernel inside a loop
    counts once per iteration. Returns ``(µs, calls, kernel -> op_name)``.
    """
    hlo = fn.lower(*state).compile().as_text()
    origin = dict(re.findall(r"^\s+%(\S+) = .*?op_name=\"([^\"]+)\"", hlo, re.MULTILINE))
    for _ in range(5):
        state = jax.block_until_ready(fn(*state))
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(calls):
            state = jax.block_until_ready(fn(*state))
        jax.profiler.stop_trace()
        (path,) = glob.glob(f"{trace_dir}/plugins/profile/*/*.trace.json.gz")
        with gzip.open(path) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e["name"] in origin or e["name"].startswith("while"):
            total[e["name"]] += e["dur"] / calls
            count[e["name"]] += 1 / calls
    return total, count, origin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    config = RL2Config(hidden_size=args.hidden_size)
    algorithm = make_rl2(config, task_registry.make("bandit-k5-n10"))
    policy = algorithm.parts["policy"]
    example = algorithm.tasks.sample_one(jax.random.key(0))
    obs_dim = algorithm.parts["env"].observation_space(example).shape[0]
    batch = minibatch(policy, obs_dim)
    params = policy.init(jax.random.key(0))
    optimizer = group_optimizer(config.ppo, policy, linear_decay(3e-4, True, 10**6))
    opt_state = optimizer.init(params)
    grad_fn = jax.grad(ppo_loss, has_aux=True)

    def forward(p, o):
        _, out = policy.apply(p, batch.carry0, batch.obs, batch.start)
        return jax.tree.map(lambda x: x + 0 * out.value.sum(), p), o

    def gradient(p, o):
        g, _ = grad_fn(p, batch, policy, config.ppo)
        return jax.tree.map(lambda a, b: a - 1e-6 * b, p, g), o

    def adam(p, o):
        updates, o = optimizer.update(p, o, p)
        return optax.apply_updates(p, updates), o

    def step(p, o):
        g, _ = grad_fn(p, batch, policy, config.ppo)
        updates, o = optimizer.update(g, o, p)
        return optax.apply_updates(p, updates), o

    for name, body in (("forward", forward), ("gradient", gradient), ("adam", adam)):
        print(f"{name:>16}: {time_body(body, params, opt_state):.3f} ms")
    print(f"{'gradient + adam':>16}: {time_body(step, params, opt_state):.3f} ms")

    total, count, origin = kernel_times(jax.jit(step), (params, opt_state), args.steps)
    loops = sum(t for n, t in total.items() if n.startswith("while"))
    leaves = sum(t for n, t in total.items() if not n.startswith("while"))
    calls = sum(c for n, c in count.items() if not n.startswith("while"))
    in_loops = sum(c for n, c in count.items() if "/while/body" in origin.get(n, ""))
    print(
        f"\nper gradient step (traced): loops {loops:.0f} us, all kernels {leaves:.0f} us, "
        f"{calls:.0f} kernel calls ({in_loops:.0f} inside the loops)"
    )
    print(f"{'us':>8} {'calls':>6}  kernel  <- operation")
    for name, us in total.most_common(args.top):
        where = origin.get(name, "loop").removeprefix("jit(step)/")
        print(f"{us:8.1f} {count[name]:6.0f}  {name}  <- {where[:90]}")
    print(f"\nload average: {np.round(np.array(os.getloadavg()), 2).tolist()}")


if __name__ == "__main__":
    main()
