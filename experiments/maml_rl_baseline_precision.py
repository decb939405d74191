"""How well the float32 linear baseline fits, against rllab's float64 ``lstsq`` (MAML cheetah).

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        python experiments/maml_rl_baseline_precision.py [--task maml-cheetah-dir] [--tasks 8]

Samples 20 episodes per task with a freshly initialised policy (what MAML's first
meta-iterations see), fits the returns with ``fit_linear_baseline`` (float32, normal equations
scaled by the sample count) and with rllab's ``LinearFeatureBaseline`` solve (float64
``lstsq`` of ``FᵀF + 1e-5 I``), and prints each fit's explained variance per task.
Findings: docs/results/mujoco.md (MAML's locomotion table).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.algorithms import registry
from quickstudy.algorithms.maml_rl import MAMLRLConfig
from quickstudy.objectives.policy_gradient import fit_linear_baseline, linear_features
from quickstudy.objectives.returns import discounted_returns
from quickstudy.rollout.episodes import host_sample_episodes


def explained_variance(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1.0 - np.var(y - pred) / np.var(y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="maml-cheetah-dir")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = MAMLRLConfig(meta_batch_size=args.tasks, episodes_per_task=args.episodes)
    algo = registry.build("maml-rl", args.task, config)
    host = algo.parts["host"]
    state = jax.jit(algo.init)(jax.random.key(args.seed))
    tasks = algo.tasks.sample(jax.random.key(args.seed + 1), args.tasks)
    params = host["tile"](state.params, args.tasks)
    eps = host_sample_episodes(
        jax.random.key(args.seed + 2),
        algo.tasks.env,
        tasks,
        lambda k, o: host["act"](k, params, tasks, o),
        args.episodes,
    )
    horizon = eps.obs.shape[2]
    for i in range(args.tasks):
        obs, rew, valid = eps.obs[i], eps.rewards[i], eps.valid[i]
        g = jax.vmap(lambda r: discounted_returns(r, jnp.zeros_like(r), 0.99))(rew)
        feats = jax.vmap(lambda o: linear_features(o, horizon))(obs)
        w32 = fit_linear_baseline(feats, g, valid)
        f = np.asarray(feats, np.float64).reshape(-1, feats.shape[-1])
        y = np.asarray(g, np.float64).reshape(-1)
        m = np.asarray(valid).reshape(-1)
        f, y = f[m], y[m]
        f100 = f.copy()  # rllab's time scale is t/100
        t = f[:, -4] * horizon / 100.0
        f100[:, -4:-1] = np.stack([t, t**2, t**3], axis=1)
        w64 = np.linalg.lstsq(f100.T @ f100 + 1e-5 * np.eye(f.shape[1]), f100.T @ y, rcond=-1)[0]
        pred32 = f @ np.asarray(w32, np.float64)
        print(
            f"task {i}: return std {y.std():7.2f}  explained variance float32 "
            f"{explained_variance(y, pred32):.4f}  float64 lstsq "
            f"{explained_variance(y, f100 @ w64):.4f}  max |diff| of fits "
            f"{np.abs(pred32 - f100 @ w64).max():.3f}"
        )


if __name__ == "__main__":
    main()
