"""RL² on longer trials: a run's config with some fields replaced, optionally warm-started.

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        python experiments/rl2_finetune_long.py --source runs/b100-k50 --warm-start \
            --task bandit-k50-n500 --total-steps 4000000 --lr 5e-4 \
            [--gamma 0.999 --gae-lambda 0.95] [--stagger] --run-dir runs/ft-k50
    quickstudy evaluate runs/ft-k50

The new run takes the source run's config with the flags above replaced. With
``--warm-start`` it starts from the source's final parameters (the optimizer's moments, the
trials in flight and the key start fresh); with ``--stagger`` its trials start out of step.
It trains as `quickstudy train` does, into its own run directory, which `evaluate` and
`resume` understand (issue 24, the k = 50 bandits). Findings: docs/results/rl2-tables.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import jax.numpy as jnp

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.tracking import read_json


def stagger(rollout, episodes: int):
    """Moves environment i's first trial to episode ``i * episodes // B`` (a shorter first trial).

    With every trial started together, each update of a trial longer than a rollout sees one
    phase of the trial only (e.g. pulls 450-500); staggered, every update sees all phases.
    """
    trial = rollout.env_state  # a TrialState, also under WithTaskFeatures
    batch = trial.episode.shape[0]
    offsets = (jnp.arange(batch) * episodes // batch).astype(trial.episode.dtype)
    return rollout._replace(env_state=trial._replace(episode=offsets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="run directory whose config is used")
    parser.add_argument(
        "--warm-start", action="store_true", help="start from the source's final parameters"
    )
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="desynchronise the trials: environment i starts its first trial at pull i*K/B",
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--total-steps", type=int, required=True)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--gamma", type=float, default=None)
    parser.add_argument("--gae-lambda", type=float, default=None)
    parser.add_argument("--ent-coef", type=float, default=None)
    parser.add_argument("--rollout-len", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    source = runner.open_run(args.source)
    record = read_json(source.path / "config.json")
    config = registry.get(record["algo"]).config_from_record(record["config"], "source config")
    ppo_changes = {
        "learning_rate": args.lr,
        "gamma": args.gamma,
        "gae_lambda": args.gae_lambda,
        "ent_coef": args.ent_coef,
    }
    ppo = dataclasses.replace(config.ppo, **{k: v for k, v in ppo_changes.items() if v is not None})
    changes = {"total_steps": args.total_steps, "ppo": ppo}
    if args.rollout_len is not None:
        changes["rollout_len"] = args.rollout_len
    if args.episodes is not None:
        changes["episodes"] = args.episodes
    config = dataclasses.replace(config, **changes)
    settings = dataclasses.replace(source.settings, seed=args.seed)
    run = runner.create_run(record["algo"], args.task, config, settings, run_dir=args.run_dir)

    start = runner.initial_state(run)
    if args.warm_start:
        trained, _ = runner.restore_latest(source)
        start = start._replace(params=trained.params)
    if args.stagger:
        start = start._replace(rollout=stagger(start.rollout, run.algo.derived["episodes"]))

    def progress(update, metrics):
        if update % 50 < 10:
            logging.info(
                "update %d/%d trial return %.1f",
                update,
                run.algo.num_updates,
                float(metrics[run.progress_metric[0]][-1]),
            )

    runner.train(run, on_chunk=progress, start=(start, 0))


if __name__ == "__main__":
    main()
