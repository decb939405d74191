import datetime
import json
import re

import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.errors import ConfigError
from quickstudy.tracking import make_run_dir, read_json, write_json_atomic


def test_make_run_dir_generated_name(tmp_path):
    path = make_run_dir(tmp_path / "runs", "rl2", "bandit-k10-n100")
    assert path.parent == tmp_path / "runs"
    assert re.fullmatch(r"rl2-bandit-k10-n100-\d{8}-\d{6}", path.name)
    assert (path / "checkpoints").is_dir()
    assert (path / "eval").is_dir()


def test_make_run_dir_same_second_gets_new_dir(tmp_path):
    now = datetime.datetime(2024, 5, 6, 7, 8, 9)
    first = make_run_dir(tmp_path, "maml", "nav", now=now)
    second = make_run_dir(tmp_path, "maml", "nav", now=now)
    assert first.name == "maml-nav-20240506-070809"
    assert second.name == "maml-nav-20240506-070809-1"


def test_make_run_dir_explicit_existing(tmp_path):
    explicit = tmp_path / "my-run"
    explicit.mkdir()
    (explicit / "config.json").write_text("{}")
    path = make_run_dir(tmp_path / "runs", "rl2", "bandit", run_dir=explicit)
    assert path == explicit
    assert (path / "config.json").read_text() == "{}"
    assert (path / "checkpoints").is_dir() and (path / "eval").is_dir()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("bad", ["", "a/b", ".."])
def test_make_run_dir_bad_name(tmp_path, bad):
    with pytest.raises(ConfigError, match="algo"):
        make_run_dir(tmp_path, bad, "task")


def test_write_json_atomic_converts_arrays(tmp_path):
    obj = {
        "lr": np.float32(0.5),
        "steps": np.int64(7),
        "flag": np.bool_(True),
        "weights": np.arange(4, dtype=np.float32).reshape(2, 2),
        "jax_scalar": jnp.asarray(1.5),
        "jax_array": jnp.array([1, 2, 3]),
        "nested": [(1, 2), {"path": tmp_path}],
        "none": None,
    }
    path = write_json_atomic(tmp_path / "config.json", obj)
    text = path.read_text()
    assert text.startswith("{\n  ")  # indent=2
    loaded = read_json(path)
    assert loaded == {
        "lr": 0.5,
        "steps": 7,
        "flag": True,
        "weights": [[0.0, 1.0], [2.0, 3.0]],
        "jax_scalar": 1.5,
        "jax_array": [1, 2, 3],
        "nested": [[1, 2], {"path": str(tmp_path)}],
        "none": None,
    }
    assert isinstance(loaded["steps"], int)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp files left


def test_write_json_atomic_replaces_and_failure_keeps_old(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_written_files_get_the_umask_mode_and_strict_json(tmp_path):
    path = write_json_atomic(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, np.inf]})
    plain = tmp_path / "plain"
    plain.write_text("")  # what open() gives under this process's umask, not mkstemp's 0600
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert json.loads(path.read_text()) == {"x": None, "y": [1.0, None]}
