"""RL² time-to-result: quickstudy against a straightforward PyTorch recurrent PPO, in one run.

Both sides train the same recipe on ``bandit-k10-n100`` (10 Bernoulli arms, p ~ U[0, 1]^10,
100-pull trials): the README's fast recipe for this task, ``quickstudy train rl2 --task
bandit-k10-n100 --task-critic`` --

* inputs ``[0] ⊕ one-hot previous arm ⊕ previous reward ⊕ done`` (13 numbers);
* a GRU 64 policy core and a separate GRU 64 critic core whose output, concatenated with the
  task's arm probabilities, goes through a ReLU layer of 64 to the value (the asymmetric critic);
* 128 whole trials per update (12,800 steps), PPO with 4 epochs x 4 minibatches of 32 trials,
  clip 0.2, no value clip, value weight 0.5, entropy 0.01, gradient norm 0.5, Adam lr 2e-3
  (eps 1e-5) decayed linearly over ``--total-steps``, GAE γ 0.99, λ 0.7, advantages
  standardised per minibatch.

The PyTorch side is written the way cleanrl writes its LSTM PPO: batched environments as
tensors, ``nn.GRU`` stepped one step at a time under ``torch.no_grad`` to collect, the same
``nn.GRU`` over whole sequences to learn, ``torch.distributions.Categorical``. It gets its best
thread count (1 or all cores, chosen by a short probe in this run). quickstudy runs
``make_rl2(...).update`` jitted, one call per update. Each side's clock starts before its
networks are built (compilation counts) and the figure is the wall-clock at which the mean trial
return of the last 10 updates first reaches each threshold, or ``None`` if the side's time cap
(``--max-seconds``) came first.

Usage::

    .venv/bin/pip install -e ".[bench]"            # torch (CPU)
    .venv/bin/python benchmarks/rl2_peer.py          # about 10 minutes on 2 idle cores
    .venv/bin/python benchmarks/rl2_peer.py --quick  # smoke run; figures not for quoting

Writes JSON to ``--out`` (default ``benchmarks/results/rl2_peer.json``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import jax
import numpy as np
from results_io import write_result
from rl2_throughput import machine_info

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2

ARMS, PULLS, ENVS, HIDDEN = 10, 100, 128, 64
EPOCHS, MINIBATCHES, CLIP, VF, ENT, MAX_NORM = 4, 4, 0.2, 0.5, 0.01, 0.5
LR, ADAM_EPS, GAMMA, LAMBDA = 2e-3, 1e-5, 0.99, 0.7
SMOOTH = 10


class Tracker:
    """Wall-clock at which the smoothed trial return first reaches each threshold."""

    def __init__(self, thresholds: list[float], t0: float):
        self.thresholds, self.t0 = thresholds, t0
        self.recent: deque[float] = deque(maxlen=SMOOTH)
        self.reached: dict[str, float | None] = {f"{x:g}": None for x in thresholds}
        self.curve: list[tuple[float, int, float]] = []

    def add(self, steps: int, trial_return: float) -> bool:
        """Records one update; true once every threshold is reached."""
        self.recent.append(trial_return)
        now = time.perf_counter() - self.t0
        smooth = float(np.mean(self.recent))
        self.curve.append((round(now, 3), steps, round(smooth, 3)))
        for x in self.thresholds:
            if self.reached[f"{x:g}"] is None and len(self.recent) == SMOOTH and smooth >= x:
                self.reached[f"{x:g}"] = round(now, 2)
        return all(v is not None for v in self.reached.values())


# --------------------------------------------------------------------------------------------
# quickstudy
# --------------------------------------------------------------------------------------------


def run_quickstudy(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    tracker = Tracker(args.thresholds, t0)
    config = RL2Config(total_steps=args.total_steps, task_critic=True, num_envs=ENVS)
    algo = make_rl2(config, task_registry.make("bandit-k10-n100"))
    state = jax.jit(algo.init)(jax.random.key(args.seed))
    update = jax.jit(algo.update)
    steps = updates = 0
    while time.perf_counter() - t0 < args.max_seconds and steps < args.total_steps:
        state, metrics = update(state)
        steps += algo.steps_per_update
        updates += 1
        if tracker.add(steps, float(metrics["trial_return"])):
            break
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "updates": updates,
        "steps": steps,
        "steps_per_s": steps / seconds,
        "reached": tracker.reached,
        "final_smoothed_return": tracker.curve[-1][2],
        "curve": tracker.curve,
    }


# --------------------------------------------------------------------------------------------
# PyTorch recurrent PPO
# --------------------------------------------------------------------------------------------


def run_torch(args: argparse.Namespace, threads: int, max_seconds: float) -> dict[str, Any]:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    tracker = Tracker(args.thresholds, t0)
    obs_dim = 1 + ARMS + 2

    def layer(m: nn.Linear, gain: float) -> nn.Linear:
        nn.init.orthogonal_(m.weight, gain)
        nn.init.zeros_(m.bias)
        return m

    class ActorCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.actor_core = nn.GRU(obs_dim, HIDDEN)
            self.critic_core = nn.GRU(obs_dim, HIDDEN)
            self.policy = layer(nn.Linear(HIDDEN, ARMS), 0.01)
            self.value_hidden = layer(nn.Linear(HIDDEN + ARMS, HIDDEN), math.sqrt(2))
            self.value = layer(nn.Linear(HIDDEN, 1), 1.0)

        def forward(self, obs, probs, h_a, h_c):
            """obs [T, B, D], probs [B, K], h_* [1, B, H] -> logits [T, B, K], value [T, B]."""
            y_a, h_a = self.actor_core(obs, h_a)
            y_c, h_c = self.critic_core(obs, h_c)
            task = probs.expand(obs.shape[0], -1, -1)
            hidden = torch.relu(self.value_hidden(torch.cat([y_c, task], -1)))
            return self.policy(y_a), self.value(hidden)[..., 0], h_a, h_c

    net = ActorCritic()
    opt = torch.optim.Adam(net.parameters(), lr=LR, eps=ADAM_EPS)
    total_updates = args.total_steps // (ENVS * PULLS)
    rows = torch.arange(ENVS)

    def collect():
        probs = torch.rand(ENVS, ARMS)
        obs = torch.zeros(PULLS, ENVS, obs_dim)
        actions = torch.zeros(PULLS, ENVS, dtype=torch.long)
        logps, values, rewards = (torch.zeros(PULLS, ENVS) for _ in range(3))
        h_a = h_c = torch.zeros(1, ENVS, HIDDEN)
        x = torch.zeros(ENVS, obs_dim)
        with torch.no_grad():
            for t in range(PULLS):
                obs[t] = x
                logits, value, h_a, h_c = net(x[None], probs, h_a, h_c)
                dist = torch.distributions.Categorical(logits=logits[0])
                a = dist.sample()
                r = (torch.rand(ENVS) < probs[rows, a]).float()
                actions[t], logps[t], values[t], rewards[t] = a, dist.log_prob(a), value[0], r
                x = torch.zeros(ENVS, obs_dim)
                x[rows, 1 + a] = 1.0
                x[:, -2], x[:, -1] = r, 1.0
            adv = torch.zeros(PULLS, ENVS)
            last = torch.zeros(ENVS)
            for t in reversed(range(PULLS)):
                next_value = values[t + 1] if t + 1 < PULLS else torch.zeros(ENVS)
                delta = rewards[t] + GAMMA * next_value - values[t]
                last = delta + GAMMA * LAMBDA * last
                adv[t] = last
        return probs, obs, actions, logps, values, adv, rewards.sum(0).mean().item()

    def learn(probs, obs, actions, logps, values, adv):
        returns = adv + values
        size = ENVS // MINIBATCHES
        zeros = torch.zeros(1, size, HIDDEN)
        for _ in range(EPOCHS):
            order = torch.randperm(ENVS)
            for i in range(MINIBATCHES):
                idx = order[i * size : (i + 1) * size]
                logits, value, _, _ = net(obs[:, idx], probs[idx], zeros, zeros)
                dist = torch.distributions.Categorical(logits=logits)
                ratio = torch.exp(dist.log_prob(actions[:, idx]) - logps[:, idx])
                a = adv[:, idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
                v_loss = 0.5 * ((value - returns[:, idx]) ** 2).mean()
                loss = pg + VF * v_loss - ENT * dist.entropy().mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), MAX_NORM)
                opt.step()

    steps = updates = 0
    while time.perf_counter() - t0 < max_seconds and updates < total_updates:
        for group in opt.param_groups:
            group["lr"] = LR * (1.0 - updates / total_updates)
        probs, obs, actions, logps, values, adv, trial_return = collect()
        learn(probs, obs, actions, logps, values, adv)
        steps += ENVS * PULLS
        updates += 1
        if tracker.add(steps, trial_return):
            break
    seconds = time.perf_counter() - t0
    return {
        "threads": threads,
        "seconds": seconds,
        "updates": updates,
        "steps": steps,
        "steps_per_s": steps / seconds,
        "reached": tracker.reached,
        "final_smoothed_return": tracker.curve[-1][2] if tracker.curve else None,
        "curve": tracker.curve,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short caps; not for quoting")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time cap per side")
    parser.add_argument("--total-steps", type=int, default=16_000_000, help="LR decay length")
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=[60.0, 65.0, 70.0, 75.0, 78.0]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_seconds = 20.0
    import torch

    load_before = os.getloadavg()
    probes = {n: run_torch(args, n, 8.0)["steps_per_s"] for n in sorted({1, os.cpu_count() or 1})}
    threads = max(probes, key=probes.get)
    print(f"torch probe, env steps/s by threads: {probes} -> {threads} thread(s)", flush=True)
    ours = run_quickstudy(args)
    print(f"quickstudy: {ours['steps_per_s']:,.0f} steps/s, reached {ours['reached']}", flush=True)
    theirs = run_torch(args, threads, args.max_seconds)
    print(f"torch:      {theirs['steps_per_s']:,.0f} steps/s, reached {theirs['reached']}")
    print(f"\n{'trial return ≥':>15s} {'quickstudy s':>13s} {'torch s':>9s}")
    for key in ours["reached"]:
        q, t = ours["reached"][key], theirs["reached"][key]
        fmt = lambda x: f"{x:.1f}" if x is not None else f">{args.max_seconds:g}"  # noqa: E731
        print(f"{key:>15s} {fmt(q):>13s} {fmt(t):>9s}")
    record = {
        "benchmark": "rl2_peer",
        "quick": args.quick,
        "machine": {**machine_info(), "torch": torch.__version__},
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {
            "task": "bandit-k10-n100",
            "max_seconds": args.max_seconds,
            "total_steps": args.total_steps,
            "smoothing_updates": SMOOTH,
            "seed": args.seed,
        },
        "torch_thread_probe_steps_per_s": probes,
        "quickstudy": ours,
        "torch": theirs,
    }
    write_result(record, "rl2_peer", args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
