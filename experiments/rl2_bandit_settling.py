"""Does RL² settle on an arm in a long bandit trial, or does it keep sampling?

On the 500-pull bandits RL² (``--preset bandit-500``) scores below greedy play. This script
meta-tests a trained RL² run on the task's held-out trials twice, with the same key: acting
by sampling from the policy (the library's meta-test) and by its mode (the most probable arm).
It reports, per block of pulls, the mean reward and the regret per pull against the best arm
of each trial, so one can see whether the loss is in the early exploration or in a late-trial
policy that never commits. Classical players (``--baselines``, e.g. ``greedy gittins:0.999``)
play the same held-out bandits for scale.

    python experiments/rl2_bandit_settling.py RUN_DIR [--blocks 10] [--baselines ...] \\
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from quickstudy import runner
from quickstudy.algorithms import bandit_baselines
from quickstudy.algorithms.rl2 import trial_collectors, trial_meta_test
from quickstudy.tasks.trial import Trial


def _blocks(r: np.ndarray, best: float, blocks: int) -> dict:
    """Trial return and per-block reward and regret of per-pull rewards ``r`` ``[N, n]``."""
    edges = np.linspace(0, r.shape[1], blocks + 1).astype(int)
    rows = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mean = float(r[:, a:b].mean())
        rows.append({"pulls": [int(a) + 1, int(b)], "reward": mean, "regret": float(best - mean)})
    total = r.sum(axis=1)
    return {
        "trial_return": float(total.mean()),
        "stderr": float(total.std(ddof=1) / np.sqrt(total.size)),
        "blocks": rows,
    }


def settle(run_dir: str, blocks: int, baselines: list[str]) -> dict:
    """Per-block reward and regret of the run's policy, sampled and by its mode."""
    run = runner.open_run(run_dir)
    algo = run.algo
    tasks = algo.tasks
    if algo.config.task_critic or algo.config.explore_episodes:
        raise SystemExit("this probe reads plain RL² runs (no task critic, one policy)")
    ckpt = runner.latest_checkpoint(run.path / runner.CHECKPOINTS)
    params = runner.load_state(run, ckpt).params
    *_, play = trial_collectors(tasks, algo.parts["env"], algo.parts["policy"])
    test = tasks.test_tasks(run.settings.eval_tasks or None)
    best = np.asarray(test.probs).max(axis=1)  # [N]
    pulls = algo.default_points
    out = {"run": run_dir, "checkpoint": ckpt.name, "pulls": pulls, "trials": int(best.size)}
    for name, det in (("sampled", False), ("mode", True)):
        meta_test = trial_meta_test(play, lambda k: Trial(tasks.env, k), 1, deterministic=det)
        fn = jax.jit(meta_test, static_argnums=3)
        res = jax.device_get(fn(params, jax.random.key(0), test, pulls))
        out[name] = _blocks(np.asarray(res.values), best.mean(), blocks)  # a pull is an episode
    for spec in baselines:
        name, _, gamma = spec.partition(":")
        choose = bandit_baselines.make_choose(name, pulls, gamma=float(gamma or 0.999))
        res = bandit_baselines.play(np.random.default_rng(0), np.asarray(test.probs), choose, pulls)
        out[spec] = _blocks(res.rewards, best.mean(), blocks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--baselines", nargs="*", default=[], metavar="NAME[:GAMMA]")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = settle(args.run_dir, args.blocks, args.baselines)
    for name in ("sampled", "mode", *args.baselines):
        o = out[name]
        print(f"{name}: trial return {o['trial_return']:.2f} ± {o['stderr']:.2f}")
        print("  regret per pull by block: " + " ".join(f"{b['regret']:.3f}" for b in o["blocks"]))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
