"""Jobs on a Ray cluster: each command one Ray task, retried where its worker dies.

The work units are the ones :mod:`quickstudy.parallel` runs on one machine: a seed or a sweep
trial (``quickstudy resume RUN_DIR``) or a reproduction cell (``quickstudy reproduce TABLE
--cells C``). Each becomes a Ray task that starts the command in a child process on whichever
node Ray picks. The child dies with its Ray worker (``PR_SET_PDEATHSIG`` on Linux), and Ray
retries a task whose worker or node died (``max_retries``). Because every unit resumes from its
latest checkpoint, a retried trial continues where it stopped instead of starting over.

Run directories must be at the same path on every node: a shared filesystem on a real
cluster, or the local disk for a cluster on one machine. Ray is an optional dependency
(``pip install "quickstudy[ray]"``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from quickstudy.errors import ConfigError
from quickstudy.parallel import Job, JobResult, run_pinned, worker_env

RETRIES = 3
"""Times Ray re-runs a unit whose worker process or node died."""
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Asks Linux to SIGKILL this process when its parent (the Ray worker) dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def run_command(argv: Sequence[str], log: str, env: dict[str, str]) -> dict[str, Any]:
    """Runs ``argv`` to its end with output appended to ``log``; the body of a Ray task.

    Each attempt first appends a line ``[quickstudy.cluster] attempt on HOST pid PID at T``
    to the log, so that a retry is visible there.

    Returns:
        ``returncode``, ``seconds`` and ``host`` of this attempt.
    """
    t0 = time.time()
    with open(log, "a") as out:
        host = socket.gethostname()
        out.write(f"[quickstudy.cluster] attempt on {host} pid {os.getpid()} at {t0:.3f}\n")
        out.flush()
        proc = subprocess.run(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
    return {
        "returncode": proc.returncode,
        "seconds": time.time() - t0,
        "host": socket.gethostname(),
    }


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            'Ray is not installed: pip install "quickstudy[ray]" (or ray==2.60.0)'
        ) from None
    return ray


def connect(address: str) -> Any:
    """Connects to the Ray cluster at ``address``, or starts a private one for ``local``.

    ``address`` is anything ``ray.init`` takes: ``auto`` (the cluster started on this machine
    with ``ray start``), ``HOST:PORT`` or ``ray://HOST:PORT``.

    Raises:
        ConfigError: Ray is not installed, or no cluster answers at ``address``.
    """
    ray = _ray()
    if ray.is_initialized():
        return ray
    quiet = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": False}
    try:
        if address == "local":
            ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(f"no Ray cluster at {address!r}: {err}") from err
    return ray


def run_on_ray(
    jobs: Sequence[Job],
    address: str,
    retries: int = RETRIES,
    on_event: Callable[[str], None] = lambda _: None,
) -> list[JobResult]:
    """Runs every job as a Ray task (one CPU each) and waits for all of them.

    Args:
        jobs: The commands; each one's output is appended to its ``log``.
        address: The cluster (see :func:`connect`).
        retries: Re-runs of a task whose worker or node died; a command that *exits* with a
            non-zero status is not retried (the caller decides what it means).
        on_event: Receives one line as each job ends.

    Returns:
        One result per job, in the order of ``jobs`` (``core`` is ``None``). A job whose
        retries ran out has return code -1.
    """
    ray = connect(address)
    env = worker_env()
    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(run_command)
    for job in jobs:
        job.log.parent.mkdir(parents=True, exist_ok=True)
    refs = {task.remote(list(job.argv), str(job.log), env): i for i, job in enumerate(jobs)}
    results: dict[int, JobResult] = {}
    waiting = list(refs)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        i = refs[done[0]]
        try:
            out = ray.get(done[0])
            code, seconds = int(out["returncode"]), float(out["seconds"])
            where = f" on {out['host']}"
        except ray.exceptions.RayError as err:  # retries exhausted
            code, seconds, where = -1, 0.0, f": {type(err).__name__}"
        results[i] = JobResult(jobs[i], code, seconds, None)
        on_event(f"{jobs[i].name}: exit status {code}{where} ({seconds:.0f} s)")
    return [results[i] for i in range(len(jobs))]


def run_jobs(
    jobs: Sequence[Job],
    workers: int,
    ray: str | None = None,
    on_event: Callable[[str], None] = lambda _: None,
) -> list[JobResult]:
    """Runs ``jobs`` as Ray tasks where ``ray`` names a cluster, else as pinned local workers.

    Args:
        jobs: The commands.
        workers: Local processes at once (see :func:`quickstudy.parallel.run_pinned`).
        ray: The cluster's address (see :func:`connect`), or ``None``.
        on_event: Receives one line per start (local) or end of a job.
    """
    if ray is None:
        return run_pinned(jobs, workers=workers, on_event=on_event)
    on_event(f"sending {len(jobs)} jobs to the Ray cluster at {ray}")
    return run_on_ray(jobs, ray, on_event=on_event)
