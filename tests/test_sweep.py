"""Sweeps: parsing the search, the trials it makes, ranking, and a sweep from the command line."""

import json

import numpy as np
import pytest

from quickstudy import sweep
from quickstudy.cli import main
from quickstudy.errors import ConfigError

TINY = ["--total-steps", "480", "--num-envs", "8", "--num-minibatches", "2", "--eval-tasks", "10"]


def test_a_grid_is_every_combination_in_order():
    grid = [sweep.parse_grid("lr=0.1,0.2"), sweep.parse_grid("--hidden-size=8,16,32")]
    trials = sweep.grid_trials(grid)
    assert len(trials) == 6 and trials[0] == {"--lr": "0.1", "--hidden-size": "8"}
    assert trials[1] == {"--lr": "0.1", "--hidden-size": "16"}  # the last field fastest
    with pytest.raises(ConfigError, match="distinct"):
        sweep.parse_grid("lr=0.1,0.1")
    with pytest.raises(ConfigError, match="twice"):
        sweep.grid_trials([sweep.parse_grid("lr=1"), sweep.parse_grid("lr=2")])


def test_random_search_draws_within_bounds_and_is_seeded():
    space = [
        sweep.parse_sample("lr=loguniform:1e-4:1e-2"),
        sweep.parse_sample("n=int:2:4"),
        sweep.parse_sample("x=uniform:-1:1"),
        sweep.parse_sample("mode=choice:a,b"),
    ]
    trials = sweep.random_trials(space, 200, seed=3)
    assert trials == sweep.random_trials(space, 200, seed=3)
    lr = np.array([float(t["--lr"]) for t in trials])
    assert lr.min() >= 1e-4 * 0.999 and lr.max() <= 1e-2 * 1.001
    assert np.mean(lr < 1e-3) == pytest.approx(0.5, abs=0.12)  # log-uniform: half below 1e-3
    assert {t["--n"] for t in trials} == {"2", "3", "4"}
    assert {t["--mode"] for t in trials} == {"a", "b"}
    assert all(-1 <= float(t["--x"]) <= 1 for t in trials)
    for bad in ("lr=loguniform:0:1", "lr=uniform:2:1", "lr=int:1.5:3", "lr=normal:0:1", "lr"):
        with pytest.raises(ConfigError):
            sweep.parse_sample(bad)


def test_rank_puts_the_best_first_in_the_metrics_direction():
    rows = [
        {"trial": "a", "score": 1.0},
        {"trial": "b", "score": None},
        {"trial": "c", "score": 3.0},
    ]
    assert [r["trial"] for r in sweep.rank(rows, True)] == ["c", "a", "b"]
    ranked = sweep.rank(rows, False)
    assert [(r["trial"], r["rank"]) for r in ranked] == [("a", 1), ("c", 2), ("b", None)]


def test_a_sweep_trains_ranks_and_continues(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", "rl2", "--grid", "lr=0.003,0.0003", "--out", str(out), *TINY]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    ranked = summary["ranked"]
    assert [r["rank"] for r in ranked] == [1, 2] and ranked[0]["score"] >= ranked[1]["score"]
    for r in ranked:  # each trial is the run `quickstudy train` would make with its flags
        config = json.loads((out / r["trial"] / "config.json").read_text())["config"]
        assert config["ppo"]["learning_rate"] == float(r["flags"]["--lr"])
    assert "| 1 | trial-" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(args) == 0  # the same command again: nothing is trained twice
    assert "[1/" not in capsys.readouterr().out
    assert main(["sweep", "rl2", "--grid", "lr=0.1", "--out", str(out), *TINY]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    assert main(["sweep", "rl2", "--grid", "lr=0.1", "--seeds", "2", *TINY]) == 2
    assert main(["sweep", "rl2", "--sample", "lr=uniform:0:1", *TINY]) == 2
    assert "--trials N" in capsys.readouterr().err
