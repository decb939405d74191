"""Pictures of PEARL's posterior-sampling exploration on a 2-D task (the point robots).

Two figures from a trained run::

    python -m quickstudy.reproduce.pearl_pictures RUN_DIR --out DIR [--episodes K] [--tasks N]

* ``exploration.png``: on each of ``N`` held-out tasks, the paths of ``K`` successive meta-test
  episodes (the first with z from the prior, then z sampled from the posterior of everything
  seen so far), the goal and its radius: exploration narrowing onto the goal;
* ``posterior.png``: the posterior's mean (each dimension of z) and its standard deviation
  against the number of context transitions on one task.

Both come from the run's latest checkpoint and the algorithm's own episode runner and encoder,
so they show exactly what the meta-test does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from quickstudy.algorithms.pearl import exploration_keys
from quickstudy.evaluation.plots import save_png
from quickstudy.networks.context import sample_z

PyTree = Any


def exploration_episodes(run: Any, params: Any, tasks: PyTree, episodes: int, seed: int = 0):
    """Meta-test episodes with posterior sampling, keeping the paths and the context.

    Args:
        run: An opened PEARL run (:func:`quickstudy.runner.open_run`).
        params: Its learner parameters.
        tasks: Held-out tasks (leaves ``[N, ...]``).
        episodes: Episodes per task.
        seed: Seed of the episodes and of z.

    Returns:
        ``(paths [N, K, H + 1, D], returns [N, K], context features [N, K·H, C])``.
    """
    algo = run.algo
    config, post = algo.config, algo.parts["posterior"]
    run_eps = algo.parts["run_episodes"]
    features = algo.parts["features"]
    n = jax.tree.leaves(tasks)[0].shape[0]
    keys = jax.random.split(jax.random.key(seed), (episodes + 1, n))
    prior_keys = exploration_keys(keys[0], config.exploration_episodes)
    latent = config.encoder.latent_dim
    paths, returns, pool = [], [], None
    for j in range(episodes):
        if j >= config.exploration_episodes:
            z = jax.vmap(sample_z)(keys[j + 1], *post(params.encoder, pool))
        else:  # a fresh z from the prior per exploration episode, as the meta-test draws
            z = jax.vmap(lambda k: jax.random.normal(k, (latent,)))(prior_keys[:, j])
        ep = run_eps(params.sac.actor, tasks, z, keys[j + 1], config.deterministic_eval)
        start = ep.obs[:, :1]
        paths.append(np.asarray(jnp.concatenate([start, ep.next_obs], axis=1)))
        returns.append(np.asarray(ep.returns()))
        feats = features(ep)
        pool = feats if pool is None else jnp.concatenate([pool, feats], axis=1)
    return np.stack(paths, 1), np.stack(returns, 1), pool


def exploration_figure(paths: np.ndarray, returns: np.ndarray, goals: np.ndarray, radius: float):
    """Paths of successive episodes per task (one panel each), goal and radius marked."""
    n, k = paths.shape[:2]
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows), dpi=110)
    FigureCanvasAgg(fig)
    colors = [f"C{j}" for j in range(k)]
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j in range(k):
            p = paths[i, j]
            kind = "prior z" if j == 0 else "posterior z"
            ax.plot(p[:, 0], p[:, 1], color=colors[j], marker=".", markersize=3,
                    label=f"ep {j + 1} ({kind}): {returns[i, j]:.1f}")  # fmt: skip
        ax.add_patch(Circle(goals[i], radius, color="k", fill=False, linestyle="--"))
        ax.plot(*goals[i], "k*", markersize=10)
        ax.plot(0, 0, "ko", markersize=4)
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left")
    fig.suptitle("PEARL meta-test: successive episodes on held-out goals (star: goal)")
    fig.tight_layout()
    return fig


def posterior_figure(run: Any, params: Any, pool: jax.Array, max_context: int):
    """Posterior mean per dimension and mean std of z against the context size, one task."""
    post = run.algo.parts["posterior"]
    sizes = np.arange(0, min(max_context, pool.shape[0]) + 1)
    means, stds = [], []
    for m in sizes:
        mask = (jnp.arange(pool.shape[0]) < m).astype(jnp.float32)
        mean, var = post(params.encoder, pool, mask)
        means.append(np.asarray(mean))
        stds.append(float(jnp.sqrt(var).mean()))
    means = np.stack(means)
    fig = Figure(figsize=(9.0, 3.4), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for d in range(means.shape[1]):
        ax1.plot(sizes, means[:, d], label=f"z[{d}]")
    ax1.set_xlabel("context transitions")
    ax1.set_ylabel("posterior mean")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.plot(sizes, stds, color="k")
    ax2.set_yscale("log")
    ax2.set_xlabel("context transitions")
    ax2.set_ylabel("posterior std (mean over z)")
    ax2.grid(alpha=0.3)
    fig.suptitle("PEARL's posterior on one held-out task as its context grows")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """Writes ``exploration.png`` and ``posterior.png`` for a PEARL run on a 2-D task."""
    from quickstudy import runner
    from quickstudy.tracking import latest_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = runner.open_run(args.run_dir)
    if run.algo_name != "pearl":
        parser.error(f"{args.run_dir} is a {run.algo_name} run, not a PEARL run")
    ckpt = latest_checkpoint(run.path / "checkpoints")
    if ckpt is None:
        parser.error(f"{args.run_dir} has no checkpoint")
    params = runner.load_state(run, ckpt).params
    tasks = run.algo.tasks.test_tasks(args.tasks)
    paths, returns, pool = exploration_episodes(run, params, tasks, args.episodes, args.seed)
    out = args.out or run.path / "pictures"
    env = run.algo.tasks.env
    radius = float(getattr(getattr(env, "spec", env), "goal_radius", 0.2))
    goals = np.asarray(tasks.goal)
    save_png(exploration_figure(paths, returns, goals, radius), out / "exploration.png")
    save_png(posterior_figure(run, params, pool[0], pool.shape[1]), out / "posterior.png")
    print(f"wrote {out / 'exploration.png'} and {out / 'posterior.png'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
