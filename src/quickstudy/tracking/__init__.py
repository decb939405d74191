"""Run directories, metrics logging and checkpoints."""

from quickstudy.tracking.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from quickstudy.tracking.lock import RunLock, RunLockedError
from quickstudy.tracking.logger import MetricsLogger, read_metrics
from quickstudy.tracking.run_dir import (
    make_run_dir,
    read_json,
    to_jsonable,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "MetricsLogger",
    "RunLock",
    "RunLockedError",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "make_run_dir",
    "read_json",
    "read_metrics",
    "save_checkpoint",
    "to_jsonable",
    "write_bytes_atomic",
    "write_json_atomic",
]
