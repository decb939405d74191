"""Independent jobs (reproduction cells, seeds) as worker processes, one per core.

On a small CPU one process per core beats one process on all cores for this library's
workloads: XLA's CPU backend turns a second core into only 1.15-1.3x on a small recurrent
network, while two single-threaded processes run side by side (``benchmarks/seeds_parallel.py``
measures both). :func:`run_pinned` starts at most ``jobs`` commands at a time, each bound to its
own core where the platform allows (``os.sched_setaffinity``) and with XLA's multi-threaded
Eigen off, and writes each one's output to its own log file.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""Added to ``XLA_FLAGS`` of a pinned worker: one compute thread, on its own core."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One command to run.

    Attributes:
        name: Shown in messages.
        argv: The command, e.g. ``[sys.executable, "-m", "quickstudy.cli", ...]``.
        log: File that receives the command's stdout and stderr (its parent is created).
    """

    name: str
    argv: Sequence[str]
    log: Path


@dataclasses.dataclass(frozen=True)
class JobResult:
    """How a :class:`Job` ended: its exit status, wall-clock seconds and the core it ran on."""

    job: Job
    returncode: int
    seconds: float
    core: int | None


def available_cores() -> list[int]:
    """The cores this process may run on (all of ``os.cpu_count()`` where unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a pinned worker: single-threaded XLA, plain progress lines."""
    env = dict(os.environ if base is None else base)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA_FLAGS}".strip()
    env.setdefault("QUICKSTUDY_PROGRESS", "plain")
    return env


def pinned_command(argv: Sequence[str], core: int | None) -> list[str]:
    """``argv`` run through this module's trampoline, which binds it to ``core`` and execs it.

    Pinning in the child (rather than in a ``preexec_fn``) keeps the parent's ``fork`` free of
    Python code, which a multithreaded parent such as JAX must avoid.
    """
    if core is None or not hasattr(os, "sched_setaffinity"):
        return list(argv)
    return [sys.executable, "-m", "quickstudy.parallel", str(core), *argv]


def run_pinned(
    jobs: Sequence[Job],
    workers: int,
    on_event: Callable[[str], None] = lambda _: None,
    poll_seconds: float = 0.2,
) -> list[JobResult]:
    """Runs ``jobs`` with at most ``workers`` at a time, each pinned to a free core.

    Args:
        jobs: The commands, started in this order.
        workers: Concurrent processes (at most the number of available cores is useful).
        on_event: Receives one line when a job starts and when it ends.
        poll_seconds: How often finished processes are collected.

    Returns:
        One result per job, in the order of ``jobs``. A job that fails does not stop the
        others; the caller decides what a non-zero status means.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cores = available_cores()
    slots: list[int | None] = list(cores[:workers]) if workers <= len(cores) else [None] * workers
    pending = list(enumerate(jobs))
    running: dict[int, tuple[subprocess.Popen, float, int | None, object]] = {}
    results: dict[int, JobResult] = {}
    env = worker_env()
    try:
        while pending or running:
            while pending and slots:
                index, job = pending.pop(0)
                core = slots.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                log = open(job.log, "w")  # noqa: SIM115 (closed when the job ends)
                proc = subprocess.Popen(
                    pinned_command(job.argv, core), stdout=log, stderr=subprocess.STDOUT, env=env
                )
                running[index] = (proc, time.perf_counter(), core, log)
                where = f" on core {core}" if core is not None else ""
                on_event(f"started {job.name}{where} (log: {job.log})")
            for index in list(running):
                proc, t0, core, log = running[index]
                if proc.poll() is None:
                    continue
                log.close()  # type: ignore[attr-defined]
                del running[index]
                slots.append(core)
                job = jobs[index]
                results[index] = JobResult(job, proc.returncode, time.perf_counter() - t0, core)
                state = "done" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                on_event(f"{state}: {job.name} in {results[index].seconds:,.0f} s")
            if running:
                time.sleep(poll_seconds)
    finally:
        for proc, _, _, log in running.values():  # interrupted: the workers got the signal too
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()  # type: ignore[attr-defined]
    return [results[i] for i in range(len(jobs))]


def module_command(module: str, *args: str) -> list[str]:
    """``[python, -m, module, *args]`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def _trampoline(argv: Sequence[str]) -> None:
    """``python -m quickstudy.parallel CORE COMMAND...``: bind to CORE, then exec COMMAND."""
    core, command = int(argv[0]), list(argv[1:])
    os.sched_setaffinity(0, {core})
    os.execvp(command[0], command)


if __name__ == "__main__":
    _trampoline(sys.argv[1:])
