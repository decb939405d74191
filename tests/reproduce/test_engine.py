"""The one reproduction engine on the four tables: cells, caching, resuming, outputs."""

import dataclasses
import json

import numpy as np
import pytest

from quickstudy import runner
from quickstudy.algorithms.rl2 import RL2Config
from quickstudy.cli import main
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.evaluation.tables import not_worse_than_best, render_markdown
from quickstudy.reproduce import TABLES, ReproduceSettings, engine, render, reproduce
from quickstudy.reproduce.render import agrees_with_paper, paired_verdict
from quickstudy.tracking.checkpoint import latest_checkpoint

# Tiny settings: a couple of RL² updates on the 10-pull bandits (128 trials x 10 pulls each).
SMALL = {"trials": 40, "tune_trials": 16}
ONE_UPDATE = 128 * 10


def test_not_worse_than_best_uses_a_one_sided_welch_test():
    rng = np.random.default_rng(0)
    samples = {
        "best": 10.0 + rng.standard_normal(500),
        "close": 9.99 + rng.standard_normal(500),
        "far": 9.0 + rng.standard_normal(500),
    }
    assert not_worse_than_best(samples) == {"best", "close"}
    assert not_worse_than_best({}) == set()


def test_render_markdown_bolds_and_shows_paper_values():
    text = render_markdown(
        "T",
        ["row"],
        ["a", "b", "c"],
        {"a": "A"},
        [{"a": {"mean": 1.234, "se": 0.05, "bold": True}, "b": {"mean": 0.5, "se": 0.1}}],
        [{"a": 1.2, "b": None, "c": 3.0}],
        decimals=2,
    )
    assert "| setting | A | b | c |" in text
    assert "| row | **1.23 ± 0.05** (1.20) | 0.50 ± 0.10 (—) | — (3.00) |" in text


def test_agreement_with_the_paper_uses_the_larger_of_three_se_and_three_percent():
    assert agrees_with_paper(97.1, 0.1, 100.0)  # within 3 %
    assert not agrees_with_paper(96.9, 0.1, 100.0)
    assert agrees_with_paper(96.0, 1.5, 100.0)  # within 3 s.e.
    assert agrees_with_paper(1.0, 0.1, None)


def test_settings_reject_bad_input(tmp_path):
    with pytest.raises(UnknownNameError, match="Valid tables: rl2-bandits"):
        ReproduceSettings("rl2-mazes", tmp_path)
    with pytest.raises(UnknownNameError, match="bandit-k5-n10"):
        ReproduceSettings("rl2-bandits", tmp_path, cells=("bandit-k7-n10",))
    with pytest.raises(UnknownNameError, match="pretrained"):
        ReproduceSettings("maml-sinusoid", tmp_path, methods=("reptile",))
    with pytest.raises(UnknownNameError, match="gittins"):
        ReproduceSettings("rl2-bandits", tmp_path, methods=("maml",))
    with pytest.raises(ConfigError, match="budget"):
        ReproduceSettings("rl2-bandits", tmp_path, budget=-1)
    with pytest.raises(ConfigError, match="budget 0 leaves no method"):
        ReproduceSettings("maml-sinusoid", tmp_path, budget=0)
    with pytest.raises(ConfigError, match="trials"):
        ReproduceSettings("rl2-mdps", tmp_path, trials=1)
    with pytest.raises(ConfigError, match="tune_trials"):
        ReproduceSettings("maml-nav2d", tmp_path, tune_trials=10)


def test_baselines_only_reproduction_writes_outputs_and_reuses_cells(tmp_path):
    settings = ReproduceSettings("rl2-mdps", tmp_path, cells=("mdp-s10-a5-n10",), budget=0, **SMALL)
    records = reproduce(settings)
    assert [r["task"] for r in records] == ["mdp-s10-a5-n10"]
    methods = records[0]["methods"]
    assert set(methods) == {"random", "psrl", "opsrl", "ucrl2", "beb", "epsilon-greedy", "greedy"}
    assert all(m["n"] == 40 for m in methods.values())
    assert methods["ucrl2"]["hyper"]["scaling"] > 0  # tuned on its grid
    assert any(m["bold"] for m in methods.values())
    text = (tmp_path / "table.md").read_text()
    assert "| n=10 |" in text and "(156.2)" in text and "Produced by" in text
    assert "| setting | baselines (s) |" in text  # no trained method: no training columns
    assert json.loads((tmp_path / "table.json").read_text())["cells"][0]["task"] == "mdp-s10-a5-n10"
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert not (tmp_path / "learning.png").exists()  # nothing was trained
    assert "Tuned hyperparameters (on separate trials): n=10: OPSRL" in text
    untuned = [
        {**r, "methods": {k: m for k, m in r["methods"].items() if not m.get("hyper")}}
        for r in records
    ]
    lines = render._score_lines(settings.spec, ["random", "psrl"], untuned)
    assert not any("Tuned" in line for line in lines)  # no empty list of tuned methods
    logs = []
    again = reproduce(settings, log=logs.append)
    assert again[0]["methods"]["psrl"]["mean"] == methods["psrl"]["mean"]
    assert any("reusing" in line for line in logs)
    # elapsed.json is closed on the way out; a killed reproduction's share is counted up to the
    # last file it wrote when the next one starts.
    elapsed = tmp_path / "elapsed.json"
    assert set(json.loads(elapsed.read_text())) == {"seconds"}
    newest = max(tmp_path.rglob("*.md"), key=lambda f: f.stat().st_mtime)
    killed = {"seconds": 5.0, engine.OPEN_SEGMENT: newest.stat().st_mtime - 100.0}
    elapsed.write_text(json.dumps(killed))
    reproduce(settings)
    seconds = json.loads(elapsed.read_text())["seconds"]
    assert 105.0 <= seconds < 105.0 + 60.0


def test_interrupted_rl2_cell_resumes_and_finished_runs_are_reused(tmp_path):
    settings = ReproduceSettings(
        "rl2-bandits",
        tmp_path,
        cells=("bandit-k5-n10",),
        budget=2 * ONE_UPDATE,
        methods=("greedy", "rl2"),
        **SMALL,
    )

    def interrupt_after_one_update(run, start):
        runner.train(run, stop_after_updates=1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reproduce(settings, train_hook=interrupt_after_one_update)
    assert not (tmp_path / "cells" / "bandit-k5-n10.json").exists()

    starts = []

    def record_start(run, start):
        starts.append(start)
        return runner.train(run)

    records = reproduce(settings, train_hook=record_start)
    assert starts == [1]  # resumed from the checkpoint, not from scratch
    rl2 = records[0]["methods"]["rl2"]
    assert rl2["steps"] == 2 * ONE_UPDATE and rl2["n"] == 40
    assert rl2["curve"]["steps"] == [ONE_UPDATE, 2 * ONE_UPDATE]
    assert rl2["curve"]["metric"] == "trial return" and rl2["curve"]["point"] is None
    text = (tmp_path / "table.md").read_text()
    assert "| setting | RL² steps | RL² training (s) | baselines (s) |" in text
    assert f"| n=10, k=5 | {2 * ONE_UPDATE:,} |" in text
    assert (tmp_path / "learning.png").read_bytes()[:4] == b"\x89PNG"
    # A new output directory with the same cache reuses the finished RL² run.
    other = dataclasses.replace(settings, out_dir=tmp_path / "other", cache_dir=tmp_path / "runs")
    logs = []
    again = reproduce(other, log=logs.append, train_hook=record_start)
    assert starts == [1]
    assert any("reusing the finished run" in line for line in logs)
    assert again[0]["methods"]["rl2"]["mean"] == rl2["mean"]


def test_a_killed_training_keeps_its_time_up_to_the_last_checkpoint(tmp_path):
    path, settings = tmp_path / "run", runner.RunSettings()
    config = RL2Config(total_steps=2 * ONE_UPDATE)
    timing = path / "timing.json"

    def one_update_then_stop(run, start):
        assert engine.OPEN_SEGMENT in json.loads(timing.read_text())  # open while training
        runner.train(run, stop_after_updates=1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.train_or_reuse(
            "rl2", "bandit-k5-n10", config, path, settings, print, one_update_then_stop
        )
    assert engine.OPEN_SEGMENT not in json.loads(timing.read_text())  # closed on the way out
    # A process killed outright leaves its segment open and its seconds unrecorded.
    ckpt = latest_checkpoint(path / "checkpoints")
    killed = {"train_seconds": 5.0, engine.OPEN_SEGMENT: ckpt.stat().st_mtime - 100.0}
    timing.write_text(json.dumps(killed))
    _, _, seconds = engine.train_or_reuse("rl2", "bandit-k5-n10", config, path, settings, print)
    assert 105.0 <= seconds < 105.0 + 120.0  # the killed segment to its checkpoint, then this one
    assert json.loads(timing.read_text()) == {"train_seconds": seconds}


def _one_rl2_update(out_dir):
    """The bandit-k5-n10 cell with RL² alone, trained for one update."""
    return ReproduceSettings(
        "rl2-bandits",
        out_dir,
        cells=("bandit-k5-n10",),
        budget=ONE_UPDATE,
        methods=("rl2",),
        **SMALL,
    )


def test_a_changed_preset_recomputes_the_cell_in_a_new_run(tmp_path, monkeypatch):
    settings = _one_rl2_update(tmp_path)
    first = reproduce(settings)[0]
    table = TABLES["rl2-bandits"]
    rl2 = dataclasses.replace(table.methods["rl2"], overrides={"ppo": {"ent_coef": 0.05}})
    changed = dataclasses.replace(table, methods={**table.methods, "rl2": rl2})
    monkeypatch.setitem(TABLES, "rl2-bandits", changed)
    logs = []
    second = reproduce(settings, log=logs.append)[0]
    assert not any("done earlier" in line for line in logs)
    assert second["configs"]["rl2"]["ppo"]["ent_coef"] == 0.05
    assert first["configs"]["rl2"]["ppo"]["ent_coef"] == 0.01
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(runs) == 2 and all(
        r.startswith(f"rl2-bandit-k5-n10-steps{ONE_UPDATE}-seed0-") for r in runs
    )
    assert second["methods"]["rl2"]["run_dir"] != first["methods"]["rl2"]["run_dir"]
    # Back on the original preset the cell is computed again, from its finished run.
    monkeypatch.undo()
    logs.clear()
    reproduce(settings, log=logs.append)
    assert any("reusing the finished run" in line for line in logs)


def test_a_field_added_to_the_config_keeps_earlier_cells_and_runs(tmp_path):
    settings = _one_rl2_update(tmp_path)
    first = reproduce(settings)[0]
    # Rewrite the cell and its run as a version without PPOConfig.split_networks left them:
    # the field absent from both records, and the run under that version's checksum.
    cell_path = tmp_path / "cells" / "bandit-k5-n10.json"
    cell = json.loads(cell_path.read_text())
    del cell["configs"]["rl2"]["ppo"]["split_networks"]
    cell_path.write_text(json.dumps(cell))
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    record = json.loads((run_dir / "config.json").read_text())
    del record["config"]["ppo"]["split_networks"]
    (run_dir / "config.json").write_text(json.dumps(record))
    older = run_dir.with_name(run_dir.name[: -len("0123abcd")] + "0123abcd")
    run_dir.rename(older)

    logs = []
    reproduce(settings, log=logs.append)
    assert any("done earlier" in line for line in logs)
    cell_path.unlink()
    logs.clear()
    again = reproduce(settings, log=logs.append)[0]
    assert any(f"reusing the finished run {older}" in line for line in logs)
    assert [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] == [older]
    assert again["methods"]["rl2"]["mean"] == first["methods"]["rl2"]["mean"]
    # A changed value is still another config: the cell is computed again.
    cell = json.loads(cell_path.read_text())
    cell["configs"]["rl2"]["ppo"]["ent_coef"] = 0.5
    cell_path.write_text(json.dumps(cell))
    logs.clear()
    reproduce(settings, log=logs.append)
    assert not any("done earlier" in line for line in logs)


def test_the_steps_column_shows_each_runs_own_steps_and_a_run_shared_with_another_cell():
    record = {"task": "bandit-k5-n500", "budget": 6_000_000}
    assert render._steps_entry(record, None) == "—"
    own = {"steps": 9_996_800, "train_task": "bandit-k5-n500"}
    assert render._steps_entry(record, own) == "9,996,800"
    shared = {"steps": 9_996_800, "train_task": "bandit-k5-n100"}
    assert render._steps_entry(record, shared) == "9,996,800 (the run of bandit-k5-n100)"


def test_sinusoid_reproduction_writes_outputs_and_reuses_everything(tmp_path):
    settings = ReproduceSettings(
        "maml-sinusoid",
        tmp_path,
        cells=("sinusoid-k5",),
        budget=20,
        trials=12,
        methods=("maml", "oracle"),
    )
    records = reproduce(settings)
    methods = records[0]["methods"]
    assert list(methods) == ["maml", "oracle"]
    assert len(methods["maml"]["per_step"]) == 11
    assert methods["maml"]["per_step"][0]["n"] == 12
    assert len(methods["maml"]["curve"]["steps"]) == 20
    # Training measures MAML after its inner step and the oracle without one: the learning
    # curves draw the published value of that point.
    assert methods["maml"]["curve"]["point"] == 1 and methods["oracle"]["curve"]["point"] == 0
    table = (tmp_path / "table.md").read_text()
    assert "| MAML |" in table and "(1.13)" in table and "| oracle |" in table
    assert "| 5-shot, 1 step(s) | ≤ 1.1 |" in table
    assert "- commit:" in table and "wall_clock_seconds" in table
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    saved = np.load(tmp_path / "cells" / "sinusoid-k5.npz")
    assert saved["maml"].shape == (12, 11)
    logs = []
    again = reproduce(settings, log=logs.append)
    assert any("reusing" in line for line in logs)
    assert again[0]["methods"]["maml"]["per_step"] == methods["maml"]["per_step"]
    # A lost cell file reuses the finished training runs and recomputes the same meta-test.
    (tmp_path / "cells" / "sinusoid-k5.json").unlink()
    logs.clear()
    third = reproduce(settings, log=logs.append)
    assert sum("reusing the finished run" in line for line in logs) == 2
    assert third[0]["methods"]["maml"]["per_step"] == methods["maml"]["per_step"]
    data = json.loads((tmp_path / "table.json").read_text())
    assert data["cells"][0]["budget"] == 20


def test_nav2d_reproduction_with_a_tiny_budget(tmp_path):
    settings = ReproduceSettings(
        "maml-nav2d", tmp_path, budget=4000, trials=3, methods=("pretrained", "random")
    )
    records = reproduce(settings)
    methods = records[0]["methods"]
    assert list(methods) == ["pretrained", "random"]
    assert len(methods["random"]["per_step"]) == 4 and methods["random"]["train_seconds"] == 0
    table = (tmp_path / "table.md").read_text()
    assert "| random init |" in table and "(-57.96)" in table
    assert np.load(tmp_path / "cells" / "nav2d.npz")["pretrained"].shape == (3, 4)


def test_cli_reproduce_and_bad_flags(tmp_path, capsys):
    out = tmp_path / "t"
    args = ["reproduce", "rl2-bandits", "--cells", "bandit-k5-n10", "--budget", "0"]
    assert main([*args, "--trials", "40", "--tune-trials", "16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "n=10, k=5" in printed and "Gittins" in printed
    assert (out / "table.md").exists()
    assert main(["reproduce", "rl2-mdps", "--cells", "mdp-s10-a5-n11", "--out", str(out)]) == 2
    assert "mdp-s10-a5-n10" in capsys.readouterr().err
    assert main(["reproduce", "maml-sinusoid", "--methods", "reptile"]) == 2
    assert "Valid methods" in capsys.readouterr().err
    assert main(["reproduce", "maml-nothing"]) == 2
    assert "maml-sinusoid" in capsys.readouterr().err


def test_locomotion_reproduction_runs_on_host_stepped_mujoco_tasks(tmp_path):
    settings = ReproduceSettings(
        "maml-locomotion",
        tmp_path,
        cells=("maml-cheetah-dir",),
        budget=16_000,
        trials=2,
        methods=("random", "oracle"),
    )
    records = reproduce(settings)
    methods = records[0]["methods"]
    assert list(methods) == ["random", "oracle"]
    assert len(methods["random"]["per_step"]) == 4  # k = 0..3
    table = (tmp_path / "table.md").read_text()
    assert "cheetah forward/backward" in table


def _tiny_slopes(monkeypatch, table_name="slopes"):
    """A slopes table on two cells with one tiny update per method."""
    table = TABLES[table_name]
    tiny = {
        "rl2": {"num_envs": 4},
        "maml": {"meta_batch_size": 2, "episodes_per_task": 2, "test_episodes": 2},
    }
    tiny["non-adaptive"] = tiny["oracle"] = tiny["maml"]
    tiny["pearl"] = {
        "num_train_tasks": 2,
        "num_initial_steps": 200,
        "num_steps_prior": 200,
        "num_extra_rl_steps_posterior": 0,
        "num_tasks_sample": 1,
        "num_train_steps_per_itr": 2,
        "meta_batch": 2,
        "batch_size": 8,
        "embedding_batch_size": 8,
        "replay_size": 2000,
        "sac": {"hidden_sizes": (8,)},
        "encoder": {"encoder_hidden": (8,)},
    }
    tiny["sac-oracle"] = tiny["pearl"]  # on top of the method's own variant="oracle"
    budget = {"pearl": 600, "sac-oracle": 600}  # the initial collection (2 x 200) and one iteration
    methods = {
        name: dataclasses.replace(
            m, overrides={**m.overrides, **tiny[name]}, budget=budget.get(name, 1600)
        )
        for name, m in table.methods.items()
    }
    monkeypatch.setitem(TABLES, table_name, dataclasses.replace(table, methods=methods))


def test_slopes_train_once_on_level_ground_and_test_on_each_slope(tmp_path, monkeypatch):
    _tiny_slopes(monkeypatch)
    cells = ("cheetah-slope", "cheetah-slope-up10")
    settings = ReproduceSettings("slopes", tmp_path, cells=cells, trials=2)
    records = reproduce(settings)
    up = records[1]["methods"]
    assert records[1]["x"] == 10.0
    assert list(up) == ["rl2", "maml", "non-adaptive", "pearl", "oracle", "sac-oracle"]
    assert up["maml"]["train_task"] == "cheetah-slope"  # trained on level ground
    assert up["oracle"]["train_task"] == "cheetah-slope-up10"  # trained on the slope
    assert up["sac-oracle"]["train_task"] == "cheetah-slope-up10"
    assert up["maml"]["point"] == 2 and up["non-adaptive"]["point"] == 0  # k = 2; no adaptation
    assert up["rl2"]["point"] == 1  # the second episode of the trial
    assert up["pearl"]["point"] == 2  # the third episode, after two with the prior's z
    assert up["maml"]["run_dir"] == records[0]["methods"]["maml"]["run_dir"]  # one shared run
    runs = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert runs == [
        "maml-cheetah-slope-steps1600-seed0",
        "non-adaptive-cheetah-slope-steps1600-seed0",
        "oracle-cheetah-slope-steps1600-seed0",
        "oracle-cheetah-slope-up10-steps1600-seed0",
        "pearl-cheetah-slope-steps600-seed0",
        "rl2-cheetah-slope-steps1600-seed0",
        "sac-oracle-cheetah-slope-steps600-seed0",
        "sac-oracle-cheetah-slope-up10-steps600-seed0",
    ]
    shared = tmp_path / "runs" / up["maml"]["run_dir"].rsplit("/", 1)[1]
    assert (shared / "eval" / "summary.json").exists()  # tested on its own (level) tasks
    tested = json.loads((shared / "eval-cheetah-slope-up10" / "summary.json").read_text())
    assert tested["test_task"] == "cheetah-slope-up10"
    table = (tmp_path / "table.md").read_text()
    assert "| 10° uphill |" in table and "MAML-RL above non-adaptive" in table
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert (tmp_path / "learning.png").stat().st_size > 0


def test_the_ant_slopes_table_trains_the_ant_on_level_ground_and_tests_it_downhill(
    tmp_path, monkeypatch
):
    assert [c.x for c in TABLES["slopes-ant"].cells] == [c.x for c in TABLES["slopes"].cells]
    assert TABLES["slopes-ant"].methods == TABLES["slopes"].methods
    _tiny_slopes(monkeypatch, "slopes-ant")
    cells = ("ant-slope", "ant-slope-down15")
    methods = ("rl2", "maml", "non-adaptive", "oracle")
    settings = ReproduceSettings("slopes-ant", tmp_path, cells=cells, methods=methods, trials=2)
    records = {r["task"]: r for r in reproduce(settings)}
    down = records["ant-slope-down15"]["methods"]
    assert records["ant-slope-down15"]["x"] == -15.0
    assert down["rl2"]["train_task"] == "ant-slope"  # trained on level ground
    assert down["oracle"]["train_task"] == "ant-slope-down15"
    tested = json.loads(
        (tmp_path / "runs" / down["rl2"]["run_dir"].rsplit("/", 1)[1])
        .joinpath("eval-ant-slope-down15", "summary.json")
        .read_text()
    )
    assert tested["test_task"] == "ant-slope-down15"
    assert "| 15° downhill |" in (tmp_path / "table.md").read_text()


def test_a_run_another_worker_trains_is_deferred_not_shared_mid_training(tmp_path):
    import fcntl

    from quickstudy.reproduce.engine import RunBusyError, train_or_reuse

    path = tmp_path / "runs" / "shared"
    path.parent.mkdir()
    with open(path.with_name("shared.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another worker is training it
        with pytest.raises(RunBusyError):
            train_or_reuse("rl2", "bandit-k5-n10", None, path, None, print, wait=False)
    assert not path.exists()  # nothing was created while it was busy


def test_pearl_figure_meta_tests_along_training_and_states_sample_efficiency(tmp_path, monkeypatch):
    table = TABLES["pearl"]
    tiny = {
        "pearl": {
            "num_train_steps_per_itr": 2,
            "meta_batch": 2,
            "batch_size": 8,
            "embedding_batch_size": 8,
            "replay_size": 80 * 1000,
            "sac": {"hidden_sizes": (8,)},
            "encoder": {"encoder_hidden": (8,)},
        },
        "rl2": {"num_envs": 4},
        "maml": {"meta_batch_size": 2, "episodes_per_task": 2, "test_episodes": 2},
        "rsac": {
            "num_envs": 4,
            "memory_size": 8,
            "train_ratio": 0.01,
            "batch_segments": 2,
            "batch_steps": 4,
            "replay_size": 600,
            "sac": {"hidden_sizes": (8,)},
        },
    }
    methods = {n: dataclasses.replace(m, overrides=tiny[n]) for n, m in table.methods.items()}
    budgets = {"pearl": 16_000 + 4 * 2000, "rl2": 4 * 4 * 60, "maml": 4 * 2 * 2 * 2 * 20}
    budgets["rsac"] = 4 * 4 * 60
    cells = tuple(dataclasses.replace(c, budgets=budgets) for c in table.cells)
    monkeypatch.setitem(TABLES, "pearl", dataclasses.replace(table, methods=methods, cells=cells))
    records = reproduce(ReproduceSettings("pearl", tmp_path, cells=("point-robot",), trials=3))
    res = records[0]["methods"]
    assert res["pearl"]["steps"] == 24_000 and res["rl2"]["steps"] == 960
    for name, points in (("pearl", 3), ("rl2", 3), ("maml", 4), ("rsac", 3)):
        curve = res[name]["curve"]
        assert curve["meta_test"] and res[name]["point"] == points - 1
        # meta-tested before training and after every update: the curve ends at the budget
        assert curve["steps"][-1] == res[name]["steps"] and len(curve["steps"]) == 5
        assert curve["values"][-1] == pytest.approx(res[name]["mean"])
    assert res["pearl"]["curve"]["steps"][0] == 16_000  # after the initial collection
    text = (tmp_path / "table.md").read_text()
    assert "Sample efficiency" in text and "| point robot | RL² |" in text
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_maze_table_reports_steps_per_episode_and_trains_on_small_mazes_only(tmp_path):
    settings = ReproduceSettings(
        "snail-mazes-symbolic", tmp_path, budget=8000, trials=4, methods=("random", "rl2", "erl2")
    )
    small, large = reproduce(settings)
    assert small["methods"]["rl2"]["run_dir"] == large["methods"]["rl2"]["run_dir"]
    assert large["methods"]["erl2"]["train_task"] == "maze-small-symbolic"
    steps = np.load(tmp_path / "cells" / "maze-large-symbolic.npz")["random"]
    assert steps.shape == (4, 2) and steps.max() <= 500 and steps.min() >= 1
    assert len(small["methods"]["random"]["per_step"]) == 2  # episodes 1 and 2
    table = (tmp_path / "table.md").read_text()
    assert "| method | episode 1 | episode 2 |" in table and "(188.6)" in table
    assert "(105.9)" not in table  # SNAIL was not run


def test_seeds_average_each_trained_entry_and_give_its_spread(tmp_path):
    settings = ReproduceSettings(
        "rl2-bandits",
        tmp_path,
        cells=("bandit-k5-n10", "bandit-k5-n100"),
        budget=ONE_UPDATE,
        methods=("random", "gittins", "rl2"),
        seeds=2,
        seed=4,
        **SMALL,
    )
    records = reproduce(settings)
    for r in records:
        rl2 = r["methods"]["rl2"]
        seeds = rl2["seeds"]
        assert seeds["seeds"] == [4, 5] and len(seeds["per_seed"]) == 2
        assert len(set(rl2["run_dirs"])) == 2 and all("seed4" in d or "seed5" in d
                                                       for d in rl2["run_dirs"])  # fmt: skip
        assert rl2["mean"] == pytest.approx(np.mean(seeds["per_seed"]))
        assert (
            min(seeds["per_seed"]) <= seeds["ci_low"] <= seeds["ci_high"] <= max(seeds["per_seed"])
        )
        assert "seeds" not in r["methods"]["gittins"]  # baselines are not re-run per seed
        assert [c["steps"] for c in rl2["seed_curves"]] == [rl2["curve"]["steps"]] * 2
    from quickstudy.reproduce.render import (
        _across_seeds,
        _band_note,
        _over_seeds,
        _points_across_seeds,
    )

    rl2 = records[0]["methods"]["rl2"]
    bar = _across_seeds(rl2)  # figure.png's error bar of a multi-seed entry: across seeds
    assert (bar["mean"], bar["ci95_low"], bar["ci95_high"]) == (
        rl2["seeds"]["mean"],
        rl2["seeds"]["ci_low"],
        rl2["seeds"]["ci_high"],
    )
    assert _across_seeds(records[0]["methods"]["gittins"]) is None  # over tasks, as before
    per_point = _points_across_seeds(rl2)
    assert len(per_point) == len(rl2["seeds"]["per_seed_points"][0]) == 10  # one per pull
    assert sum(p["mean"] for p in per_point) == pytest.approx(rl2["seeds"]["mean"])
    assert all(p["ci95_low"] <= p["mean"] <= p["ci95_high"] for p in per_point)
    assert "across 2 seeds" in _band_note(records)
    steps, mean, low, high = _over_seeds(records[0]["methods"]["rl2"]["seed_curves"])
    assert all(lo <= m <= hi for m, lo, hi in zip(mean, low, high, strict=True))
    assert (tmp_path / "learning.png").stat().st_size > 0
    text = (tmp_path / "table.md").read_text()
    assert "Trained methods over 2 seeds" in text
    assert "RL² over the 2 cells, normalized to Random = 0 and Gittins = 1" in text
    with pytest.raises(ConfigError, match="seeds"):
        ReproduceSettings("rl2-bandits", tmp_path, seeds=0)


def test_adaptation_figure_of_several_seeds_draws_the_band_across_seeds(tmp_path, monkeypatch):
    from quickstudy.reproduce import render

    drawn = {}
    monkeypatch.setattr(
        render,
        "plot_adaptation_panels",
        lambda panels, path, **kw: drawn.update(panels=panels, **kw),
    )
    settings = ReproduceSettings(
        "maml-sinusoid", tmp_path, cells=("sinusoid-k5",), budget=20, trials=12,
        methods=("maml",), seeds=2,
    )  # fmt: skip
    maml = reproduce(settings)[0]["methods"]["maml"]
    ((_, curves),) = drawn["panels"]
    per_seed = np.array(maml["seeds"]["per_seed_points"])  # [seeds, points]
    assert per_seed.shape == (2, 11)
    band = curves["MAML"]
    np.testing.assert_allclose([p["mean"] for p in band], per_seed.mean(axis=0), rtol=1e-6)
    assert all(p["ci95_low"] <= p["mean"] <= p["ci95_high"] for p in band)
    assert "across 2 seeds" in drawn["title"]


def test_a_cell_runs_only_its_own_methods(tmp_path, monkeypatch):
    import dataclasses

    from quickstudy.reproduce import engine

    spec = engine.TABLES["rl2-bandits"]
    only = dataclasses.replace(spec.cell("bandit-k5-n10"), methods=("random",))
    monkeypatch.setitem(engine.TABLES, "rl2-bandits", dataclasses.replace(spec, cells=(only,)))
    settings = ReproduceSettings(
        "rl2-bandits", tmp_path, budget=ONE_UPDATE, methods=("random", "rl2"), **SMALL
    )
    assert engine.train_runs(settings) == []
    (record,) = reproduce(settings)
    assert list(record["methods"]) == ["random"] == list(record["configs"])
    assert not (tmp_path / "runs").exists()  # RL² never trained on this cell
    row = next(line for line in (tmp_path / "table.md").read_text().splitlines() if "n=10" in line)
    assert row.rstrip().endswith("| — (6.70) |")  # its RL² entry: none, beside the paper's
    pearl = engine.TABLES["pearl"]
    assert (
        pearl.cell("hopper-params").methods == ("pearl",) and not pearl.cell("cheetah-vel").methods
    )
    for table in engine.TABLES.values():
        for cell in table.cells:
            assert set(cell.methods) <= set(table.methods), (table.name, cell.task)


@pytest.mark.parametrize(
    ("mean", "verdict"), [(2.1, "yes"), (1.9, "tie"), (-1.9, "tie"), (-2.1, "no")]
)
def test_a_paired_check_says_yes_or_no_only_beyond_two_standard_errors(mean, verdict):
    assert paired_verdict({"mean": mean, "se": 1.0}, 1) == f"{verdict} ({mean:+.1f} ± 1.0)"
    assert paired_verdict(None, 1) == "—"
