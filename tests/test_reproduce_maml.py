import dataclasses
import json

import numpy as np
import pytest

from quickstudy import reproduce_maml as reproduce_maml_module
from quickstudy.cli import main
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.reproduce_maml import MAMLSettings, reproduce_maml

SMALL = {"budget": 20, "trials": 12, "methods": ("maml", "oracle")}


def test_settings_reject_bad_input(tmp_path):
    with pytest.raises(UnknownNameError, match="maml-nav2d"):
        MAMLSettings("maml-omniglot", tmp_path)
    with pytest.raises(UnknownNameError, match="sinusoid-k10"):
        MAMLSettings("maml-sinusoid", tmp_path, cells=("sinusoid-k7",))
    with pytest.raises(UnknownNameError, match="pretrained"):
        MAMLSettings("maml-sinusoid", tmp_path, methods=("reptile",))
    with pytest.raises(UnknownNameError, match="oracle"):
        MAMLSettings("maml-nav2d", tmp_path, methods=("meta-sgd",))
    with pytest.raises(ConfigError, match="budget"):
        MAMLSettings("maml-sinusoid", tmp_path, budget=0)
    with pytest.raises(ConfigError, match="trials"):
        MAMLSettings("maml-sinusoid", tmp_path, trials=1)


def test_sinusoid_reproduction_writes_outputs_and_reuses_everything(tmp_path):
    settings = MAMLSettings("maml-sinusoid", tmp_path, cells=("sinusoid-k5",), **SMALL)
    records = reproduce_maml(settings)
    methods = records[0]["methods"]
    assert list(methods) == ["maml", "oracle"]
    assert len(methods["maml"]["per_step"]) == 11
    assert methods["maml"]["per_step"][0]["n"] == 12
    table = (tmp_path / "table.md").read_text()
    assert "| MAML |" in table and "(1.13)" in table and "| oracle |" in table
    assert "| 5-shot, 1 step(s) | ≤ 1.1 |" in table
    assert "- commit:" in table and "wall_clock_seconds" in table
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"
    saved = np.load(tmp_path / "cells" / "sinusoid-k5.npz")
    assert saved["maml"].shape == (12, 11)
    logs = []
    again = reproduce_maml(settings, log=logs.append)
    assert any("reusing" in line for line in logs)
    assert again[0]["methods"]["maml"]["per_step"] == methods["maml"]["per_step"]
    # A changed cell reuses the finished training runs and recomputes the same meta-test.
    (tmp_path / "cells" / "sinusoid-k5.json").unlink()
    logs.clear()
    third = reproduce_maml(settings, log=logs.append)
    assert sum("reusing the finished run" in line for line in logs) == 2
    assert third[0]["methods"]["maml"]["per_step"] == methods["maml"]["per_step"]
    data = json.loads((tmp_path / "table.json").read_text())
    assert data["cells"][0]["budget"] == 20


def test_a_changed_maml_preset_recomputes_the_cell_in_a_new_run(tmp_path, monkeypatch):
    settings = MAMLSettings(
        "maml-sinusoid", tmp_path, cells=("sinusoid-k5",), budget=5, trials=4, methods=("maml",)
    )
    first = reproduce_maml(settings)[0]
    table = reproduce_maml_module.TABLES["maml-sinusoid"]
    changed = dataclasses.replace(table, base={**table.base, "inner_lr": 0.02})
    monkeypatch.setitem(reproduce_maml_module.TABLES, "maml-sinusoid", changed)
    logs = []
    second = reproduce_maml(settings, log=logs.append)[0]
    assert not any("done earlier" in line for line in logs)
    assert second["configs"]["maml"]["inner_lr"] == 0.02
    assert first["configs"]["maml"]["inner_lr"] != 0.02
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.startswith("maml-sinusoid-k5-budget5-seed0-") for r in runs)
    assert second["methods"]["maml"]["run_dir"] != first["methods"]["maml"]["run_dir"]
    # Back on the original preset the cell is computed again, from its finished run.
    monkeypatch.undo()
    logs.clear()
    reproduce_maml(settings, log=logs.append)
    assert any("reusing the finished run" in line for line in logs)


def test_cli_reproduce_maml_sinusoid_and_bad_flags(tmp_path, capsys):
    args = ["reproduce", "maml-sinusoid", "--out", str(tmp_path), "--cells", "sinusoid-k10"]
    assert main([*args, "--budget", "10", "--trials", "5", "--methods", "pretrained"]) == 0
    assert "| pretrained |" in (tmp_path / "table.md").read_text()
    assert main([*args, "--methods", "reptile"]) == 2
    assert "Valid methods" in capsys.readouterr().err
    assert main(["reproduce", "rl2-bandits", "--methods", "maml"]) == 2
    assert "MAML tables only" in capsys.readouterr().err
    assert main(["reproduce", "maml-nothing"]) == 2
    assert "maml-sinusoid" in capsys.readouterr().err


def test_nav2d_reproduction_with_a_tiny_budget(tmp_path):
    settings = MAMLSettings(
        "maml-nav2d", tmp_path, budget=4000, trials=3, methods=("pretrained", "random")
    )
    records = reproduce_maml(settings)
    methods = records[0]["methods"]
    assert list(methods) == ["pretrained", "random"]
    assert len(methods["random"]["per_step"]) == 4 and methods["random"]["train_seconds"] == 0
    table = (tmp_path / "table.md").read_text()
    assert "| random init |" in table and "(-57.96)" in table
    assert np.load(tmp_path / "cells" / "nav2d.npz")["pretrained"].shape == (3, 4)
