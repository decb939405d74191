"""JAX's persistent compilation cache in a per-user directory.

A compiled program is written to disk and read back by the next process that compiles the
same program (same shapes, config, JAX version and machine), so a repeated command skips its
compiles. The ``quickstudy`` command and the test suite turn it on; a library user calls
`enable` once.

The directory is ``$QUICKSTUDY_COMPILATION_CACHE`` if set, else
``$XDG_CACHE_HOME/quickstudy/jax`` (``~/.cache/quickstudy/jax``).
``QUICKSTUDY_COMPILATION_CACHE=off`` turns the cache off; a ``JAX_COMPILATION_CACHE_DIR``
set by the user is left to JAX. The cache is not size-limited (JAX's eviction needs the
``filelock`` package, not a dependency here): a program takes from a few kB to a few MB, and
deleting the directory is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "QUICKSTUDY_COMPILATION_CACHE"
OFF = ("off", "0", "false", "no", "")


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/quickstudy/jax``, or ``~/.cache/quickstudy/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "quickstudy" / "jax"


def enable(path: str | Path | None = None) -> Path | None:
    """Turns JAX's persistent compilation cache on; call it before the first compile.

    Every program is cached, however short its compile: the small ones (init, the finite
    check, the meta-test's statistics) add up to seconds at each start.

    Args:
        path: The cache directory (default: from the environment, see the module docstring).

    Returns:
        The directory in use, or ``None`` when the cache is off (``QUICKSTUDY_COMPILATION_CACHE
        =off``, or the directory cannot be created) or left to ``JAX_COMPILATION_CACHE_DIR``.
    """
    if path is None:
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            return None
        setting = os.environ.get(ENV)
        if setting is not None and setting.strip().lower() in OFF:
            return None
        path = Path(setting) if setting else default_dir()
    path = Path(path).expanduser()
    if jax.config.jax_compilation_cache_dir == str(path):
        return path  # already on (the CLI's main() may run several times in one process)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache rather than fail
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
