"""How much Meta-World's official evaluation counts fast successes first.

    python experiments/metaworld_count_bias.py RUN_DIR [--rounds N] [--out FILE]

``metaworld.evaluation.evaluation`` counts the first ``evaluation_episodes`` episodes to end per
task class, with terminate-on-success on, so an environment that succeeds early finishes (and is
counted) before one that fails and runs its whole 500 steps. This plays the same agent on the same
test vector env (``metaworld.make_ml_envs_test``, 20 environments, 40 goals per class) the
same way (adaptation episodes, then evaluation episodes with terminate-on-success), but records
every environment's first evaluation episode, so every environment counts once. It prints both
rates and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from quickstudy import runner
from quickstudy.interop.metaworld_eval import (
    OFFICIAL_META_BATCH,
    OFFICIAL_TASKS_PER_CLASS,
    RL2Agent,
    TrialInputs,
    benchmark_name,
)
from quickstudy.tasks.metaworld_tasks import SEED, _import_metaworld


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", default="metaworld_count_bias.json")
    args = parser.parse_args()
    metaworld = _import_metaworld()
    run = runner.open_run(args.run_dir)
    params = runner.load_state(run, runner.latest_checkpoint(run.path / "checkpoints")).params
    envs = TrialInputs(
        metaworld.make_ml_envs_test(
            benchmark_name(run.task_name),
            seed=SEED,
            meta_batch_size=OFFICIAL_META_BATCH,
            total_tasks_per_cls=OFFICIAL_TASKS_PER_CLASS,
        )
    )
    n = envs.num_envs
    agent = RL2Agent(run.algo.parts["policy"], params, n)
    adaptation = max(1, int(run.algo.derived["episodes"]) - 1)
    envs.call("toggle_sample_tasks_on_reset", False)
    first, ends = [], []  # per round: every env's first evaluation episode; the end order
    for _ in range(args.rounds):
        envs.call("sample_tasks")
        envs.call("toggle_terminate_on_success", False)
        agent.init()
        obs, _ = envs.reset()
        done_count = np.zeros(n, int)
        while (done_count < adaptation).any():
            actions, _ = agent.adapt_action(obs)
            obs, _, term, trunc, _ = envs.step(actions)
            done_count += np.logical_or(term, trunc)
        envs.call("toggle_terminate_on_success", True)
        obs, _ = envs.reset()
        success = np.full(n, np.nan)
        order = []
        while np.isnan(success).any():
            obs, _, term, trunc, info = envs.step(agent.eval_action(obs))
            for i in np.flatnonzero(np.logical_or(term, trunc)):
                order.append(float(info["final_info"]["success"][i]))
                if np.isnan(success[i]):
                    success[i] = float(info["final_info"]["success"][i])
        first.append(success.mean())
        ends.append(order)
    result = {
        "run": str(run.path),
        "rounds": args.rounds,
        "every_environment_once": float(np.mean(first)),
        "first_3_to_end": float(np.mean([np.mean(o[:3]) for o in ends])),
        "first_20_to_end": float(np.mean([np.mean(o[:20]) for o in ends])),
    }
    envs.close()
    print(json.dumps(result, indent=2))  # noqa: T201
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
