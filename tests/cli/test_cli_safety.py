"""Run directories that were truncated, edited, corrupted or are in use: exit 2, nothing lost."""

import json
import os

import pytest

from quickstudy.cli import main
from quickstudy.tracking import RunLock, list_checkpoints

TINY = ["--total-steps", "960", "--num-envs", "8", "--hidden-size", "16", "--minibatches", "2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 12-update RL² run with checkpoints at updates 4, 8 and 12."""
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    args = ["train", "rl2", "--run-dir", str(run_dir), "--chunk-updates", "2"]
    assert main([*args, "--checkpoint-every", "2", "--eval-tasks", "10", *TINY]) == 0
    return run_dir


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _files(run_dir):
    return {
        p.relative_to(run_dir): p.read_bytes()
        for p in run_dir.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def test_truncated_metrics_are_refused_with_the_checkpoint_to_resume_from(
    finished, tmp_path, capsys
):
    run_dir = _copy(finished, tmp_path / "run")
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "metrics.jsonl").write_text("".join(lines[:6]))  # rows of updates 1..6 only
    before = _files(run_dir)
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "no rows for updates 7.." in err and "--from-update 4" in err
    assert _files(run_dir) == before
    assert main(["resume", str(run_dir), "--from-update", "4"]) == 0
    assert (run_dir / "metrics.jsonl").read_text() == (finished / "metrics.jsonl").read_text()
    assert list((run_dir / "checkpoints").glob("superseded-*/ckpt_000000012.msgpack"))


def test_corrupt_latest_checkpoint_names_the_older_valid_ones(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path / "run")
    latest = list_checkpoints(run_dir / "checkpoints")[-1][1]
    latest.write_bytes(latest.read_bytes()[:-10])
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert latest.name in err and "update): 8, 4, 0" in err and "--from-update 8" in err


def test_edited_config_errors_name_the_file(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path / "run")
    record = json.loads((run_dir / "config.json").read_text())
    for field, value, message in [
        ("total_steps", 480, "checkpoint is at update 12"),  # below the latest checkpoint
        ("num_envs", "many", "num_envs"),
        ("hidden_size", float("nan"), "hidden_size"),
    ]:
        edited = {**record, "config": {**record["config"], field: value}}
        (run_dir / "config.json").write_text(json.dumps(edited))
        assert main(["resume", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert "config.json" in err and message in err, err
    (run_dir / "config.json").write_text('{"algo": "rl2", "task": ')
    assert main(["evaluate", str(run_dir)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_a_locked_run_is_refused(finished, capsys):
    with RunLock(finished):
        assert main(["resume", str(finished)]) == 2
    assert f"in use by PID {os.getpid()}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--eval-tasks", "-1"], "--eval-tasks"),
        (["--seed", "-1"], "--seed"),
        (["--episodes", "1e9"], "episodes"),
        (["--test-steps", "2"], "--episodes"),
        (["--out", "{run}/config.json"], "is a file"),
        (["--deterministic"], "--deterministic: only Meta-World"),
        (["--num-evals", "3", "--evaluation-episodes", "1"], "--num-evals, --evaluation-episodes"),
    ],
)
def test_bad_evaluate_arguments(finished, args, message, capsys):
    args = [a.format(run=finished) for a in args]
    before = _files(finished)
    assert main(["evaluate", str(finished), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _files(finished) == before


def test_run_dir_naming_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("keep me")
    assert main(["train", "rl2", "--run-dir", str(path), *TINY]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert path.read_text() == "keep me"


def test_dry_run_reports_rounding_and_writes_nothing(tmp_path, capsys):
    args = ["train", "rl2", "--total-steps", "600000", "--runs-root", str(tmp_path), "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "468 updates x 1,280 env steps = 599,040" in out and "not a multiple" in out
    assert not any(tmp_path.iterdir())


def test_devices_with_a_uniform_ppo_shuffle_point_to_strided_minibatches(tmp_path, capsys):
    args = ["train", "rl2", "--devices", "2", "--runs-root", str(tmp_path), "--dry-run"]
    assert main(args) == 0
    assert "--strided-minibatches" in capsys.readouterr().out
    assert main([*args, "--strided-minibatches"]) == 0
    assert "--strided-minibatches" not in capsys.readouterr().out
    assert main([*args[:2], *args[4:]]) == 0  # one device: no note
    assert "--strided-minibatches" not in capsys.readouterr().out
