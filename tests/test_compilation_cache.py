import os
import subprocess
import sys

import pytest

from quickstudy import compilation_cache

PROGRAM = (
    "from quickstudy import compilation_cache as c; import jax;"
    "print(c.enable()); jax.jit(lambda x: x * 3 + 1)(2.0).block_until_ready()"
)


def _run(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if "COMPILATION_CACHE" not in k}
    base["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM], env={**base, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _entries(path):
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_on_by_default_in_the_per_user_directory(tmp_path):
    expected = tmp_path / "xdg" / "quickstudy" / "jax"
    assert _run(tmp_path) == str(expected)
    assert _entries(expected)  # the program was written


@pytest.mark.parametrize("setting", ["off", "0", "OFF"])
def test_turned_off_by_the_environment(tmp_path, setting):
    assert _run(tmp_path, QUICKSTUDY_COMPILATION_CACHE=setting) == "None"
    assert not _entries(tmp_path / "xdg")


def test_a_chosen_directory_and_jaxs_own_variable_are_respected(tmp_path):
    chosen = tmp_path / "chosen"
    assert _run(tmp_path, QUICKSTUDY_COMPILATION_CACHE=str(chosen)) == str(chosen)
    assert _entries(chosen)
    jax_dir = tmp_path / "jax-own"
    assert _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(jax_dir)) == "None"  # left to JAX
    assert not _entries(tmp_path / "xdg")


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.default_dir() == tmp_path / "quickstudy" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert str(compilation_cache.default_dir()).endswith(".cache/quickstudy/jax")
