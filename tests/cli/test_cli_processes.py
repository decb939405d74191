"""The real ``quickstudy`` process under signals, kill -9 and a second writer."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from quickstudy import runner
from quickstudy.cli import main
from quickstudy.tracking import latest_checkpoint, load_checkpoint, read_metrics

# 200 updates of 1280 env steps in chunks of 20: a chunk takes ~0.5-1 s on two cores.
ARGS = ["--total-steps", "256000", "--chunk-updates", "20", "--checkpoint-every", "1"]
ARGS += ["--eval-tasks", "10"]
SOAK_UPDATES = 800


def _env(cache):
    # Later starts load the compiled programs from the cache instead of compiling again.
    env = dict(os.environ, QUICKSTUDY_PROGRESS="plain", QUICKSTUDY_COMPILATION_CACHE=str(cache))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def _start(args, cache, log):
    cmd = [sys.executable, "-c", "from quickstudy.cli import entry; entry()", *args]
    return subprocess.Popen(cmd, env=_env(cache), stdout=log, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def _rows(run_dir):
    return [int(r["update"]) for r in read_metrics(run_dir / "metrics.jsonl")]


def _latest(run_dir):
    run = runner.open_run(run_dir)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    return ckpt, load_checkpoint(ckpt, runner.initial_state(run))


def _leaves(state):
    return [
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )
        for x in jax.tree.leaves(state)
    ]


def test_sigint_mid_chunk_then_two_resumes(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    with open(tmp_path / "log", "wb") as log:
        proc = _start(["train", "rl2", "--run-dir", str(run_dir), *ARGS], cache, log)
        _wait_for(lambda: len(_rows(run_dir)) >= 20)  # the first chunk is in; the next runs
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        assert proc.wait(timeout=60) == 130
        waited = time.monotonic() - sent
    output = (tmp_path / "log").read_text()
    assert "Traceback" not in output and "quickstudy resume" in output, output
    ckpt, state = _latest(run_dir)
    done = int(state.update)
    assert ckpt.name == f"ckpt_{done:09d}.msgpack" and _rows(run_dir) == list(range(1, done + 1))
    assert waited < 30  # not a speed figure: only that it did not wait for the end of training

    with open(tmp_path / "log2", "wb") as log:  # a second writer is refused while one runs
        first = _start(["resume", str(run_dir)], cache, log)
        _wait_for(lambda: f"PID {first.pid}" in _lock_text(run_dir))
        assert main(["resume", str(run_dir)]) == 2
        assert first.wait(timeout=300) == 0
    assert _rows(run_dir) == list(range(1, 201))  # every row once, in order


def _lock_text(run_dir):
    try:
        return (run_dir / ".lock").read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.slow
def test_kill_9_soak_ends_bit_identical(tmp_path):
    """At least ten kill -9 at random moments of one run, then resumed to the end."""
    cache, rng = tmp_path / "cache", random.Random(0)
    args = [*ARGS, "--total-steps", str(SOAK_UPDATES * 1280)]
    reference, soaked = tmp_path / "reference", tmp_path / "soaked"
    with open(tmp_path / "log", "wb") as log:
        assert _start(["train", "rl2", "--run-dir", str(reference), *args], cache, log).wait() == 0
        kills, t0 = [], time.monotonic()
        proc = _start(["train", "rl2", "--run-dir", str(soaked), *args], cache, log)
        _wait_for(lambda: (soaked / "config.json").exists())
        while len(kills) < 12:
            # Half the kills at a random time (start-up, compile, training, meta-test), half
            # a random moment after the run has logged a random number of new rows.
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.3, 8.0))
            else:
                target = min(len(_rows(soaked)) + rng.randint(1, 60), SOAK_UPDATES)
                _wait_for(lambda: len(_rows(soaked)) >= target or proc.poll() is not None)  # noqa: B023
                time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is not None:  # finished before the kill: that round has no kill
                break
            proc.kill()
            proc.wait()
            kills.append(len(_rows(soaked)))
            proc = _start(["resume", str(soaked)], cache, log)
        assert proc.wait(timeout=600) == 0
        soak_s = time.monotonic() - t0
    assert len(kills) >= 10, kills
    assert _rows(soaked) == list(range(1, SOAK_UPDATES + 1))
    (_, a), (_, b) = _latest(reference), _latest(soaked)
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    ref_rows = (reference / "metrics.jsonl").read_text()
    assert (soaked / "metrics.jsonl").read_text() == ref_rows
    assert (
        json.loads((soaked / "eval" / "summary.json").read_text())["trial_return"]
        == (json.loads((reference / "eval" / "summary.json").read_text())["trial_return"])
    )
    figures = {"kills": len(kills), "rows_at_each_kill": kills, "soak_s": round(soak_s, 1)}
    print("soak:", json.dumps(figures))  # noqa: T201
