"""A sweep on a local Ray cluster (a head and one worker node) survives a killed worker."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from quickstudy import parallel, runner
from quickstudy.tracking import list_checkpoints

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).parent / "ray")
# 400 updates of 80 env steps, two updates per chunk, a checkpoint every 5 chunks.
FLAGS = ["--total-steps", "32000", "--num-envs", "8", "--hidden-size", "16"]
FLAGS += ["--num-minibatches", "2", "--chunk-updates", "2", "--checkpoint-every", "5"]
FLAGS += ["--eval-tasks", "10"]


def _env():
    # A test cluster on 127.0.0.1 only, without Ray's token authentication.
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` and ``ray start --address`` on this machine, one CPU each."""
    temp = tempfile.mkdtemp(prefix="qs-ray-", dir="/tmp")  # socket paths must stay short
    port = _free_port()
    env = _env()
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--temp-dir={temp}", *common],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    subprocess.run(
        [RAY, "start", f"--address={address}", *common], check=True, capture_output=True, env=env
    )
    yield address
    subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env)
    shutil.rmtree(temp, ignore_errors=True)


def _params(run_dir):
    run = runner.open_run(run_dir)
    return runner.restore_latest(run)[0].params


def test_a_sweep_on_ray_retries_a_killed_worker_from_its_checkpoint(cluster, tmp_path):
    out = tmp_path / "sweep"
    cmd = parallel.module_command("quickstudy.cli", "sweep", "rl2", "--grid", "lr=0.003,0.001")
    sweep = subprocess.Popen(
        [*cmd, *FLAGS, "--out", str(out), "--ray", cluster],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    trial = out / "trial-000"
    deadline = time.monotonic() + 240
    while not [u for u, _ in list_checkpoints(trial / "checkpoints") if u >= 20]:
        assert sweep.poll() is None and time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    child = int((trial / ".lock").read_text().split()[1])  # `quickstudy resume trial-000`
    worker = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    killed_at = time.time()
    os.kill(worker, signal.SIGKILL)  # the Ray worker process running the trial
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output
    attempts = [
        float(line.rsplit(" at ", 1)[1])
        for line in (out / "trial-000.log").read_text().splitlines()
        if line.startswith("[quickstudy.cluster] attempt")
    ]
    assert len(attempts) == 2 and attempts[1] > killed_at  # retried once, after the kill
    second = (out / "trial-000.log").read_text().split("[quickstudy.cluster] attempt")[2]
    resumed = int(second.split("resuming from the checkpoint of update ")[1].split()[0])
    assert resumed >= 20  # from its last checkpoint, not from scratch
    rows = [json.loads(line)["update"] for line in (trial / "metrics.jsonl").open()]
    assert rows == list(range(1, 401))
    ranked = json.loads((out / "summary.json").read_text())["ranked"]
    assert all(r["score"] is not None for r in ranked)  # no trial lost
    reference = tmp_path / "reference"
    subprocess.run(
        [*parallel.module_command("quickstudy.cli", "train", "rl2"), *FLAGS, "--lr", "0.003",
         "--run-dir", str(reference)],
        check=True, capture_output=True, env=parallel.worker_env(),
    )  # fmt: skip
    for a, b in zip(_leaves(_params(trial)), _leaves(_params(reference)), strict=True):
        np.testing.assert_array_equal(a, b)


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]
