"""Atomic, checksummed msgpack checkpoints of arbitrary pytrees.

A checkpoint of step ``s`` is two files in the checkpoint directory: ``ckpt_<s:09d>.msgpack``
(the state, serialised with ``flax.serialization``) and ``ckpt_<s:09d>.json`` (step, size and
SHA-256 of the msgpack bytes). The JSON file is written last, so a checkpoint without it is
incomplete (a crash while saving) and is ignored by `latest_checkpoint`.

Typed PRNG key arrays (``jax.random.key``) are stored as their ``key_data`` and wrapped back on
load wherever the target has a typed key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from quickstudy.errors import CheckpointError, ConfigError
from quickstudy.tracking.run_dir import write_bytes_atomic

_NAME = re.compile(r"^ckpt_(\d+)\.msgpack$")
_FORMAT = 1


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    """The msgpack file of the checkpoint of ``step`` in ``ckpt_dir``."""
    return Path(ckpt_dir) / f"ckpt_{step:09d}.msgpack"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """Lists the complete checkpoints (msgpack and checksum file both present).

    Args:
        ckpt_dir: The checkpoint directory; a missing directory has none.

    Returns:
        ``(step, msgpack path)`` pairs sorted by step, oldest first.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for path in ckpt_dir.iterdir():
        match = _NAME.match(path.name)
        if match and _sidecar(path).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The msgpack file of the newest complete checkpoint, or ``None`` if there is none."""
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


def save_checkpoint(ckpt_dir: str | Path, step: int, state: Any, keep: int = 3) -> Path:
    """Saves ``state`` atomically as the checkpoint of ``step`` and prunes older ones.

    Args:
        ckpt_dir: The checkpoint directory; created if missing.
        step: Non-negative step number, part of the file name.
        state: Any pytree that ``flax.serialization`` can serialise (dicts, lists, tuples,
            namedtuples such as optax states, flax structs, arrays, Python scalars, typed PRNG
            keys). Arrays are fetched to the host.
        keep: How many complete checkpoints to keep, counting this one; the ones with the
            smallest steps are deleted. This checkpoint is always kept.

    Returns:
        The msgpack file written.

    Raises:
        ConfigError: ``keep < 1`` or ``step < 0``.
    """
    if keep < 1:
        raise ConfigError(f"keep={keep}: at least one checkpoint must be kept")
    if step < 0:
        raise ConfigError(f"step={step}: checkpoint steps are non-negative")
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state_dict = serialization.to_state_dict(jax.device_get(_keys_to_data(state)))
    data = serialization.msgpack_serialize(state_dict)
    path = checkpoint_path(ckpt_dir, step)
    # Remove the old checksum first: a crash below then leaves an incomplete checkpoint rather
    # than new bytes next to an old checksum.
    _sidecar(path).unlink(missing_ok=True)
    write_bytes_atomic(path, data)
    meta = {
        "format": _FORMAT,
        "step": int(step),
        "file": path.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    write_bytes_atomic(_sidecar(path), (json.dumps(meta, indent=2) + "\n").encode("utf-8"))

    others = [p for s, p in list_checkpoints(ckpt_dir) if p != path]
    for old in others[: max(0, len(others) - (keep - 1))]:
        _sidecar(old).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    # Incomplete checkpoints older than this one are left-overs of crashed saves.
    for orphan in ckpt_dir.iterdir():
        match = _NAME.match(orphan.name)
        if match and int(match.group(1)) < step and not _sidecar(orphan).exists():
            orphan.unlink(missing_ok=True)
    return path


def _flatten(state_dict: Any, prefix: str = "") -> dict[str, Any]:
    """Maps ``a/b/c`` paths to leaves; an empty dict is a leaf so that it is compared too."""
    if isinstance(state_dict, dict) and state_dict:
        out: dict[str, Any] = {}
        for key, value in state_dict.items():
            out.update(_flatten(value, f"{prefix}/{key}"))
        return out
    return {prefix or "/": state_dict}


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{np.dtype(x.dtype).name}{list(x.shape)}"
    if isinstance(x, dict):
        return "{}" if not x else "dict"
    return type(x).__name__


def _leaf_mismatch(saved: Any, expected: Any) -> bool:
    if isinstance(saved, dict) or isinstance(expected, dict):
        return not (saved == {} and expected == {})
    if hasattr(expected, "shape") and hasattr(expected, "dtype"):
        return (
            not (hasattr(saved, "shape") and hasattr(saved, "dtype"))
            or tuple(saved.shape) != tuple(expected.shape)
            or np.dtype(saved.dtype) != np.dtype(expected.dtype)
        )
    return type(saved) is not type(expected)


def load_checkpoint(
    path: str | Path, target: Any, migrate: Callable[[Any], Any] | None = None
) -> Any:
    """Loads a checkpoint into the structure of ``target``, verifying it first.

    Reads the two files only; never writes or deletes anything.

    Args:
        path: The msgpack file of a checkpoint (e.g. from `latest_checkpoint`).
        target: A pytree with the structure, shapes and dtypes of the saved state (e.g. the
            freshly initialised state of the same run). Its values are not used. Where it has a
            typed PRNG key, the stored key data is wrapped back with the target's key impl.
        migrate: Rewrites the decoded state dict of an older layout into the current one
            before it is checked against ``target``.

    Returns:
        The restored pytree: leaves that are ``jax.Array`` in ``target`` are ``jax.Array``,
        NumPy arrays are writable NumPy arrays, NumPy and Python scalars keep their types.

    Raises:
        CheckpointError: The file or its checksum file is missing or unreadable, the checksum does
            not match, the bytes do not decode, or the structure, shapes or dtypes differ from
            ``target``. The message names the file.
    """
    path = Path(path)
    meta_path = _sidecar(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected_sha = meta["sha256"]
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} has no checksum file {meta_path.name}; it is incomplete "
            "(interrupted while saving)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read the checksum file {meta_path}: {e!r}") from None
    actual_sha = hashlib.sha256(data).hexdigest()
    if actual_sha != expected_sha:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: SHA-256 {actual_sha[:12]}... does not match "
            f"{expected_sha[:12]}... recorded in {meta_path.name} ({len(data)} bytes read, "
            f"{meta.get('size')} written)"
        )
    try:
        saved = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises a variety of exception types on bad input.
        raise CheckpointError(f"checkpoint {path} cannot be decoded: {e!r}") from None
    if migrate is not None:
        saved = migrate(saved)

    template = _keys_to_data(target)
    saved_leaves = _flatten(saved)
    expected_leaves = _flatten(serialization.to_state_dict(template))
    problems = [f"missing {k}" for k in expected_leaves if k not in saved_leaves]
    problems += [f"unexpected {k}" for k in saved_leaves if k not in expected_leaves]
    problems += [
        f"{k}: saved {_describe(saved_leaves[k])}, expected {_describe(v)}"
        for k, v in expected_leaves.items()
        if k in saved_leaves and _leaf_mismatch(saved_leaves[k], v)
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        raise CheckpointError(f"checkpoint {path} does not match the expected state: {shown}")
    try:
        restored = serialization.from_state_dict(template, saved)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match the expected state: {e}") from None

    def convert(t: Any, r: Any) -> Any:
        if _is_key(t):
            return jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
        if isinstance(t, jax.Array):
            return jnp.asarray(r)
        if isinstance(t, np.ndarray):
            return np.array(r)
        if isinstance(t, np.generic):
            return np.asarray(r)[()]
        return r

    return jax.tree.map(convert, target, restored)
