import json

import jax
import numpy as np

from quickstudy import runner
from quickstudy.algorithms.maml import MAMLConfig
from quickstudy.cli import main
from quickstudy.tracking import latest_checkpoint, load_checkpoint

TINY = ["--total-steps", "6", "--meta-batch-size", "4", "--hidden-sizes", "8", "8"]


def _leaves(state):
    return [
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )
        for x in jax.tree.leaves(state)
    ]


def test_train_maml_writes_a_complete_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "maml", "--run-dir", str(run_dir), "--chunk-updates", "2", *TINY]
    assert main([*args, "--test-steps", "3", "--eval-tasks", "20"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "maml" and config["task"] == "sinusoid-k10"
    assert config["derived"] == {"num_updates": 6, "steps_per_update": 1}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["metric"] == "mse" and summary["num_tasks"] == 20
    assert summary["xs"] == [0, 1, 2, 3] and len(summary["per_index"]) == 4
    assert (run_dir / "eval" / "adaptation.png").stat().st_size > 1000
    assert "query mse" in capsys.readouterr().out
    assert main(["evaluate", str(run_dir), "--test-steps", "5", "--eval-tasks", "7"]) == 0
    out = run_dir / "evaluations" / "update000000006-tasks7-steps5-seed0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["xs"] == list(range(6)) and summary["num_tasks"] == 7


def test_maml_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    cfg = MAMLConfig(total_steps=7, meta_batch_size=4, hidden_sizes=(8,), test_steps=1)
    settings = runner.RunSettings(seed=2, chunk_updates=3, checkpoint_every=1, eval_tasks=5)
    full = runner.create_run("maml", "sinusoid-k5", cfg, settings, run_dir=tmp_path / "full")
    final_full = runner.train(full)
    part = runner.create_run("maml", "sinusoid-k5", cfg, settings, run_dir=tmp_path / "part")
    runner.train(part, stop_after_updates=4)
    assert main(["resume", str(tmp_path / "part")]) == 0
    ckpt = latest_checkpoint(tmp_path / "part" / "checkpoints")
    final_part = load_checkpoint(ckpt, runner.initial_state(runner.open_run(tmp_path / "part")))
    assert int(final_part.update) == 7
    for a, b in zip(_leaves(final_full), _leaves(final_part), strict=True):
        np.testing.assert_array_equal(a, b)


def test_algorithm_and_task_kinds_must_match(tmp_path, capsys):
    assert main(["train", "maml", "--task", "nav2d", "--run-dir", str(tmp_path / "a")]) == 2
    assert "few-shot" in capsys.readouterr().err
    assert main(["train", "rl2", "--task", "sinusoid-k5", "--run-dir", str(tmp_path / "b")]) == 2
    assert "supervised" in capsys.readouterr().err
    assert main(["train", "maml", "--task", "sinusoid-k7", "--run-dir", str(tmp_path / "c")]) == 2
    assert "sinusoid-k5" in capsys.readouterr().err  # lists the valid names
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_maml_config_value_names_the_field(tmp_path, capsys):
    assert main(["train", "maml", "--inner-lr", "-1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--inner-lr" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_train_maml_rl_writes_a_run_dir_and_meta_tests(tmp_path, capsys):
    run_dir = tmp_path / "rl"
    args = ["train", "maml-rl", "--run-dir", str(run_dir), "--meta-batch-size", "2"]
    args += ["--episodes-per-task", "2", "--hidden-sizes", "8", "--total-steps", "800"]
    assert main([*args, "--test-episodes", "3", "--test-steps", "1", "--eval-tasks", "4"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["derived"] == {"num_updates": 1, "steps_per_update": 800}
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["metric"] == "return" and summary["num_tasks"] == 4 and summary["xs"] == [0, 1]
    assert len(summary["success_per_index"]) == 2
    assert "return (4 tasks)" in capsys.readouterr().out
    assert np.load(run_dir / "eval" / "results.npz")["values"].shape == (4, 2)


def test_fewshot_task_defaults_apply_unless_given(tmp_path, capsys):
    run_dir = tmp_path / "glyphs"
    args = ["train", "maml", "--task", "fewshot-glyphs-5way-1shot", "--run-dir", str(run_dir)]
    args += ["--total-steps", "2", "--meta-batch-size", "2", "--conv-channels", "4"]
    assert main([*args, "--eval-tasks", "3", "--test-steps", "1", "--chunk-updates", "2"]) == 0
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["inner_lr"] == 0.4 and config["test_query_points"] == 15  # task defaults
    assert config["total_steps"] == 2 and config["meta_batch_size"] == 2  # flags win
    assert config["test_steps"] == 1
    out = capsys.readouterr().out
    assert "--inner-lr 0.4" in out and "query accuracy" in out
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["metric"] == "accuracy" and summary["num_tasks"] == 3
    assert summary["higher_is_better"] and "success_per_index" not in summary
    results = np.load(run_dir / "eval" / "results.npz")
    assert results["losses"].shape == results["values"].shape == (3, 2)
    assert ((results["values"] >= 0) & (results["values"] <= 1)).all()  # accuracies
    assert np.isfinite(results["losses"]).all()
