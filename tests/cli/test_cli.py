import dataclasses
import json

import jax
import numpy as np
import pytest

from quickstudy import runner
from quickstudy.algorithms.rl2 import RL2_PPO, RL2Config
from quickstudy.cli import main
from quickstudy.errors import CheckpointError
from quickstudy.tracking import latest_checkpoint, load_checkpoint

TINY = ["--total-steps", "480", "--num-envs", "8", "--hidden-size", "16", "--num-minibatches", "2"]
TWO_MINIBATCHES = dataclasses.replace(RL2_PPO, num_minibatches=2)


def _params(run_dir):
    run = runner.open_run(run_dir)
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"), runner.initial_state(run))


def test_train_writes_a_complete_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "rl2", "--run-dir", str(run_dir), "--chunk-updates", "2", *TINY]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "rl2" and config["task"] == "bandit-k5-n10"
    assert config["config"]["total_steps"] == 480 and config["derived"]["num_updates"] == 6
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (run_dir / "metrics.csv").read_text().count("\n") == 7
    assert list(run_dir.glob("events.out.tfevents*"))
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["num_tasks"] == 1000 and len(summary["per_index"]) == 10
    assert summary["axis"] == "episode" and summary["xs"] == list(range(1, 11))
    assert (run_dir / "eval" / "adaptation.png").stat().st_size > 1000
    assert "trial return" in capsys.readouterr().out


def test_updates_without_a_finished_trial_log_no_trial_return(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "rl2", "--run-dir", str(run_dir), "--rollout-len", "5", *TINY]
    assert main(args) == 0  # bandit-k5-n10: a trial is 10 steps, so every other update ends none
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["trials_completed"] for r in rows] == [0.0, 8.0] * 6
    assert ["trial_return" in r for r in rows] == [False, True] * 6
    assert all(np.isfinite(r["trial_return"]) for r in rows[1::2])
    assert "NaN" not in (run_dir / "metrics.jsonl").read_text() + capsys.readouterr().out


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    cfg = RL2Config(total_steps=480, num_envs=8, hidden_size=16, ppo=TWO_MINIBATCHES)
    settings = runner.RunSettings(seed=5, chunk_updates=2, checkpoint_every=1)
    full = runner.create_run("rl2", "bandit-k5-n10", cfg, settings, run_dir=tmp_path / "full")
    final_full = runner.train(full)
    part = runner.create_run("rl2", "bandit-k5-n10", cfg, settings, run_dir=tmp_path / "part")
    runner.train(part, stop_after_updates=3)  # stops mid-chunk: last checkpoint at update 3
    assert main(["resume", str(tmp_path / "part")]) == 0
    final_part = _params(tmp_path / "part")
    assert int(final_part.update) == int(final_full.update) == 6
    for a, b in zip(jax.tree.leaves(final_full), jax.tree.leaves(final_part), strict=True):
        a, b = (
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
            for x in (a, b)
        )
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    full_rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    part_rows = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert full_rows == part_rows


def test_evaluate_command_with_other_episodes(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "rl2", "--run-dir", str(run_dir), *TINY]) == 0
    own = (run_dir / "eval" / "summary.json").read_bytes()
    assert main(["evaluate", str(run_dir), "--episodes", "4", "--eval-tasks", "20"]) == 0
    out = run_dir / "evaluations" / "update000000006-tasks20-episodes4-seed0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["xs"] == [1, 2, 3, 4] and summary["num_tasks"] == 20
    assert (run_dir / "eval" / "summary.json").read_bytes() == own  # the run's own is kept
    assert main(["evaluate", str(run_dir), "--episodes", "4", "--eval-tasks", "20"]) == 2
    assert (
        main(["evaluate", str(run_dir), "--episodes", "4", "--eval-tasks", "20", "--replace"]) == 0
    )
    assert main(["evaluate", str(run_dir), "--test-steps", "2"]) == 2  # RL² adapts over episodes


def test_every_checkpoint_is_meta_tested_after_the_fact_like_the_runs_own_curve(tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--chunk-updates", "2", "--checkpoint-every", "1", "--keep-checkpoints", "10"]
    flags += ["--eval-every", "2"]
    assert main(["train", "rl2", "--run-dir", str(run_dir), *flags, *TINY]) == 0
    assert main(["evaluate", str(run_dir), "--all-checkpoints"]) == 0
    out = run_dir / "evaluations" / "checkpoints-tasksdefault-points10-seed0"
    rows = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [2, 4, 6]  # one vmapped program for the three
    assert [r["step"] for r in rows] == [160, 320, 480]
    # the same tasks and seed as the run's own curve, written during training
    own = {r["update"]: r for r in runner.read_curve(run_dir)}
    for row in rows:
        np.testing.assert_allclose(row["mean"], own[row["update"]]["mean"], rtol=1e-5)
    assert (out / "curve.png").stat().st_size > 1000
    assert main(["evaluate", str(run_dir), "--all-checkpoints"]) == 2  # kept unless --replace
    assert main(["evaluate", str(run_dir), "--all-checkpoints", "--replace"]) == 0


def test_unknown_task_and_algorithm(tmp_path, capsys):
    assert main(["train", "rl2", "--task", "bandit-k7", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'bandit-k7'" in err and "bandit-k10-n100" in err
    assert not (tmp_path / "x").exists()
    assert main(["train", "maml-foo"]) == 2
    assert "Valid algorithms: rl2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag,value,named",
    [
        ("--lr", "-0.1", "--lr"),
        ("--learning-rate", "-0.1", "--lr"),  # the field's own name still works
        ("--lr", "inf", "--lr"),
        ("--ent-coef", "nan", "--ent-coef"),
        ("--total-steps", "0", "--total-steps"),
        ("--gamma", "2", "--gamma"),
        ("--num-envs", "abc", "--num-envs"),
    ],
)
def test_bad_config_value_names_the_flag(flag, value, named, tmp_path, capsys):
    assert main(["train", "rl2", flag, value, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    assert main(["train", "rl2", "--run-dir", str(run_dir), *TINY]) == 0
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))

    def files():
        return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}  # noqa: E731

    before = files()
    assert main(["evaluate", str(run_dir)]) == 2
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert ckpt.name in err
    assert before == files()
    with pytest.raises(CheckpointError):
        runner.evaluate(runner.open_run(run_dir))


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "rl2", "--run-dir", str(run_dir), *TINY]) == 0
    before = (run_dir / "config.json").read_text()
    assert main(["train", "rl2", "--run-dir", str(run_dir), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run_dir / "config.json").read_text() == before


def test_tasks_lists_every_registered_task(capsys):
    from quickstudy import tasks

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in tasks.names():
        assert name in out


def test_ctrl_c_keeps_the_last_completed_chunk(tmp_path):
    cfg = RL2Config(total_steps=480, num_envs=8, hidden_size=16, ppo=TWO_MINIBATCHES)
    settings = runner.RunSettings(seed=1, chunk_updates=2, checkpoint_every=100)
    run = runner.create_run("rl2", "bandit-k5-n10", cfg, settings, run_dir=tmp_path / "run")

    def interrupt(done, metrics):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.train(run, on_chunk=interrupt)
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "ckpt_000000004.msgpack"
    final = runner.train(runner.open_run(tmp_path / "run"))
    full = runner.create_run("rl2", "bandit-k5-n10", cfg, settings, run_dir=tmp_path / "full")
    reference = runner.train(full)
    for a, b in zip(jax.tree.leaves(reference.params), jax.tree.leaves(final.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("algo", ["rl2", "maml", "maml-rl"])
def test_help_is_one_plain_line_per_option(algo, capsys):
    from quickstudy import cli
    from quickstudy.algorithms import registry

    assert main(["train", algo, "--help"]) == 0
    text = capsys.readouterr().out
    for leak in ("``", ":class:", ":func:", "(default: None)", "STR"):
        assert leak not in text, leak
    spec = registry.get(algo)
    options = cli._options(spec.config_cls)
    flags = {o.path[-1]: o.flag for o in options}
    for option in options:
        line = cli._plain(option.help, flags)
        assert option.flag in text and 0 < len(line) <= 100, (option.flag, line)
        assert text.count(f"  {option.flag} ") + text.count(f"  {option.flag},") == 1


def test_one_flag_per_concept_across_algorithms():
    from quickstudy import cli
    from quickstudy.algorithms import registry

    flags = {
        name: {o.path[-1]: o.flag for o in cli._options(spec.config_cls)}
        for name, spec in registry.ALGORITHMS.items()
    }
    assert flags["rl2"]["learning_rate"] == flags["maml"]["meta_lr"] == "--lr"
    assert flags["maml-rl"]["ppo_lr"] == "--lr"
    assert flags["rl2"]["num_epochs"] == flags["maml-rl"]["ppo_epochs"] == "--epochs"
    assert flags["rl2"]["hidden_size"] == flags["maml"]["hidden_sizes"] == "--hidden-size"
    assert flags["maml"]["test_steps"] == flags["maml-rl"]["test_steps"] == "--test-steps"


def test_tasks_shows_the_algorithms_of_each_task(capsys):
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if "sinusoid-k10 " in line)
    assert "maml" in row and "rl2" not in row
    row = next(line for line in lines if " nav2d " in line)
    assert "rl2, snail, maml-rl" in row


def test_evaluate_on_another_distribution_of_the_same_environment(tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "rl2", "--task", "cheetah-slope", "--total-steps", "3200", "--num-envs", "4"]
    assert main([*args, "--eval-tasks", "2", "--run-dir", str(run)]) == 0
    assert main(["evaluate", str(run), "--task", "cheetah-slope-up10", "--eval-tasks", "2"]) == 0
    outs = list((run / "evaluations").iterdir())
    assert len(outs) == 1 and outs[0].name.startswith("cheetah-slope-up10-")
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert summary["test_task"] == "cheetah-slope-up10"
    assert main(["evaluate", str(run), "--task", "ant-slope-up10"]) == 2
    assert "same environment" in capsys.readouterr().err


def test_a_run_trained_on_short_trials_plays_the_longer_trials_of_another_distribution(tmp_path):
    run = tmp_path / "r"
    args = ["train", "rl2", "--task", "bandit-k5-n10", "--total-steps", "1280", "--hidden-size"]
    assert main([*args, "16", "--eval-tasks", "4", "--run-dir", str(run)]) == 0
    # Equal environments (BernoulliBandit(5) built twice); a trial of the other task's length.
    out = tmp_path / "n100"
    assert main(["evaluate", str(run), "--task", "bandit-k5-n100", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_task"] == "bandit-k5-n100" and len(summary["per_index"]) == 100
    own = json.loads((run / "eval" / "summary.json").read_text())
    assert len(own["per_index"]) == 10
    # Asked for, the number of episodes still wins.
    short = tmp_path / "n20"
    assert main(["evaluate", str(run), "--task", "bandit-k5-n100", "--episodes", "20",
                 "--out", str(short)]) == 0  # fmt: skip
    assert len(json.loads((short / "summary.json").read_text())["per_index"]) == 20
    assert main(["evaluate", str(run), "--task", "bandit-k10-n100"]) == 2  # 10 arms: refused
