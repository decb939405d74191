"""PEARL speed: one gradient step (encoder + SAC), quickstudy (JAX) vs straightforward PyTorch.

The step, the same work in both: a meta-batch of M tasks, each with a context batch of Nc
transitions (s, a, r) and an RL batch of B transitions, on half-cheetah sizes (obs 20, action 6,
latent 5). The per-transition encoder MLP gives Gaussian factors, multiplied into q(z|c); z is
sampled by reparameterisation; twin Q-networks regress on (s, z, a) towards the soft target of the
target networks and the actor at s'; the encoder learns from the critic loss plus kl_weight times
the KL summed over tasks; the actor takes its step on (s, z) with z held fixed; Adam everywhere;
Polyak update of the targets. Rows:

* **paper sizes**: M = 16, B = 256, Nc = 100, actor and critics [300, 300, 300], encoder
  [200, 200, 200] (Rakelly et al. 2019, the authors' configs);
* **CPU default**: the library's default PEARL config: M = 16, B = 64, Nc = 64, [128, 128, 128]
  networks and encoder.

Both sides get the same pre-drawn batches (sampling is not timed). PyTorch gets its best
settings: eager and ``torch.compile``, each with 1 thread and with all cores; the fastest counts.
Every row is repeated; min and median are reported with the load average. Usage::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/pearl_speed.py            # a few minutes on 2 idle cores
    .venv/bin/python benchmarks/pearl_speed.py --quick

Writes JSON to ``benchmarks/results/pearl_speed.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results_io import write_result  # noqa: E402

from quickstudy.algorithms.pearl_update import PEARLUpdateConfig, make_pearl_update  # noqa: E402
from quickstudy.learners.sac import SACConfig, Transitions, make_sac  # noqa: E402

OBS, ACT, LATENT = 20, 6, 5
ROWS = {
    "paper sizes": dict(m=16, b=256, nc=100, hidden=(300, 300, 300), enc=(200, 200, 200)),
    "CPU default": dict(m=16, b=64, nc=64, hidden=(128, 128, 128), enc=(128, 128, 128)),
}


def _timed(fn, repeats: int, inner: int) -> dict[str, Any]:
    """Seconds per step over ``repeats`` runs of ``inner`` steps, after a warm-up run."""
    fn(inner)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(inner)
        times.append((time.perf_counter() - t0) / inner)
    return {
        "seconds_per_step": min(times),
        "median_seconds": float(np.median(times)),
        "times": times,
    }


def _batches(row: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    m, b, nc = row["m"], row["b"], row["nc"]

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return {
        "c_obs": f(m, nc, OBS),
        "c_act": np.tanh(f(m, nc, ACT)),
        "c_rew": f(m, nc),
        "obs": f(m, b, OBS),
        "act": np.tanh(f(m, b, ACT)),
        "rew": f(m, b),
        "next_obs": f(m, b, OBS),
        "done": (rng.random((m, b)) < 0.01).astype(np.float32),
    }


def quickstudy_step(row: dict, repeats: int, inner: int) -> dict[str, Any]:
    """Jitted PEARL updates (``inner`` of them per timed call, dispatched back to back)."""
    sac = make_sac(
        SACConfig(hidden_sizes=row["hidden"], reward_scale=5.0, alpha=1.0, auto_alpha=False),
        OBS + LATENT,
        ACT,
    )
    config = PEARLUpdateConfig(latent_dim=LATENT, encoder_hidden=row["enc"])
    init, update, _ = make_pearl_update(config, sac, OBS + ACT + 1)
    data = {k: jnp.asarray(v) for k, v in _batches(row).items()}
    context = Transitions(data["c_obs"], data["c_act"], data["c_rew"], data["c_obs"],
                          jnp.zeros_like(data["c_rew"]))  # fmt: skip
    rl = Transitions(data["obs"], data["act"], data["rew"], data["next_obs"], data["done"])
    step = jax.jit(update)
    state = {"params": init(jax.random.key(0)), "key": jax.random.key(1)}
    t0 = time.perf_counter()
    jax.block_until_ready(step(state["params"], context, rl, state["key"]))
    compile_s = time.perf_counter() - t0

    def run(n):
        params = state["params"]
        for k in jax.random.split(state["key"], n):
            params, metrics = step(params, context, rl, k)
        jax.block_until_ready(metrics)
        state["params"] = params

    return {**_timed(run, repeats, inner), "compile_seconds": compile_s}


def torch_step(row: dict, repeats: int, inner: int, compiled: bool = False) -> dict[str, Any]:
    """The same step in PyTorch: nn.Sequential MLPs, one Adam per network group."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(0)

    def mlp(inp, hidden, out):
        layers, last = [], inp
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        return nn.Sequential(*layers, nn.Linear(last, out))

    hidden, m, b = row["hidden"], row["m"], row["b"]
    encoder = mlp(OBS + ACT + 1, row["enc"], 2 * LATENT)
    actor = mlp(OBS + LATENT, hidden, 2 * ACT)
    q1, q2 = (mlp(OBS + LATENT + ACT, hidden, 1) for _ in range(2))
    t1, t2 = copy.deepcopy(q1), copy.deepcopy(q2)
    opt_q = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=3e-4)
    opt_pi = torch.optim.Adam(actor.parameters(), lr=3e-4)
    opt_enc = torch.optim.Adam(encoder.parameters(), lr=3e-4)
    data = {k: torch.from_numpy(v) for k, v in _batches(row).items()}
    context = torch.cat([data["c_obs"], data["c_act"], data["c_rew"][..., None]], -1)
    obs, act = data["obs"].reshape(m * b, -1), data["act"].reshape(m * b, -1)
    rew, done = data["rew"].reshape(-1), data["done"].reshape(-1)
    next_obs = data["next_obs"].reshape(m * b, -1)

    def sample(inp):
        mean, log_std = actor(inp).chunk(2, -1)
        log_std = log_std.clamp(-20, 2)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        return a, logp - (2 * (np.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)

    def losses():
        out = encoder(context)
        mu, var = out[..., :LATENT], nn.functional.softplus(out[..., LATENT:]).clamp_min(1e-7)
        prec = 1.0 / var
        post_var = 1.0 / prec.sum(1)
        post_mu = post_var * (prec * mu).sum(1)
        z = post_mu + post_var.sqrt() * torch.randn_like(post_mu)
        kl = 0.5 * (post_var + post_mu**2 - 1.0 - post_var.log()).sum()
        z_rep = z.repeat_interleave(b, 0)
        obs_z, next_z = torch.cat([obs, z_rep], -1), torch.cat([next_obs, z_rep.detach()], -1)
        with torch.no_grad():
            a2, logp2 = sample(next_z)
            tq = torch.min(t1(torch.cat([next_z, a2], -1)), t2(torch.cat([next_z, a2], -1)))
            y = 5.0 * rew + 0.99 * (1 - done) * (tq[:, 0] - logp2)
        inp = torch.cat([obs_z, act], -1)
        q_loss = ((q1(inp)[:, 0] - y) ** 2).mean() + ((q2(inp)[:, 0] - y) ** 2).mean()
        return q_loss + 0.1 * kl, obs_z.detach()

    def actor_loss(obs_z):
        a, logp = sample(obs_z)
        inp = torch.cat([obs_z, a], -1)
        return (logp - torch.min(q1(inp), q2(inp))[:, 0]).mean()

    if compiled:
        losses, actor_loss = torch.compile(losses), torch.compile(actor_loss)

    def one():
        opt_q.zero_grad(set_to_none=True)
        opt_enc.zero_grad(set_to_none=True)
        loss, obs_z = losses()
        loss.backward()
        opt_q.step()
        opt_enc.step()
        opt_pi.zero_grad(set_to_none=True)
        pi_loss = actor_loss(obs_z)
        pi_loss.backward()
        opt_pi.step()  # the critics' gradients from this pass are cleared before their next use
        with torch.no_grad():
            for t, q in ((t1, q1), (t2, q2)):
                for pt, p in zip(t.parameters(), q.parameters(), strict=True):
                    pt.mul_(0.995).add_(p, alpha=0.005)

    def run(n):
        for _ in range(n):
            one()

    return _timed(run, repeats, inner)


def torch_best(row: dict, repeats: int, inner: int) -> dict[str, Any]:
    """Eager and compiled, 1 thread and all cores: every timing, and the fastest."""
    import torch

    out: dict[str, Any] = {}
    for compiled in (False, True):
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            name = f"{'compile' if compiled else 'eager'}_threads_{threads}"
            try:
                out[name] = torch_step(row, repeats, inner, compiled)
            except Exception as exc:  # torch.compile may fail on a machine; say so
                out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    ok = {k: v for k, v in out.items() if "error" not in v}
    best = min(ok, key=lambda k: ok[k]["seconds_per_step"])
    return {**ok[best], "best": best, "variants": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats; not for quoting")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    repeats, inner = (2, 3) if args.quick else (7, 10)
    load_before = os.getloadavg()
    rows = []
    title = "one PEARL gradient step, ms (min / median)"
    print(f"{title:44s} {'quickstudy':>16s} {'best torch':>16s}")
    for name, row in ROWS.items():
        q, t = quickstudy_step(row, repeats, inner), torch_best(row, repeats, inner)
        record = {"row": name, "sizes": row, "quickstudy": q, "torch": t}
        record["speedup_min"] = t["seconds_per_step"] / q["seconds_per_step"]
        record["speedup_median"] = t["median_seconds"] / q["median_seconds"]
        rows.append(record)
        cell = lambda r: f"{r['seconds_per_step'] * 1e3:.1f} / {r['median_seconds'] * 1e3:.1f}"  # noqa: E731
        print(
            f"{name:44s} {cell(q):>16s} {cell(t):>16s} {record['speedup_min']:.2f}x ({t['best']})"
        )
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "torch": torch.__version__,
        },
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "repeats": repeats,
        "steps_per_repeat": inner,
        "rows": rows,
    }
    write_result(result, "pearl_speed", args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
