"""RL² throughput: quickstudy's compiled training/rollout vs a plain NumPy loop of the same policy.

For each task (``bandit-k10-n100`` and ``nav2d``) this measures, in one run on one machine:

* **quickstudy train**: ``jax.jit(make_rl2(...).update)``, one meta-iteration = collect
  ``num_envs x rollout_len`` steps with ``lax.scan`` + PPO on them. Compilation is timed
  separately and excluded; env steps/s = updates * num_envs * rollout_len / seconds.
* **quickstudy rollout**: ``jax.jit`` of :func:`quickstudy.rollout.scan.unroll` alone with the
  same policy, so the split between collection and learning is visible.
* **Plain baselines** (collection only; they have no learner): a per-step Python loop over a
  batch of ``num_envs`` NumPy environments (written here: the Bernoulli-bandit trial and the nav2d
  trial, with the same ``obs ⊕ prev action ⊕ prev reward ⊕ done`` input as
  :class:`quickstudy.tasks.Trial`), driving the *same GRU policy with the same parameters* (taken
  from the quickstudy init), with the network run as

  - ``numpy``: a NumPy implementation of the fused GRU + heads (checked against ``network.apply``
    with ``assert allclose`` before anything is timed) -- the reference, ratio 1.0;
  - ``jax eager``: ``network.apply`` called un-jitted at every step;
  - ``jax jit step``: ``jax.jit(network.apply)`` called at every step (the usual "jit the policy,
    loop in Python" pattern; an extra row for context).

  The NumPy environments are vectorised over the batch (one array op per step for all
  environments), which favours the baseline over a per-environment Python loop. Action sampling,
  log-probabilities and storing the trajectory (obs, action, log-prob, value, reward, done) are
  done in NumPy in every baseline, as a learner would need them. The NumPy environments are also
  checked step-by-step against the JAX ``Trial`` before timing.

Usage::

    .venv/bin/python benchmarks/rl2_throughput.py            # full run (a few minutes)
    .venv/bin/python benchmarks/rl2_throughput.py --quick    # smoke run (< 1 min)

Writes JSON (machine, settings, all figures) to ``--out``; default
``benchmarks/results/rl2_throughput.json`` (``rl2_throughput_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.envs.bandit import BanditParams
from quickstudy.envs.navigation import GoalParams
from quickstudy.rollout.scan import unroll
from quickstudy.tasks import Trial
from quickstudy.types import Algorithm

TASKS = ("bandit-k10-n100", "nav2d")
HUGE_TOTAL_STEPS = 10**9  # only sets the LR schedule length (int32-safe); no speed effect
F32 = np.float32

# --------------------------------------------------------------------------------------------
# NumPy environments: a batch of RL² trials, vectorised over the batch.
# ``step`` mirrors ``Trial.step`` (no trial-level reset); ``reset_done`` mirrors what ``unroll``
# does when a trial ends (new task, reset observation, policy memory reset via ``start``).
# --------------------------------------------------------------------------------------------


class NumpyBanditTrials:
    """``B`` Bernoulli-bandit trials of ``episodes`` pulls; p ~ U[0, 1]^k per trial."""

    discrete = True

    def __init__(self, num_envs: int, num_arms: int, episodes: int, rng: np.random.Generator):
        self.B, self.k, self.episodes, self.rng = num_envs, num_arms, episodes, rng
        self.obs_dim = 1 + num_arms + 2
        self.rows = np.arange(num_envs)

    def reset_all(self) -> np.ndarray:
        self.probs = self.rng.uniform(size=(self.B, self.k)).astype(F32)
        self.episode = np.zeros(self.B, np.int32)
        return np.zeros((self.B, self.obs_dim), F32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pulls ``action[B]``; returns (obs, reward, trial terminated)."""
        reward = (self.rng.uniform(size=self.B) < self.probs[self.rows, action]).astype(F32)
        self.episode += 1  # every pull ends an inner episode
        obs = np.zeros((self.B, self.obs_dim), F32)  # inner obs is the constant [0.0]
        obs[self.rows, 1 + action] = 1.0
        obs[:, -2] = reward
        obs[:, -1] = 1.0
        return obs, reward, self.episode >= self.episodes

    def reset_done(self, obs: np.ndarray, done: np.ndarray) -> np.ndarray:
        n = int(done.sum())
        if n:
            self.probs[done] = self.rng.uniform(size=(n, self.k)).astype(F32)
            self.episode[done] = 0
            obs[done] = 0.0
        return obs


class NumpyNavTrials:
    """``B`` nav2d trials (MAML 2-D navigation, goal ~ U[-0.5, 0.5]^2, H=100, K episodes)."""

    discrete = False

    def __init__(
        self,
        num_envs: int,
        episodes: int,
        rng: np.random.Generator,
        horizon: int = 100,
        max_action: float = 0.1,
    ):
        self.B, self.episodes, self.rng = num_envs, episodes, rng
        self.horizon, self.max_action = horizon, max_action
        self.obs_dim = 2 + 2 + 2

    def reset_all(self) -> np.ndarray:
        self.goal = self.rng.uniform(-0.5, 0.5, size=(self.B, 2)).astype(F32)
        self.pos = np.zeros((self.B, 2), F32)
        self.t = np.zeros(self.B, np.int32)
        self.episode = np.zeros(self.B, np.int32)
        return np.zeros((self.B, self.obs_dim), F32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Moves by ``action[B, 2]``; returns (obs, reward, trial terminated)."""
        a = np.clip(action, -self.max_action, self.max_action).astype(F32)
        pos = self.pos + a
        delta = pos - self.goal
        reward = -np.sqrt(np.sum(delta**2, axis=1))
        t = self.t + 1
        terminated = np.all(np.abs(delta) < 0.01, axis=1)
        truncated = (t >= self.horizon) & ~terminated
        ep_done = terminated | truncated
        self.pos = np.where(ep_done[:, None], F32(0.0), pos)
        self.t = np.where(ep_done, 0, t)
        self.episode += ep_done
        obs = np.concatenate([self.pos, a, reward[:, None], ep_done[:, None].astype(F32)], axis=1)
        return obs, reward, self.episode >= self.episodes

    def reset_done(self, obs: np.ndarray, done: np.ndarray) -> np.ndarray:
        n = int(done.sum())
        if n:
            self.goal[done] = self.rng.uniform(-0.5, 0.5, size=(n, 2)).astype(F32)
            self.pos[done] = 0.0
            self.t[done] = 0
            self.episode[done] = 0
            obs[done] = 0.0
        return obs


def make_numpy_env(name: str, num_envs: int, episodes: int, rng: np.random.Generator):
    if name == "bandit-k10-n100":
        return NumpyBanditTrials(num_envs, 10, episodes, rng)
    if name == "nav2d":
        return NumpyNavTrials(num_envs, episodes, rng)
    raise ValueError(f"no NumPy baseline for task {name!r}")


def check_numpy_env(name: str, rl2: Algorithm, steps: int = 260, batch: int = 8) -> None:
    """Steps NumPy trials and the JAX ``Trial`` with the same tasks and actions; asserts equal."""
    rng = np.random.default_rng(123)
    episodes = rl2.derived["episodes"]
    env = make_numpy_env(name, batch, episodes, rng)
    env.reset_all()
    if name == "bandit-k10-n100":
        env.probs = rng.integers(0, 2, size=env.probs.shape).astype(F32)  # deterministic rewards
        task = BanditParams(jnp.asarray(env.probs))
    else:
        task = GoalParams(jnp.asarray(env.goal))
    trial = Trial(rl2.tasks.env, episodes)
    keys = jax.random.split(jax.random.key(0), batch)
    state, ts = jax.vmap(trial.reset)(keys, task)
    np.testing.assert_array_equal(np.asarray(ts.obs), np.zeros((batch, env.obs_dim), F32))
    step = jax.jit(jax.vmap(trial.step))
    for t in range(steps):
        if env.discrete:
            action = rng.integers(0, env.k, size=batch).astype(np.int32)
        else:  # half the envs head for the goal (goal terminations), half wander (truncations)
            toward = np.clip(env.goal - env.pos, -0.1, 0.1)
            wander = rng.normal(0.0, 0.2, size=(batch, 2)).astype(F32)
            action = np.where((np.arange(batch) % 2 == 0)[:, None], toward, wander).astype(F32)
        obs, reward, done = env.step(action)
        state, ts = step(jax.random.split(jax.random.key(t + 1), batch), state, action, task)
        where = f"{name} NumPy trial vs quickstudy Trial, step {t}"
        np.testing.assert_allclose(obs, np.asarray(ts.obs), rtol=1e-5, atol=1e-6, err_msg=where)
        np.testing.assert_allclose(reward, np.asarray(ts.reward), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(done, np.asarray(ts.terminated), err_msg=where)


# --------------------------------------------------------------------------------------------
# The policy in NumPy: fused GRU (gates r, z, n) + linear policy and value heads.
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return F32(0.5) * (F32(1.0) + np.tanh(F32(0.5) * x))  # overflow-free, float32


class NumpyGRUPolicy:
    """``RecurrentActorCritic(cell="gru")`` for one time step, in NumPy float32."""

    def __init__(self, params: Any, hidden_size: int, discrete: bool):
        p = jax.tree.map(lambda x: np.asarray(x, F32), jax.device_get(params))["params"]
        core = p["core"]
        self.H, self.discrete = hidden_size, discrete
        self.w_in, self.b_in = core["input"]["kernel"], core["input"]["bias"]
        self.w_h, self.b_h = core["hidden_kernel"], core["hidden_bias"]
        self.w_pi, self.b_pi = p["policy"]["kernel"], p["policy"]["bias"]
        self.w_v, self.b_v = p["value"]["kernel"], p["value"]["bias"]
        self.log_std = None if discrete else p["log_std"]

    def __call__(
        self, h: np.ndarray, x: np.ndarray, start: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``h [B, H]``, ``x [B, D]``, ``start [B]`` -> (h', dist params [B, P], value [B])."""
        H = self.H
        h = np.where(start[:, None], F32(0.0), h)
        gi = x @ self.w_in + self.b_in
        gh = h @ self.w_h + self.b_h
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        h = (F32(1.0) - z) * n + z * h
        out = h @ self.w_pi + self.b_pi
        if not self.discrete:
            out = np.concatenate([out, np.broadcast_to(self.log_std, out.shape)], axis=-1)
        value = (h @ self.w_v + self.b_v)[:, 0]
        return h, out, value


def check_numpy_policy(
    rl2: Algorithm, params: Any, apply: Callable, obs_dim: int, batch: int, steps: int = 4
) -> None:
    """Asserts that the NumPy forward equals ``apply`` (``network.apply``) on random inputs.

    Checked with the initial parameters and with every parameter perturbed by noise (so zero
    biases or tiny head weights cannot hide a wrong gate layout), over a few steps that carry
    each implementation's own memory forward, with random memory resets.
    """
    net = rl2.parts["network"]
    leaves, treedef = jax.tree.flatten(params)
    noise_keys = jax.random.split(jax.random.key(7), len(leaves))
    pairs = zip(leaves, noise_keys, strict=True)
    noisy = jax.tree.unflatten(
        treedef, [x + 0.3 * jax.random.normal(k, x.shape, x.dtype) for x, k in pairs]
    )
    rng = np.random.default_rng(0)
    for label, p in (("init params", params), ("perturbed params", noisy)):
        ref = NumpyGRUPolicy(p, net.hidden_size, net.discrete)
        h = rng.uniform(-1, 1, size=(batch, net.hidden_size)).astype(F32)
        h_j = jnp.asarray(h)
        for t in range(steps):
            x = rng.normal(size=(batch, obs_dim)).astype(F32)
            start = rng.uniform(size=batch) < 0.3
            h, out, v = ref(h, x, start)
            carry, out_j = apply(p, {"core": h_j}, jnp.asarray(x)[None], jnp.asarray(start)[None])
            h_j = carry["core"]
            msg = f"NumPy GRU policy != network.apply ({label}, step {t})"
            for a, b in ((h, h_j), (out, out_j.dist[0]), (v, out_j.value[0])):
                np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5, err_msg=msg)


# NumPy action sampling (shared by all baselines, so only the network differs between them).


def _sample_categorical(rng: np.random.Generator, logits: np.ndarray):
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=logits.shape)))
    action = np.argmax(logits + gumbel, axis=-1).astype(np.int32)
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return action, logp[np.arange(len(action)), action]


def _sample_gaussian(rng: np.random.Generator, params: np.ndarray):
    d = params.shape[-1] // 2
    mean, log_std = params[:, :d], params[:, d:]
    eps = rng.standard_normal(size=mean.shape).astype(F32)
    action = mean + np.exp(log_std) * eps
    logp = np.sum(-0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    return action.astype(F32), logp.astype(F32)


def openblas_threads() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """``(get, set)`` of the thread count of the OpenBLAS that NumPy loaded, or ``None``."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    names = (
        "scipy_openblas_{}_num_threads64_",
        "openblas_{}_num_threads64_",
        "openblas_{}_num_threads",
    )
    for path in sorted(p for p in paths if p.startswith("/")):
        lib = ctypes.CDLL(path)
        for name in names:
            get, put = (
                getattr(lib, name.format("get"), None),
                getattr(lib, name.format("set"), None),
            )
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None


PolicyStep = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[Any, Any, Any]]


def numpy_loop_rollout(
    env,
    policy: PolicyStep,
    hidden: int,
    num_steps: int,
    warmup: int,
    seed: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Per-step Python loop: policy -> sample -> store -> env.step -> reset finished trials.

    Runs ``warmup`` untimed steps, then ``num_steps`` timed ones, stopping early once
    ``max_seconds`` have passed (so a pathologically slow configuration cannot stall the run).
    """
    rng = np.random.default_rng(seed)
    env.rng = rng
    B = env.B
    sample = _sample_categorical if env.discrete else _sample_gaussian
    obs = env.reset_all()
    h = np.zeros((B, hidden), F32)
    start = np.ones(B, bool)
    T = max(num_steps, 1)
    buf_obs = np.zeros((T, B, env.obs_dim), F32)
    buf_act = np.zeros((T, B) if env.discrete else (T, B, 2), np.int32 if env.discrete else F32)
    buf_logp, buf_val, buf_rew = (np.zeros((T, B), F32) for _ in range(3))
    buf_start, buf_done = np.zeros((T, B), bool), np.zeros((T, B), bool)
    trials = done_steps = 0
    t0 = time.perf_counter()
    for i in range(warmup + num_steps):
        if i == warmup:
            t0 = time.perf_counter()
        elif i > warmup and time.perf_counter() - t0 > max_seconds:
            break
        h, out, v = policy(h, obs, start)
        h, out, v = np.asarray(h), np.asarray(out), np.asarray(v)
        action, logp = sample(rng, out)
        j = i % T
        buf_obs[j], buf_start[j], buf_act[j], buf_logp[j], buf_val[j] = obs, start, action, logp, v
        obs, reward, done = env.step(action)
        buf_rew[j], buf_done[j] = reward, done
        obs = env.reset_done(obs, done)
        start = done
        if i >= warmup:
            done_steps += 1
            trials += int(done.sum())
    seconds = time.perf_counter() - t0
    return {
        "loop_steps": done_steps,
        "time_capped": done_steps < num_steps,
        "steps": done_steps * B,
        "seconds": seconds,
        "steps_per_s": done_steps * B / seconds,
        "trials_completed": trials,
    }


# --------------------------------------------------------------------------------------------
# quickstudy: compiled training update and compiled rollout.
# --------------------------------------------------------------------------------------------


def _compile(fn: Callable, *args) -> tuple[Any, float]:
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def bench_quickstudy(
    rl2: Algorithm, state: Any, updates: int, seed: int, repeats: int
) -> dict[str, Any]:
    steps_per_update = rl2.steps_per_update  # num_envs x rollout_len
    # Training: collect + PPO, one jitted update per call.
    update, compile_update_s = _compile(rl2.update, state)
    s, metrics = update(state)  # warm-up, excluded
    jax.block_until_ready((s, metrics))
    train_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(updates):
            s, metrics = update(s)
        jax.block_until_ready((s, metrics))
        train_times.append(time.perf_counter() - t0)
    train_s = min(train_times)
    finite = all(
        bool(np.isfinite(np.asarray(v)).all()) for k, v in metrics.items() if k != "trial_return"
    )

    # Rollout only: the same unroll that ``update`` runs, with the same policy parameters.
    policy, rollout_len = rl2.parts["policy"], rl2.derived["rollout_len"]

    def collect(key, rollout_state, params):
        # ``parts["env"]``: the trial, plus the task's features when the critic reads them.
        env, sample = rl2.parts["env"], rl2.tasks.sample
        return unroll(key, rollout_state, params, policy, env, sample, rollout_len)

    keys = jax.random.split(jax.random.key(seed), updates + 1)
    roll, compile_rollout_s = _compile(collect, keys[0], state.rollout, state.params)
    rs, traj = roll(keys[0], state.rollout, state.params)  # warm-up, excluded
    jax.block_until_ready((rs, traj))
    rollout_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(updates):
            rs, traj = roll(keys[i + 1], rs, state.params)
        jax.block_until_ready((rs, traj))
        rollout_times.append(time.perf_counter() - t0)
    rollout_s = min(rollout_times)

    total = updates * steps_per_update
    return {
        "train": {
            "compile_s": compile_update_s,
            "updates": updates,
            "steps": total,
            "seconds": train_s,
            "seconds_per_update": train_s / updates,
            "steps_per_s": total / train_s,
            "median_steps_per_s": total / float(np.median(train_times)),
            "repeat_seconds": train_times,
            "metrics_finite": finite,
        },
        "rollout": {
            "compile_s": compile_rollout_s,
            "unrolls": updates,
            "steps": total,
            "seconds": rollout_s,
            "seconds_per_unroll": rollout_s / updates,
            "steps_per_s": total / rollout_s,
            "median_steps_per_s": total / float(np.median(rollout_times)),
            "repeat_seconds": rollout_times,
        },
        # Share of an update's time spent collecting (rollout time / train time, per update).
        "collection_fraction_of_update": rollout_s / train_s,
    }


# --------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": _jaxlib_version(),
        "numpy": np.__version__,
        "device": str(dev),
        "device_kind": getattr(dev, "device_kind", dev.platform),
        "backend": jax.default_backend(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


def run_task(name: str, args: argparse.Namespace) -> dict[str, Any]:
    dist = task_registry.make(name)
    # One shared GRU torso (the paper's architecture), so the NumPy reference is the same net.
    config = RL2Config(
        hidden_size=args.hidden_size,
        num_envs=args.num_envs,
        total_steps=HUGE_TOTAL_STEPS,
        separate_critic=False,
    )
    rl2 = make_rl2(config, dist)
    state = jax.jit(rl2.init)(jax.random.key(args.seed))
    params = state.params
    obs_dim = int(state.rollout.obs.shape[-1])
    net = rl2.parts["network"]
    episodes, rollout_len = rl2.derived["episodes"], rl2.derived["rollout_len"]
    print(
        f"\n== {name}: obs_dim={obs_dim} episodes/trial={episodes} "
        f"rollout_len={rollout_len} num_envs={args.num_envs} hidden={args.hidden_size}",
        flush=True,
    )

    # Honesty checks before timing anything.
    jit_apply = jax.jit(net.apply)
    check_numpy_env(name, rl2)
    check_numpy_policy(rl2, params, jit_apply, obs_dim, args.num_envs)
    print("   checks: NumPy trial == quickstudy Trial, NumPy GRU == network.apply", flush=True)

    qs = bench_quickstudy(rl2, state, args.updates, args.seed, args.repeats)
    # The default configuration (a separate critic core, as `quickstudy train rl2` runs it).
    default = make_rl2(RL2Config(num_envs=args.num_envs, total_steps=HUGE_TOTAL_STEPS), dist)
    qs_default = bench_quickstudy(
        default,
        jax.jit(default.init)(jax.random.key(args.seed)),
        args.updates,
        args.seed,
        args.repeats,
    )["train"]
    print(
        f"   quickstudy: compile update {qs['train']['compile_s']:.1f}s, "
        f"rollout {qs['rollout']['compile_s']:.1f}s; train {qs['train']['steps_per_s']:,.0f} "
        f"steps/s, rollout {qs['rollout']['steps_per_s']:,.0f} steps/s",
        flush=True,
    )

    baselines: dict[str, Any] = {}
    np_policy = NumpyGRUPolicy(params, net.hidden_size, net.discrete)

    # The network's carry is {"core": h} (one shared GRU core); the loop keeps the bare ``h``.
    def eager_step(h, x, start):
        carry, out = net.apply(params, {"core": h}, x[None], start[None])
        return carry["core"], out.dist[0], out.value[0]

    def jit_step(h, x, start):
        carry, out = jit_apply(params, {"core": h}, x[None], start[None])
        return carry["core"], out.dist[0], out.value[0]

    def baseline(label: str, policy: PolicyStep, steps: int, warmup: int) -> dict[str, Any]:
        reps = []
        for _ in range(args.repeats):
            env = make_numpy_env(name, args.num_envs, episodes, np.random.default_rng(args.seed))
            reps.append(
                numpy_loop_rollout(
                    env,
                    policy,
                    net.hidden_size,
                    steps,
                    warmup,
                    args.seed,
                    args.baseline_max_seconds,
                )
            )
        res = dict(max(reps, key=lambda r: r["steps_per_s"]))
        res["median_steps_per_s"] = float(np.median([r["steps_per_s"] for r in reps]))
        res["repeat_steps_per_s"] = [r["steps_per_s"] for r in reps]
        capped = (
            f" (stopped at the {args.baseline_max_seconds:g}s cap)" if res["time_capped"] else ""
        )
        print(f"   baseline {label}: {res['steps_per_s']:,.0f} steps/s{capped}", flush=True)
        return res

    # The NumPy GRU at each OpenBLAS thread count (1 and all cores); the faster one is the
    # reference, so the baseline is not handicapped by BLAS threading (which, on a loaded
    # machine, can cost 10x at these small matrix sizes).
    blas = openblas_threads()
    if blas is None:
        baselines["numpy"] = baseline("numpy", np_policy, args.baseline_steps, 5)
        baselines["numpy"]["blas_threads"] = None
    else:
        get_threads, set_threads = blas
        default_threads = get_threads()
        by_threads = {}
        for n in sorted({1, default_threads, os.cpu_count() or 1}):
            set_threads(n)
            by_threads[n] = baseline(f"numpy ({n} BLAS threads)", np_policy, args.baseline_steps, 5)
            by_threads[n]["blas_threads"] = n
        set_threads(default_threads)
        best = max(by_threads, key=lambda n: by_threads[n]["steps_per_s"])
        baselines["numpy"] = by_threads[best]
        baselines["numpy_by_blas_threads"] = {str(n): r for n, r in by_threads.items()}
    baselines["jax_eager"] = baseline("jax eager", eager_step, args.eager_steps, 2)
    baselines["jax_jit_step"] = baseline("jax jit step", jit_step, args.baseline_steps, 5)

    ref = baselines["numpy"]["steps_per_s"]
    n_blas = baselines["numpy"]["blas_threads"]
    bt = "" if n_blas is None else f" ({n_blas}t)"
    rows = [
        ("quickstudy train, default config", qs_default["steps_per_s"]),
        ("quickstudy train (collect+PPO)", qs["train"]["steps_per_s"]),
        ("quickstudy rollout (jit scan)", qs["rollout"]["steps_per_s"]),
        (f"numpy loop + numpy GRU{bt}", baselines["numpy"]["steps_per_s"]),
        ("numpy loop + jax eager GRU", baselines["jax_eager"]["steps_per_s"]),
        ("numpy loop + jit(apply)/step", baselines["jax_jit_step"]["steps_per_s"]),
    ]
    return {
        "task": name,
        "obs_dim": obs_dim,
        "episodes_per_trial": episodes,
        "rollout_len": rollout_len,
        "steps_per_update": args.num_envs * rollout_len,
        "quickstudy": qs,
        "quickstudy_default_config_train": qs_default,
        "baselines": baselines,
        "ratios_vs_numpy_loop": {
            "quickstudy_rollout": qs["rollout"]["steps_per_s"] / ref,
            "quickstudy_train": qs["train"]["steps_per_s"] / ref,
            "jax_eager": baselines["jax_eager"]["steps_per_s"] / ref,
            "jax_jit_step": baselines["jax_jit_step"]["steps_per_s"] / ref,
        },
        "table": [
            {"method": m, "steps_per_s": sps, "ratio_vs_numpy_loop": sps / ref} for m, sps in rows
        ],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, < 1 minute")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    parser.add_argument("--hidden-size", type=int, default=64, help="the default config's")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every timed row")
    parser.add_argument("--num-envs", type=int, default=None, help="default 128 (--quick: 32)")
    parser.add_argument(
        "--updates", type=int, default=None, help="timed updates/unrolls (default 10, quick 1)"
    )
    parser.add_argument(
        "--baseline-steps",
        type=int,
        default=None,
        help="timed loop steps (x num_envs) of the NumPy and jit-step baselines "
        "(default 2000, quick 100)",
    )
    parser.add_argument(
        "--eager-steps",
        type=int,
        default=None,
        help="timed loop steps of the eager-JAX baseline (slow; default 100, quick 2)",
    )
    parser.add_argument(
        "--baseline-max-seconds",
        type=float,
        default=None,
        help="cap on each baseline's timed loop (default 10, quick 2)",
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = (
        {
            "num_envs": 32,
            "updates": 1,
            "baseline_steps": 100,
            "eager_steps": 2,
            "baseline_max_seconds": 2.0,
        }
        if args.quick
        else {
            "num_envs": 128,
            "updates": 10,
            "baseline_steps": 2000,
            "eager_steps": 100,
            "baseline_max_seconds": 10.0,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        stem = "rl2_throughput_quick" if args.quick else "rl2_throughput"
        args.out = Path("benchmarks/results") / f"{stem}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.time()
    info = machine_info()
    print(
        f"machine: {info['platform']}, {info['cpu_count']} CPUs, jax {info['jax']}, "
        f"device {info['device']}; load average {load_before[0]:.2f}"
    )
    results = [run_task(name, args) for name in args.tasks]

    print(f"\n{'task':<17} {'method':<32} {'steps/s':>12} {'vs numpy loop':>14}")
    for res in results:
        for row in res["table"]:
            print(
                f"{res['task']:<17} {row['method']:<32} {row['steps_per_s']:>12,.0f} "
                f"{row['ratio_vs_numpy_loop']:>13.2f}x"
            )
    print()
    for res in results:
        qs, ratios = res["quickstudy"], res["ratios_vs_numpy_loop"]
        print(
            f"{res['task']}: rollout vs rollout {ratios['quickstudy_rollout']:.2f}x the NumPy "
            f"loop; full training (collect+PPO) {ratios['quickstudy_train']:.2f}x the NumPy "
            f"loop's collection alone; collection is {qs['collection_fraction_of_update']:.0%} "
            f"of an update; compile {qs['train']['compile_s']:.1f}s (update) + "
            f"{qs['rollout']['compile_s']:.1f}s (rollout), excluded"
        )

    load_after = os.getloadavg()
    record = {
        "benchmark": "rl2_throughput",
        "quick": args.quick,
        "started_unix": started,
        "wall_s": time.time() - started,
        "machine": info,
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
        "settings": {
            "tasks": args.tasks,
            "hidden_size": args.hidden_size,
            "num_envs": args.num_envs,
            "updates": args.updates,
            "baseline_steps": args.baseline_steps,
            "eager_steps": args.eager_steps,
            "baseline_max_seconds": args.baseline_max_seconds,
            "seed": args.seed,
            "cell": "gru",
            "rl2_config": "RL2Config defaults otherwise (4 epochs x 4 minibatches PPO)",
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
