"""Can the policy's and the critic's gradient steps run side by side on two CPU devices?

    XLA_FLAGS="--xla_force_host_platform_device_count=2" python experiments/actor_critic_devices.py

RL² with a separate critic trains two recurrent cores whose PPO gradients share nothing but the
global-norm clip: the policy loss reads advantages fixed at collection, the value loss only the
critic. One XLA program runs them one after the other on one thread, and the step is bound by
the number of small kernels, not by arithmetic (docs/results/performance.md). This probe times
16 gradient-plus-SGD steps of each of two GRU cores ([T, B] = [10, 32] by default) three ways:

- ``one program``: both cores' steps in one jitted ``lax.scan`` on device 0 (today's layout);
- ``two programs, one device``: a jitted scan per core, both on device 0;
- ``two programs, two devices``: the same two programs, one per CPU device, dispatched
  asynchronously and then both awaited;
- ``one program, two devices``: one jitted ``shard_map`` over both devices whose body picks
  the core by ``lax.axis_index`` (a ``lax.switch``), with a ``psum`` of the squared gradient
  norms at every step (the global-norm clip) and one exchange of the parameters at the end;
- ``the same, each core's own norm``: without the ``psum`` (each core clipped by its own norm,
  ``--clip-per-network``), to price the per-step exchange.

If the last is well under the first, splitting the update by network is worth building.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.networks.recurrent import GRU


def make_step(hidden: int):
    """A jitted function: 16 SGD steps of a GRU core's loss, in one ``lax.scan``."""
    core = GRU(hidden)

    def loss(params, x, start):
        h0 = jnp.zeros((x.shape[1], hidden))
        _, y = core.apply(params, h0, x, start)
        return jnp.mean(jnp.square(y - 0.1))

    def steps(params, x, start):
        def body(p, _):
            g = jax.grad(loss)(p, x, start)
            return jax.tree.map(lambda a, b: a - 1e-3 * b, p, g), None

        return jax.lax.scan(body, params, None, length=16)[0]

    return core, steps


def make_split_step(core_a, core_c, hidden_a, hidden_c, mesh, sync=True):
    """Both cores' 16 steps in one SPMD program: device 0 steps the first, device 1 the second."""
    from jax.sharding import PartitionSpec as P

    def loss(core, hidden, params, x, start):
        _, y = core.apply(params, jnp.zeros((x.shape[1], hidden)), x, start)
        return jnp.mean(jnp.square(y - 0.1))

    def body(pa, pc, x, start):
        me = jax.lax.axis_index("d")

        def step(carry, _):
            pa, pc = carry
            ga, gc = jax.lax.switch(
                me,
                [
                    lambda: (
                        jax.grad(lambda p: loss(core_a, hidden_a, p, x, start))(pa),
                        jax.tree.map(jnp.zeros_like, pc),
                    ),
                    lambda: (
                        jax.tree.map(jnp.zeros_like, pa),
                        jax.grad(lambda p: loss(core_c, hidden_c, p, x, start))(pc),
                    ),
                ],
            )
            sq = sum(jnp.sum(g * g) for g in jax.tree.leaves((ga, gc)))
            norm = jnp.sqrt(jax.lax.psum(sq, "d") if sync else sq)
            scale = jnp.minimum(1.0, 0.5 / norm)
            pa = jax.tree.map(lambda a, b: a - 1e-3 * scale * b, pa, ga)
            pc = jax.tree.map(lambda a, b: a - 1e-3 * scale * b, pc, gc)
            return (pa, pc), None

        (pa, pc), _ = jax.lax.scan(step, (pa, pc), None, length=16)
        mine_a = jax.tree.map(lambda a: jnp.where(me == 0, a, 0.0), pa)
        mine_c = jax.tree.map(lambda c: jnp.where(me == 1, c, 0.0), pc)
        return jax.lax.psum((mine_a, mine_c), "d")

    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=P(), out_specs=P(), check_vma=False))


def timed(fn, repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actor", type=int, default=64)
    parser.add_argument("--critic", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="T")
    parser.add_argument("--batch", type=int, default=32, help="B")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    devices = jax.devices()
    if len(devices) < 2:
        raise SystemExit("run with XLA_FLAGS=--xla_force_host_platform_device_count=2")
    d0, d1 = devices[:2]
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (args.steps, args.batch, 16))
    start = jnp.zeros((args.steps, args.batch), bool).at[0].set(True)
    core_a, steps_a = make_step(args.actor)
    core_c, steps_c = make_step(args.critic)
    h_a, h_c = jnp.zeros((args.batch, args.actor)), jnp.zeros((args.batch, args.critic))
    pa = core_a.init(key, h_a, x, start)
    pc = core_c.init(key, h_c, x, start)

    both = jax.jit(lambda pa, pc, x, s: (steps_a(pa, x, s), steps_c(pc, x, s)))
    ja, jc = jax.jit(steps_a), jax.jit(steps_c)
    on = {d: jax.device_put((pa, pc, x, start), d) for d in (d0, d1)}

    def one_program():
        jax.block_until_ready(both(*on[d0]))

    def two_one_device():
        pa0, pc0, x0, s0 = on[d0]
        jax.block_until_ready((ja(pa0, x0, s0), jc(pc0, x0, s0)))

    def two_devices():
        pa0, _, x0, s0 = on[d0]
        _, pc1, x1, s1 = on[d1]
        jax.block_until_ready((ja(pa0, x0, s0), jc(pc1, x1, s1)))

    mesh = jax.sharding.Mesh(np.array(devices[:2]), ("d",))
    split = make_split_step(core_a, core_c, args.actor, args.critic, mesh)
    split_nosync = make_split_step(core_a, core_c, args.actor, args.critic, mesh, sync=False)

    def one_program_two_devices_nosync():
        jax.block_until_ready(split_nosync(pa, pc, x, start))

    def clipped_reference(pa, pc, x, s):
        """The split program's arithmetic on one device: both gradients, one global norm."""
        la = lambda p: jnp.mean(jnp.square(core_a.apply(p, h_a, x, s)[1] - 0.1))  # noqa: E731
        lc = lambda p: jnp.mean(jnp.square(core_c.apply(p, h_c, x, s)[1] - 0.1))  # noqa: E731

        def step(carry, _):
            pa, pc = carry
            ga, gc = jax.grad(la)(pa), jax.grad(lc)(pc)
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves((ga, gc))))
            scale = jnp.minimum(1.0, 0.5 / norm)
            pa = jax.tree.map(lambda a, b: a - 1e-3 * scale * b, pa, ga)
            pc = jax.tree.map(lambda a, b: a - 1e-3 * scale * b, pc, gc)
            return (pa, pc), None

        return jax.lax.scan(step, (pa, pc), None, length=16)[0]

    want = jax.jit(clipped_reference)(*on[d0])
    got = split(pa, pc, x, start)
    err = max(
        float(jnp.max(jnp.abs(a - jax.device_get(b))))
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True)
    )
    print(f"split program vs the same steps on one device: max abs difference {err:.2e}")

    def one_program_two_devices():
        jax.block_until_ready(split(pa, pc, x, start))

    rows = {}
    for name, fn in [
        ("one program", one_program),
        ("two programs, one device", two_one_device),
        ("two programs, two devices", two_devices),
        ("one program, two devices", one_program_two_devices),
        ("the same, each core's own norm", one_program_two_devices_nosync),
    ]:
        ms = timed(fn, args.repeats)
        rows[name] = {"min_ms": min(ms), "median_ms": statistics.median(ms)}
        print(f"{name:28s} min {min(ms):8.2f} ms   median {statistics.median(ms):8.2f} ms")
    base = rows["one program"]["min_ms"]
    for name in list(rows)[2:]:
        print(f"{name} / one program: {rows[name]['min_ms'] / base:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "load": os.getloadavg(),
                    "rows": rows,
                    "max_abs_difference": err,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
