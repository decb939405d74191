"""Run directories and atomic JSON files.

A run directory is ``<root>/<algo>-<task>-<YYYYmmdd-HHMMSS>/`` and holds ``config.json``,
``metrics.jsonl``, ``metrics.csv``, TensorBoard events, ``checkpoints/`` and ``eval/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from quickstudy.errors import ConfigError

CHECKPOINTS = "checkpoints"
EVAL = "eval"


def _file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (``0o666 & ~umask``)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


def make_run_dir(
    root: str | Path,
    algo: str,
    task: str,
    run_dir: str | Path | None = None,
    *,
    now: datetime.datetime | None = None,
) -> Path:
    """Creates a run directory with its ``checkpoints/`` and ``eval/`` subdirectories.

    Args:
        root: Parent folder of generated run directories, e.g. ``runs``.
        algo: Algorithm name, the first part of the generated name.
        task: Task-distribution name, the second part of the generated name.
        run_dir: An explicit run directory; used as given (not joined to ``root``), and may
            already exist (a resumed run).
        now: Time to stamp the generated name with; the current local time if ``None``.

    Returns:
        The run directory. A generated name that is already taken (two runs started in the same
        second) gets a ``-1``, ``-2``, ... suffix, so a new run never reuses an old directory.

    Raises:
        ConfigError: ``algo`` or ``task`` is empty or contains a path separator.
    """
    if run_dir is not None:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
    else:
        for name, value in (("algo", algo), ("task", task)):
            if not value or "/" in value or os.sep in value or value in (".", ".."):
                raise ConfigError(f"{name}={value!r} cannot be part of a run directory name")
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = Path(root) / f"{algo}-{task}-{stamp}"
        base.parent.mkdir(parents=True, exist_ok=True)
        path, suffix = base, 0
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = base.with_name(f"{base.name}-{suffix}")
    (path / CHECKPOINTS).mkdir(exist_ok=True)
    (path / EVAL).mkdir(exist_ok=True)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The bytes go to a hidden temporary file in the same directory, which is fsynced and then
    renamed over ``path`` with ``os.replace``; the directory is fsynced where the OS allows it.
    The file gets the permissions of any file the process creates (``0o666`` less the umask),
    not the private ``0o600`` of a temporary file.

    Args:
        path: Destination file; its directory must exist.
        data: File contents.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some platforms and file systems cannot fsync a directory.
    finally:
        os.close(fd)


def to_jsonable(obj: Any) -> Any:
    """Converts NumPy/JAX scalars and arrays, paths and dataclasses to plain JSON values.

    Args:
        obj: Any value; containers are converted recursively.

    Returns:
        A structure of ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``. Arrays become
        (nested) lists, 0-d arrays and NumPy scalars become Python scalars, tuples become lists.
        NaN and infinities become ``None``: strict JSON has no spelling for them.

    Raises:
        TypeError: A value has no JSON representation.
    """
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):  # jax.Array and friends
        array = np.asarray(obj)
        if array.dtype.kind in "fc" or array.dtype == object:
            return to_jsonable(array.tolist())
        return array.tolist()
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON (``indent=2``), atomically (see `write_bytes_atomic`).

    Args:
        path: Destination file; its directory must exist.
        obj: A JSON-like structure; NumPy/JAX scalars and arrays are converted to Python floats,
            ints and lists, and non-finite floats to ``null`` (see `to_jsonable`).

    Returns:
        ``path`` as a ``Path``.
    """
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """Reads a JSON file.

    Args:
        path: The file.

    Returns:
        The decoded value.
    """
    with open(path, encoding="utf-8") as f:
        return json.load(f)
