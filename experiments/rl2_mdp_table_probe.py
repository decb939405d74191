"""How much of the per-state reward table a trained RL² policy holds, and how it acts on it.

For a finished ``quickstudy train rl2`` run on a tabular MDP with a reward head
(``--reward-coef``), this plays the run's policy once on each held-out MDP (actions sampled) and
prints:

- the reward head's squared error on the rewards received, beside the error of the exact
  per-state posterior mean (prior N(1, 1) on each mean reward, noise variance 1) on the same
  visits and its expectation, ``1 + 1 / (1 + visits)``;
- how often the policy's most likely action is per-state greedy's (argmax of the current
  state's posterior means) and the argmax of its own reward head over the actions;
- the trial return of three players on the same MDPs: acting on the argmax of the policy's
  logits, on the argmax of its reward head (not RL²: a probe of the table), and per-state
  greedy with the exact posterior means.

Usage::

    python experiments/rl2_mdp_table_probe.py RUN_DIR [--tasks 1000] [--seed 123]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy import runner

PRIOR_MEAN = 1.0  # the tabular MDPs' mean rewards are N(1, 1); observed rewards add N(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--tasks", type=int, default=1000, help="held-out MDPs")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    run = runner.open_run(args.run_dir)
    state, _ = runner.restore_latest(run)
    rl2, n = run.algo, args.tasks
    params, net, env = state.params, rl2.parts["network"], rl2.parts["env"]
    tasks = rl2.tasks.test_tasks(n)
    horizon, num_actions = rl2.derived["episodes"] * rl2.tasks.env.horizon, net.action_dim
    num_states = int(np.asarray(tasks.mean_rewards).shape[1])
    idx, no_start = jnp.arange(n), jnp.zeros((1, n), bool)

    def play(key, chooser):
        """One trial per MDP with actions from ``chooser``; per step ``[T, N, ...]``: the
        reward, the action, the policy's mode, its reward head for every action, the exact
        posterior means of the current state's row and the earlier visits of (state, action).
        """
        k0, k1 = jax.random.split(key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(k0, n), tasks)
        zeros = jnp.zeros((n, num_states, num_actions))

        def step(carry, key):
            env_state, obs, h, count, total = carry
            k_act, k_env = jax.random.split(key)
            h_next, out = net.apply(params, h, obs[None], no_start)
            logits, heads = out.dist[0], out.aux["reward"][0]  # heads: every action's [N, A]
            s = obs[:, :num_states].argmax(-1)
            row = (PRIOR_MEAN + total[idx, s]) / (1.0 + count[idx, s])
            action = chooser(k_act, logits, heads, row)
            env_state, ts = jax.vmap(env.step)(jax.random.split(k_env, n), env_state, action, tasks)
            record = {
                "reward": ts.reward,
                "action": action,
                "mode": logits.argmax(-1),
                "heads": heads,
                "row": row,
                "visits": count[idx, s, action],
            }
            count = count.at[idx, s, action].add(1.0)
            total = total.at[idx, s, action].add(ts.reward)
            return (env_state, ts.obs, h_next, count, total), record

        carry = (env_state, ts.obs, net.initial_state(n), zeros, zeros)
        return jax.lax.scan(step, carry, jax.random.split(k1, horizon))[1]

    dist = net.distribution
    choosers = {
        "sampled from the policy": lambda k, logits, heads, row: dist.sample(k, logits),
        "argmax of the policy's logits": lambda k, logits, heads, row: logits.argmax(-1),
        "argmax of its reward head": lambda k, logits, heads, row: heads.argmax(-1),
        "per-state greedy, exact posterior": lambda k, logits, heads, row: row.argmax(-1),
    }
    key = jax.random.key(args.seed)
    trials = {
        name: jax.tree.map(np.asarray, jax.jit(lambda k, c=c: play(k, c))(key))
        for name, c in choosers.items()
    }

    sampled = trials["sampled from the policy"]
    rew, act = sampled["reward"], sampled["action"][..., None]
    error = (np.take_along_axis(sampled["heads"], act, -1)[..., 0] - rew) ** 2
    posterior = (np.take_along_axis(sampled["row"], act, -1)[..., 0] - rew) ** 2
    bayes = 1.0 + 1.0 / (1.0 + sampled["visits"])
    agree_greedy = sampled["mode"] == sampled["row"].argmax(-1)
    agree_head = sampled["mode"] == sampled["heads"].argmax(-1)

    print(f"{args.run_dir}: {n} held-out MDPs, {horizon} steps per trial")
    tenth = horizon // 10
    parts = {
        "all steps": slice(None),
        "first tenth": slice(0, tenth),
        "last tenth": slice(horizon - tenth, horizon),
    }
    for label, part in parts.items():
        print(
            f"  {label:11s}: reward head MSE {error[part].mean():.3f}, exact posterior "
            f"{posterior[part].mean():.3f} (expected {bayes[part].mean():.3f}); policy's mode = "
            f"per-state greedy {agree_greedy[part].mean():.3f}, = own head's argmax "
            f"{agree_head[part].mean():.3f}"
        )
    for name, trial in trials.items():
        totals = trial["reward"].sum(0)
        se = totals.std(ddof=1) / np.sqrt(n)
        print(f"  trial return, {name:34s}: {totals.mean():8.2f} ± {se:.2f}")


if __name__ == "__main__":
    main()
