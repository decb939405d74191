"""Scalar metrics to ``metrics.jsonl``, ``metrics.csv`` and TensorBoard event files."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from quickstudy.errors import QuickstudyError
from quickstudy.tracking.run_dir import write_bytes_atomic

JSONL = "metrics.jsonl"
CSV = "metrics.csv"
NONFINITE = "nonfinite"
"""Column naming the metrics of a row whose values were NaN or infinite (written as null)."""
TENSORBOARD_ROWS_PER_CALL = 100
"""At most this many rows of one `MetricsLogger.log_rows` call go to TensorBoard."""


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Reads the rows of a ``metrics.jsonl`` file.

    A last line without a newline is a write cut short by a crash and is skipped.

    Args:
        path: The JSONL file; a missing file has no rows.

    Returns:
        One dict per logged step, each with ``step`` (int) and the metrics (floats, or ``None``
        where the value was not finite; such a row names them in its ``nonfinite`` column).

    Raises:
        QuickstudyError: The file is not UTF-8 text, or a complete line is not a JSON object with
            an integer ``step``; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise QuickstudyError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")
    lines = lines[:-1]  # Either "" after the final newline or an unterminated partial line.
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise QuickstudyError(f"{path}:{number}: not a JSON line ({e})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise QuickstudyError(f"{path}:{number}: expected an object with an integer 'step'")
        rows.append(row)
    return rows


def _header(rows: list[dict[str, Any]]) -> list[str]:
    keys = {"step": None}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def _csv_text(header: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)


def _record(step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The strict-JSON row of one step: non-finite values are ``None``, named in ``nonfinite``."""
    for reserved in ("step", NONFINITE):
        if reserved in metrics:
            raise ValueError(f"{reserved!r} is reserved and cannot be the name of a metric")
    raw: dict[str, Any] = {"step": int(step)}
    for name, value in metrics.items():
        if isinstance(value, int) and not isinstance(value, bool):
            raw[str(name)] = value  # a count (e.g. the update) stays an integer
            continue
        try:
            raw[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r} is not a scalar: {value!r}") from None
    bad = [k for k, v in raw.items() if k != "step" and not math.isfinite(v)]
    strict = {k: (None if k in bad else v) for k, v in raw.items()}
    if bad:
        strict[NONFINITE] = ",".join(bad)
    return strict


class MetricsLogger:
    """Appends scalar metrics of a run to JSONL, CSV and (optionally) TensorBoard.

    ``metrics.jsonl`` is the record; ``metrics.csv`` is derived from it and has one column per
    key seen so far (rewritten from the JSONL when a new key appears, empty cells where a row
    lacks a key). Opening a logger on an existing run directory continues both files; call
    `truncate_after` first when the run resumes from a checkpoint older than the last row.

    Example:
        >>> with MetricsLogger(run_dir) as logger:  # doctest: +SKIP
        ...     logger.log(100, {"loss": 0.5, "return": 12.0})
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        """Opens (or continues) the metrics files of ``run_dir``.

        Args:
            run_dir: The run directory; created if missing.
            tensorboard: Also write TensorBoard event files into ``run_dir``.
        """
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.run_dir / JSONL
        self.csv_path = self.run_dir / CSV
        self._tensorboard = tensorboard
        self._writer: Any = None
        self._closed = False
        rows = read_metrics(self.jsonl_path)
        # Drop a partial last line and make the CSV agree with the JSONL.
        self._rewrite(rows)
        self._header = _header(rows)
        if tensorboard:
            self._writer = self._open_writer(purge_step=None)

    def _open_writer(self, purge_step: int | None) -> Any:
        from tensorboardX import SummaryWriter  # Imported here: slow, and only needed here.

        return SummaryWriter(logdir=str(self.run_dir), purge_step=purge_step)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        write_bytes_atomic(self.jsonl_path, _jsonl_text(rows).encode("utf-8"))
        write_bytes_atomic(self.csv_path, _csv_text(_header(rows), rows).encode("utf-8"))

    def _check_open(self) -> None:
        if self._closed:
            raise QuickstudyError(f"the metrics logger of {self.run_dir} is closed")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Records the metrics of one step (see `log_rows`)."""
        self.log_rows([(step, metrics)])

    def log_rows(self, rows: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Records the metrics of several steps with one append to each file.

        Non-finite values are written as ``null`` (strict JSON has no NaN or infinity) and the
        row gets a ``nonfinite`` column naming those metrics, e.g. ``"loss,grad_norm"``.
        Python integers stay integers. JSONL and CSV receive every row; TensorBoard receives
        the finite values of at most `TENSORBOARD_ROWS_PER_CALL` rows, evenly spaced and
        always the last (it shows a curve downsampled to 1000 points anyway, and a scalar
        event costs about 50 µs of Python: all 1000 rows of a MAML chunk would cost half
        the chunk's compute).

        Args:
            rows: ``(step, metrics)`` pairs: the global step (e.g. environment steps or
                meta-iterations) and scalar values by name, anything ``float()`` accepts
                (Python/NumPy/JAX scalars, 0-d arrays).

        Raises:
            ValueError: A metric is named ``step`` or ``nonfinite``, or is not a scalar.
        """
        self._check_open()
        records = [_record(step, metrics) for step, metrics in rows]
        if not records:
            return
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(_jsonl_text(records))
        new_keys = {key for record in records for key in record} - set(self._header)
        if new_keys:
            all_rows = read_metrics(self.jsonl_path)
            self._header = _header(all_rows)
            write_bytes_atomic(self.csv_path, _csv_text(self._header, all_rows).encode("utf-8"))
        else:
            with open(self.csv_path, "a", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, self._header, restval="", lineterminator="\n")
                writer.writerows(records)
        if self._writer is not None:
            self._tensorboard_rows(records)

    def _tensorboard_rows(self, records: list[dict[str, Any]]) -> None:
        """One TensorBoard event per row (all its scalars), for a thinned set of rows."""
        from tensorboardX.proto.summary_pb2 import Summary

        n = len(records)
        keep = TENSORBOARD_ROWS_PER_CALL
        picked = records if n <= keep else [records[(i + 1) * n // keep - 1] for i in range(keep)]
        file_writer = self._writer._get_file_writer()
        for record in picked:
            values = [
                Summary.Value(tag=name, simple_value=float(value))
                for name, value in record.items()
                if name not in ("step", NONFINITE) and value is not None
            ]
            file_writer.add_summary(Summary(value=values), global_step=record["step"])

    def truncate_after(self, step: int) -> None:
        """Drops the rows with ``step`` greater than the given one from the JSONL and the CSV.

        TensorBoard event files cannot be edited; the writer is reopened with
        ``purge_step=step + 1`` so that TensorBoard hides the later events.

        Args:
            step: The last step to keep, e.g. the step of the checkpoint a run resumes from.
        """
        self._check_open()
        rows = [row for row in read_metrics(self.jsonl_path) if row["step"] <= step]
        self._rewrite(rows)
        self._header = _header(rows)
        if self._writer is not None:
            self._writer.close()
            self._writer = self._open_writer(purge_step=int(step) + 1)

    def flush(self) -> None:
        """Flushes pending TensorBoard events (JSONL and CSV are written at every `log`)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer; later calls do nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
