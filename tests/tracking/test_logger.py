import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.errors import QuickstudyError
from quickstudy.tracking import MetricsLogger, read_metrics


def _jsonl(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _csv(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def test_log_writes_jsonl_csv_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, {"loss": np.float32(0.5), "return": jnp.asarray(2.0)})
        logger.log(2, {"loss": 0.25, "return": 3})
    rows = _jsonl(tmp_path)
    assert rows == [
        {"step": 1, "loss": 0.5, "return": 2.0},
        {"step": 2, "loss": 0.25, "return": 3.0},
    ]
    assert isinstance(rows[0]["loss"], float) and isinstance(rows[0]["return"], float)
    assert isinstance(rows[1]["return"], int)  # a Python int (a count) stays an integer
    header, body = _csv(tmp_path)
    assert header == ["step", "loss", "return"]
    assert body == [["1", "0.5", "2.0"], ["2", "0.25", "3"]]
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_new_key_widens_csv(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"a": 1.0})
        logger.log(2, {"a": 2.0, "b": 5.0})
        logger.log(3, {"b": 6.0})
    header, body = _csv(tmp_path)
    assert header == ["step", "a", "b"]
    assert body == [["1", "1.0", ""], ["2", "2.0", "5.0"], ["3", "", "6.0"]]
    assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_resume_appends(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"a": 1.0})
        logger.log(2, {"a": 2.0})
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(3, {"a": 3.0})
    assert [row["step"] for row in _jsonl(tmp_path)] == [1, 2, 3]
    header, body = _csv(tmp_path)
    assert header == ["step", "a"]
    assert [r[0] for r in body] == ["1", "2", "3"]


def test_resume_drops_partial_last_line(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"a": 1.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "a": 2.')  # crash in the middle of a write
    assert [row["step"] for row in read_metrics(tmp_path / "metrics.jsonl")] == [1]
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(2, {"a": 2.5})
    assert _jsonl(tmp_path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.5}]
    assert _csv(tmp_path)[1] == [["1", "1.0"], ["2", "2.5"]]


def test_truncate_after(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log(step * 10, {"a": float(step), **({"late": 1.0} if step == 5 else {})})
    with MetricsLogger(tmp_path) as logger:
        logger.truncate_after(30)
        assert [row["step"] for row in _jsonl(tmp_path)] == [10, 20, 30]
        header, body = _csv(tmp_path)
        assert header == ["step", "a"]
        assert [r[0] for r in body] == ["10", "20", "30"]
        logger.log(40, {"a": 4.5})
    assert [row["step"] for row in _jsonl(tmp_path)] == [10, 20, 30, 40]
    assert _jsonl(tmp_path)[-1]["a"] == 4.5


def test_bad_metrics_and_closed(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match="reserved"):
        logger.log(1, {"step": 1.0})
    with pytest.raises(ValueError, match="'vec' is not a scalar"):
        logger.log(1, {"vec": np.ones(3)})
    assert _jsonl(tmp_path) == []
    logger.close()
    logger.close()
    with pytest.raises(QuickstudyError, match="closed"):
        logger.log(1, {"a": 1.0})


def test_non_finite_values_are_null_with_a_flag_column(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log_rows([(1, {"a": 1.0, "b": 2.0}), (2, {"a": float("nan"), "b": np.inf})])
        logger.log(3, {"a": 3.0, "b": -np.inf})

    def strict(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    text = (tmp_path / "metrics.jsonl").read_text()
    rows = [json.loads(line, parse_constant=strict) for line in text.splitlines()]
    assert rows == [
        {"step": 1, "a": 1.0, "b": 2.0},
        {"step": 2, "a": None, "b": None, "nonfinite": "a,b"},
        {"step": 3, "a": 3.0, "b": None, "nonfinite": "b"},
    ]
    assert read_metrics(tmp_path / "metrics.jsonl") == rows
    header, body = _csv(tmp_path)
    assert header == ["step", "a", "b", "nonfinite"]
    assert body[1] == ["2", "", "", "a,b"]
    with pytest.raises(ValueError, match="reserved"), MetricsLogger(tmp_path) as logger:
        logger.log(4, {"nonfinite": 1.0})


def _tensorboard_scalars(run_dir):
    """``{step: {tag: value}}`` read back from the TFRecord event files."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(event.step, {})[value.tag] = value.simple_value
    return out


def test_tensorboard_gets_a_thinned_chunk_with_its_last_row_and_finite_values(tmp_path):
    from quickstudy.tracking.logger import TENSORBOARD_ROWS_PER_CALL

    rows = [
        (s, {"loss": s / 4, "grad": float("nan") if s == 1000 else 1.0}) for s in range(1, 1001)
    ]
    with MetricsLogger(tmp_path) as logger:
        logger.log_rows(rows)
        logger.log_rows([(1001, {"loss": 7.0, "grad": 2.0})])
    assert len(_jsonl(tmp_path)) == 1001  # every row in the record
    scalars = _tensorboard_scalars(tmp_path)
    assert len(scalars) == TENSORBOARD_ROWS_PER_CALL + 1
    assert sorted(scalars)[:3] == [10, 20, 30] and 1000 in scalars and 1001 in scalars
    assert scalars[500] == {"loss": 125.0, "grad": 1.0}
    assert scalars[1000] == {"loss": 250.0}  # the NaN is left out
    assert scalars[1001] == {"loss": 7.0, "grad": 2.0}
