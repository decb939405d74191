"""``--seeds``: train, evaluate and resume a group of seeds from the command line."""

import json

from quickstudy.cli import main

TINY = ["--total-steps", "480", "--num-envs", "8", "--hidden-size", "16", "--num-minibatches", "2"]


def test_train_evaluate_and_resume_a_vmapped_group(tmp_path, capsys):
    group = tmp_path / "g"
    args = ["train", "rl2", "--run-dir", str(group), "--seeds", "3", "--seed", "5", *TINY]
    args += ["--seed-mode", "vmap"]
    assert main([*args, "--eval-tasks", "20"]) == 0
    out = capsys.readouterr().out
    assert "3 seeds 5, 6, 7 as vmap" in out and "mean over 3 seeds" in out
    summary = json.loads((group / "eval" / "summary.json").read_text())
    assert summary["seeds"] == [5, 6, 7] and len(summary["trial_return"]["per_seed"]) == 3
    assert main(["evaluate", str(group), "--episodes", "3", "--eval-tasks", "10"]) == 0
    out_dir = group / "evaluations" / "tasks10-episodes3-seed0"
    assert len(json.loads((out_dir / "summary.json").read_text())["per_index"]) == 3
    assert (group / "seed-6" / "evaluations" / "tasks10-episodes3-seed0" / "summary.json").exists()
    assert main(["evaluate", str(group / "seed-6"), "--eval-tasks", "10"]) == 0  # a seed alone
    curves = ["evaluate", str(group), "--all-checkpoints", "--eval-tasks", "10", "--out"]
    assert main([*curves, str(tmp_path / "curves")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "curves" / "curve.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert (
        len(last["per_seed"]) == 3 and last["mean"][-1] == sum(s[-1] for s in last["per_seed"]) / 3
    )
    assert last["ci95_low"][-1] <= last["mean"][-1] <= last["ci95_high"][-1]
    assert (tmp_path / "curves" / "curve.png").stat().st_size > 0
    assert main(["resume", str(group)]) == 0  # finished: meta-tests again
    assert main(["resume", str(group), "--from-update", "1"]) == 2
    assert "use it on a seed" in capsys.readouterr().err


def test_host_stepped_seeds_train_as_worker_processes(tmp_path, capsys):
    group = tmp_path / "h"
    args = ["train", "rl2", "--task", "nav2d-numpy", "--run-dir", str(group), "--seeds", "2"]
    assert main([*args, *TINY, "--eval-tasks", "4"]) == 0
    assert "as processes" in capsys.readouterr().out
    for seed in (0, 1):
        assert (group / f"seed-{seed}" / "eval" / "summary.json").exists()
        assert (group / f"seed-{seed}.log").stat().st_size > 0
    assert json.loads((group / "eval" / "summary.json").read_text())["seeds"] == [0, 1]


def test_bad_seed_options_name_the_flag(tmp_path, capsys):
    base = ["train", "rl2", "--run-dir", str(tmp_path / "x"), *TINY]
    assert main([*base, "--seeds", "2", "--task", "nav2d-numpy", "--seed-mode", "vmap"]) == 2
    assert "--seed-mode processes" in capsys.readouterr().err
    assert main([*base, "--seeds", "2", "--seed-mode", "threads"]) == 2
    assert "seed mode must be one of vmap, processes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
