"""Runner guards: non-finite values, divergence warnings, a signal mid-chunk, one writer."""

import json
import os
import signal
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import runner
from quickstudy.tracking import (
    RunLock,
    RunLockedError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    make_run_dir,
    read_metrics,
)
from quickstudy.types import Algorithm, Watch


class State(NamedTuple):
    params: dict
    update: jax.Array


def _algorithm(total=20, nan_at=None, signal_at=None, watch=()):
    """A toy jittable algorithm: ``w <- 1.01 w``; NaN from update ``nan_at``; a SIGINT sent
    from inside the compiled chunk at update ``signal_at`` (once per test)."""
    sent = []

    def send(u):
        if int(u) == signal_at and not sent:
            sent.append(int(u))
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the chunk is still computing when the handler has run

    def update(state):
        u = state.update + 1
        w = state.params["w"] * 1.01
        if nan_at is not None:
            w = jnp.where(u >= nan_at, w * jnp.nan, w)
        if signal_at is not None:
            jax.debug.callback(send, u)
        metrics = {"loss": jnp.sum(w), "ret": jnp.where(u % 2 == 0, u * 1.0, jnp.nan)}
        return State({"w": w}, u), metrics

    return Algorithm(
        config=None,
        tasks=None,
        init=lambda key: State({"w": jnp.ones(3)}, jnp.zeros((), jnp.int32)),
        update=update,
        meta_test=None,
        num_updates=total,
        steps_per_update=1,
        jittable=True,
        progress=("ret", "ret"),
        default_points=1,
        watch=watch,
    )


def _run(path, algo, chunk=5, every=1, keep=3):
    settings = runner.RunSettings(
        chunk_updates=chunk, checkpoint_every=every, keep_checkpoints=keep
    )
    return runner.Run(make_run_dir(path.parent, "toy", "toy", path), "toy", "toy", settings, algo)


def _strict_rows(path):
    def refuse(constant):
        raise ValueError(constant)

    text = (path / "metrics.jsonl").read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_non_finite_values_stop_the_run_and_keep_the_last_finite_checkpoint(tmp_path):
    run = _run(tmp_path / "run", _algorithm(nan_at=13), chunk=5, every=1, keep=1)
    with pytest.raises(runner.DivergedError) as err:
        runner.train(run)
    text = str(err.value)
    assert "non-finite loss at update 13" in text and "non-finite parameters" in text
    assert "Last finite metrics (update 12): loss" in text and "update 10" in text
    assert [u for u, _ in list_checkpoints(run.path / "checkpoints")] == [10]
    saved = load_checkpoint(latest_checkpoint(run.path / "checkpoints"), runner.initial_state(run))
    assert np.all(np.isfinite(saved.params["w"])) and int(saved.update) == 10
    rows = _strict_rows(run.path)  # strict JSON: NaN is null, named in "nonfinite"
    assert [r["update"] for r in rows] == list(range(1, 16))
    assert rows[12]["loss"] is None and rows[12]["nonfinite"] == "loss"
    assert "nonfinite" not in rows[11] and "ret" not in rows[10]  # undefined progress: left out


def test_a_watch_rule_warns_once(tmp_path):
    warnings = []
    algo = _algorithm(total=10, watch=(Watch("loss", above=3.05), Watch("ret", growth=4.0)))
    runner.train(_run(tmp_path / "run", algo), on_warning=warnings.append)
    assert len(warnings) == 2
    assert "loss" in warnings[0] and "update 2" in warnings[0]  # 3 * 1.01**2 > 3.05
    assert "ret = 10" in warnings[1]  # ret first 2: 10 > 4 * 2


def test_a_signal_during_a_chunk_saves_the_last_committed_chunk(tmp_path):
    reference = runner.train(_run(tmp_path / "full", _algorithm(signal_at=0)))  # same program
    run = _run(tmp_path / "run", _algorithm(signal_at=13), chunk=5, every=100)
    with pytest.raises(runner.Interrupted) as stop:
        runner.train(run)  # the SIGINT arrives while updates 11..15 are computed
    assert stop.value.signum == signal.SIGINT and stop.value.update == 10
    assert latest_checkpoint(run.path / "checkpoints").name == "ckpt_000000010.msgpack"
    state = load_checkpoint(latest_checkpoint(run.path / "checkpoints"), runner.initial_state(run))
    assert int(state.update) == 10  # the name, the content ...
    assert [r["update"] for r in read_metrics(run.path / "metrics.jsonl")] == list(range(1, 11))
    final = runner.train(run, start=(state, 10))  # ... and the rows agree; resume restores all
    np.testing.assert_array_equal(final.params["w"], reference.params["w"])
    full_rows = (tmp_path / "full" / "metrics.jsonl").read_text()
    assert (run.path / "metrics.jsonl").read_text() == full_rows


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    run = _run(tmp_path / "run", _algorithm())
    with RunLock(run.path), pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
        runner.train(run)
    assert not (run.path / "metrics.jsonl").exists()
    runner.train(run)  # free again once released


def test_rewind_moves_newer_checkpoints_aside(tmp_path):
    run = _run(tmp_path / "run", _algorithm(), chunk=5, every=1, keep=5)
    runner.train(run)
    moved = runner.rewind(run, 10)
    assert sorted(p.name for p in moved.glob("*.msgpack")) == [
        "ckpt_000000015.msgpack",
        "ckpt_000000020.msgpack",
    ]
    assert [u for u, _ in list_checkpoints(run.path / "checkpoints")] == [5, 10]
    with pytest.raises(runner.CheckpointError, match="no checkpoint of update 7"):
        runner.rewind(run, 7)
