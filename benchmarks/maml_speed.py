"""MAML speed: time per meta-iteration, quickstudy (JAX) vs straightforward PyTorch (torch.func).

Rows, each one meta-iteration with the same sizes in both implementations:

* **sinusoid, 1 and 5 inner steps**: meta-batch 25 tasks, K = 10 support + 10 query points, MLP
  1-40-40-1 ReLU, α = 0.01, second-order meta-gradient, one Adam step (lr 1e-3). Both sample the
  tasks and points inside the timed step. PyTorch: ``torch.func.grad`` for the inner steps (second
  order: the inner gradient is differentiated), ``torch.func.vmap`` over tasks, ``.backward()``
  and ``torch.optim.Adam``.
* **MAML-RL nav2d**: meta-batch 20 goals, 20 episodes x 100 steps per goal before and after one
  inner step (α = 0.5), Gaussian MLP 2-100-100-2 ReLU, linear feature baseline, one TRPO step
  (10 conjugate-gradient iterations, KL ≤ 0.01, backtracking). PyTorch
  (:func:`torch_nav2d_batched`): the same work batched over the tasks, the same Gauss-Newton
  Fisher product as quickstudy, the line search recomputing the adaptation.

PyTorch gets its best settings: each row is timed eager and with ``torch.compile``, each with 1
thread and with all cores; the fastest counts. Usage::

    .venv/bin/pip install -e ".[bench]"           # torch (CPU) for the comparison
    .venv/bin/python benchmarks/maml_speed.py      # a few minutes on 2 idle cores
    .venv/bin/python benchmarks/maml_speed.py --quick

Writes JSON to ``benchmarks/results/maml_speed.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from quickstudy import tasks as task_registry
from quickstudy.algorithms.maml import MAMLConfig, make_maml
from quickstudy.algorithms.maml_rl import MAMLRLConfig, make_maml_rl


def _timed(fn, repeats: int) -> dict[str, float]:
    """Seconds per call over ``repeats`` calls after one warm-up call: min, median, all."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {
        "seconds_per_iteration": min(times),
        "median_seconds": float(np.median(times)),
        "times": times,
    }


# --------------------------------------------------------------------------------------------
# quickstudy
# --------------------------------------------------------------------------------------------


def quickstudy_update(algo, repeats: int) -> dict[str, float]:
    """Times ``jax.jit(algo.update)``; the first call (compilation) is reported separately."""
    update = jax.jit(algo.update)
    state = algo.init(jax.random.key(0))
    t0 = time.perf_counter()
    state, _ = update(state)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    box = [state]

    def step():
        box[0], _ = update(box[0])
        jax.block_until_ready(box[0])

    return {**_timed(step, repeats), "compile_seconds": compile_s}


def quickstudy_sinusoid(inner_steps: int, repeats: int) -> dict[str, float]:
    config = MAMLConfig(inner_steps=inner_steps)
    return quickstudy_update(make_maml(config, task_registry.make("sinusoid-k10")), repeats)


def quickstudy_nav2d(repeats: int) -> dict[str, float]:
    config = MAMLRLConfig(meta_batch_size=20)
    return quickstudy_update(make_maml_rl(config, task_registry.make("nav2d")), repeats)


# --------------------------------------------------------------------------------------------
# PyTorch with torch.func
# --------------------------------------------------------------------------------------------


def torch_sinusoid(inner_steps: int, repeats: int, compiled: bool = False) -> dict[str, float]:
    import torch
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(1, 40),
        torch.nn.ReLU(),
        torch.nn.Linear(40, 40),
        torch.nn.ReLU(),
        torch.nn.Linear(40, 1),
    )
    params = dict(net.named_parameters())
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    alpha, tasks, k = 0.01, 25, 10

    def loss(p, x, y):
        return torch.mean((functional_call(net, p, (x,)) - y) ** 2)

    def task_loss(p, xs, ys, xq, yq):
        for _ in range(inner_steps):
            g = grad(loss)(p, xs, ys)
            p = {n: p[n] - alpha * g[n] for n in p}
        return loss(p, xq, yq)

    batched = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))
    if compiled:
        batched = torch.compile(batched)

    def step():
        amp = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
        phase = torch.empty(tasks, 1, 1).uniform_(0.0, math.pi)
        x = torch.empty(tasks, 2 * k, 1).uniform_(-5.0, 5.0)
        y = amp * torch.sin(x - phase)
        losses = batched(params, x[:, :k], y[:, :k], x[:, k:], y[:, k:])
        opt.zero_grad()
        losses.mean().backward()
        opt.step()

    return _timed(step, repeats)


def _torch_trpo_step(fvp, g, max_kl: float, iters: int = 10):
    """TRPO's full step: ``F^-1 g`` by ``iters`` conjugate-gradient steps, scaled to ``max_kl``."""
    import torch

    x, r = torch.zeros_like(g), g.clone()
    p, rr = r.clone(), r @ r
    for _ in range(iters):
        ap = fvp(p)
        a = rr / (p @ ap)
        x, r = x + a * p, r - a * ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    return torch.sqrt(2 * max_kl / (x @ fvp(x) + 1e-8)) * x


def torch_nav2d_batched(repeats: int, compiled: bool = False) -> dict[str, Any]:
    """The nav2d meta-iteration batched over tasks, with quickstudy's Gauss-Newton Fisher.

    The same work as :func:`quickstudy_nav2d`: every tensor carries a leading task axis (the
    adapted parameters too, so sampling, baselines and losses run once for all 20 tasks), the
    inner step is ``torch.func.vmap(torch.func.grad(...))`` (second order: outer autograd
    differentiates it), and the Fisher-vector product is ``J^T M J v``: one ``torch.func.vjp``
    of the post-adaptation distribution parameters kept for the step and one
    ``torch.func.jvp`` per product, ``M = diag(1/σ², 2)`` weighted by each sample's share.
    With ``compiled``, the per-step policy, the objective and the products go through
    ``torch.compile``.
    """
    import torch
    from torch.func import grad, jvp, vjp, vmap

    torch.manual_seed(0)
    tasks, eps, horizon, alpha, max_kl, gamma = 20, 20, 100, 0.5, 0.01, 0.99
    sizes = [(2, 100), (100, 100), (100, 2)]
    params = {}
    for i, (n_in, n_out) in enumerate(sizes):
        w = torch.empty(n_out, n_in)
        torch.nn.init.xavier_uniform_(w)
        params[f"w{i}"], params[f"b{i}"] = w, torch.zeros(n_out)
    params["log_std"] = torch.zeros(2)
    names = list(params)
    shapes = [params[n].shape for n in names]
    numels = [params[n].numel() for n in names]

    def unflat(theta):
        return {n: t.reshape(s) for n, t, s in zip(names, theta.split(numels), shapes, strict=True)}

    def mean_fn(p, x):
        """x [..., N, 2] with p unbatched or with a leading task axis -> mean [..., N, 2]."""
        for i in range(3):
            x = x @ p[f"w{i}"].transpose(-1, -2) + p[f"b{i}"].unsqueeze(-2)
            x = torch.relu(x) if i < 2 else x
        return x

    def logp(p, obs, act):
        mean = mean_fn(p, obs)
        log_std = p["log_std"].unsqueeze(-2)
        z = (act - mean) * torch.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def policy_step(p, pos, noise):
        return mean_fn(p, pos) + torch.exp(p["log_std"]).unsqueeze(-2) * noise

    step_fn = torch.compile(policy_step) if compiled else policy_step

    @torch.no_grad()
    def sample(p, goals):
        """p with a task axis or none; obs/act [B, E*T, 2] flattened per task, rews/valid."""
        pos = torch.zeros(tasks, eps, 2)
        alive = torch.ones(tasks, eps, dtype=torch.bool)
        obs, acts, rews, valid = [], [], [], []
        for _ in range(horizon):
            a = step_fn(p, pos, torch.randn(tasks, eps, 2))
            obs.append(pos)
            acts.append(a)
            valid.append(alive)
            pos = pos + a.clamp(-1.0, 1.0) * 0.1
            d = pos - goals[:, None, :]
            rews.append(torch.where(alive, -d.norm(dim=-1), torch.zeros(())))
            alive = alive & ~(d.abs() < 0.01).all(-1)
        stack = lambda xs: torch.stack(xs, 2)  # noqa: E731
        return stack(obs), stack(acts), stack(rews), stack(valid).float()

    def advantages(obs, rews, valid):
        ret = torch.zeros_like(rews)
        run = torch.zeros(rews.shape[:-1])
        for t in reversed(range(horizon)):
            run = rews[..., t] + gamma * run
            ret[..., t] = run
        o = obs.clamp(-10, 10)
        tt = (torch.arange(horizon, dtype=torch.float32) / 100).expand(*obs.shape[:-1])[..., None]
        f = torch.cat([o, o**2, tt, tt**2, tt**3, torch.ones_like(tt)], -1).reshape(tasks, -1, 8)
        y, m = ret.reshape(tasks, -1), valid.reshape(tasks, -1)
        count = m.sum(1)
        fm = f * m[..., None]
        a = fm.transpose(1, 2) @ f / count[:, None, None] + 1e-5 * torch.eye(8)
        w = torch.linalg.solve(a, (fm.transpose(1, 2) @ y[..., None])[..., 0] / count[:, None])
        adv = y - (f @ w[..., None])[..., 0]
        mu = (adv * m).sum(1, keepdim=True) / count[:, None]
        sd = (((adv - mu) ** 2 * m).sum(1, keepdim=True) / count[:, None]).sqrt()
        return (adv - mu) / (sd + 1e-8) * m

    def flat_batch(data):
        obs, act, _, valid = data
        return obs.reshape(tasks, -1, 2), act.reshape(tasks, -1, 2), valid.reshape(tasks, -1)

    def inner_loss(p, obs, act, adv, valid):
        return -(logp(p, obs, act) * adv * valid).sum() / valid.sum()

    def adapt(p, obs, act, adv, valid):
        g = grad(inner_loss)(p, obs, act, adv, valid)
        return {n: p[n] - alpha * g[n] for n in names}

    adapt_all = vmap(adapt, in_dims=(None, 0, 0, 0, 0))

    def step():
        goals = torch.empty(tasks, 2).uniform_(-0.5, 0.5)
        pre = sample(params, goals)
        pre_obs, pre_act, pre_valid = flat_batch(pre)
        pre_adv = advantages(pre[0], pre[2], pre[3])
        with torch.no_grad():
            adapted = adapt_all(params, pre_obs, pre_act, pre_adv, pre_valid)
        post = sample(adapted, goals)
        obs, act, valid = flat_batch(post)
        adv_post = advantages(post[0], post[2], post[3])
        count = valid.sum(1)
        weight = (valid / count[:, None] / tasks)[..., None]
        with torch.no_grad():
            old_mean, old_log_std = mean_fn(adapted, obs), adapted["log_std"]
            old_lp = logp(adapted, obs, act)

        def dists(theta):
            q = adapt_all(unflat(theta), pre_obs, pre_act, pre_adv, pre_valid)
            return mean_fn(q, obs), q["log_std"]

        def objective(theta):
            q = adapt_all(unflat(theta), pre_obs, pre_act, pre_adv, pre_valid)
            mean, log_std = mean_fn(q, obs), q["log_std"].unsqueeze(-2)
            lp = logp(q, obs, act)
            loss = -((torch.exp(lp - old_lp) * adv_post * valid).sum(1) / count).mean()
            s0 = old_log_std.unsqueeze(-2)
            k = (
                log_std
                - s0
                + (torch.exp(2 * s0) + (old_mean - mean) ** 2) / (2 * torch.exp(2 * log_std))
            )
            kl = (((k - 0.5).sum(-1) * valid).sum(1) / count).mean()
            return loss, kl

        theta = torch.cat([params[n].reshape(-1) for n in names]).requires_grad_(True)
        loss, _ = objective(theta)
        (g,) = torch.autograd.grad(loss, theta)
        _, vjp_fn = vjp(dists, theta.detach())
        inv_var = torch.exp(-2.0 * old_log_std).unsqueeze(-2)
        weight_std = weight.sum((1, 2))[:, None] * 2.0

        def fvp(v):
            d_mean, d_log_std = jvp(dists, (theta.detach(),), (v,))[1]
            (out,) = vjp_fn((d_mean * inv_var * weight, d_log_std * weight_std))
            return out + 1e-5 * v

        fvp_fn = torch.compile(fvp) if compiled else fvp
        step_full = _torch_trpo_step(fvp_fn, g, max_kl)
        base = theta.detach()
        with torch.no_grad():
            for k in range(15):
                cand = base - 0.8**k * step_full
                new_loss, new_kl = objective(cand)
                if new_loss.item() < loss.item() and new_kl.item() <= max_kl:
                    break
        params.update(unflat(cand))

    return _timed(step, repeats)


def torch_best(fn, *args, **kwargs) -> dict[str, Any]:
    """Times ``fn`` with 1 thread and with all cores; the faster counts. Errors are recorded."""
    import torch

    out: dict[str, Any] = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        try:
            out[f"threads_{threads}"] = fn(*args, **kwargs)
        except Exception as exc:  # torch.compile may not handle a transform; say so
            return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    best = min(out, key=lambda k: out[k]["seconds_per_iteration"])
    return {**out[best], "best": best, "by_threads": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats; not for quoting")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    reps_sin, reps_rl = (5, 1) if args.quick else (200, 5)
    load_before = os.getloadavg()
    rows = []
    for steps in (1, 5):
        rows.append(
            {
                "row": f"sinusoid MAML, {steps} inner step(s)",
                "quickstudy": quickstudy_sinusoid(steps, reps_sin),
                "torch": torch_best(torch_sinusoid, steps, reps_sin),
                "torch.compile": torch_best(torch_sinusoid, steps, reps_sin, compiled=True),
            }
        )
    nav = {
        "row": "MAML-RL nav2d (TRPO)",
        "quickstudy": quickstudy_nav2d(reps_rl),
        "torch": torch_best(torch_nav2d_batched, reps_rl),
        "torch.compile": torch_best(torch_nav2d_batched, reps_rl, compiled=True),
    }
    rows.append(nav)
    header = f"{'meta-iteration, ms (min / median)':36s} {'quickstudy':>16s} {'best torch':>16s}"
    print(header, "ratio")
    for row in rows:
        q = row["quickstudy"]
        peers = {
            k: v for k, v in row.items() if k not in ("row", "quickstudy") and "error" not in v
        }
        name = min(peers, key=lambda k: peers[k]["seconds_per_iteration"])
        t = peers[name]
        row["best_peer"] = name
        row["speedup_min"] = t["seconds_per_iteration"] / q["seconds_per_iteration"]
        row["speedup_median"] = t["median_seconds"] / q["median_seconds"]
        cell = lambda r: f"{r['seconds_per_iteration'] * 1e3:.2f} / {r['median_seconds'] * 1e3:.2f}"  # noqa: E731
        print(f"{row['row']:36s} {cell(q):>16s} {cell(t):>16s} {row['speedup_min']:.1f}x ({name})")
        for k, v in row.items():
            if isinstance(v, dict) and "error" in v:
                print(f"  {k} failed: {v['error']}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "quick": args.quick,
        "rows": rows,
    }
    name = "maml_speed_quick.json" if args.quick else "maml_speed.json"
    out = Path(args.out or Path(__file__).parent / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
