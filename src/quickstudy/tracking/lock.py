"""One writer per run directory: an advisory OS file lock on ``<run>/.lock``.

The lock is ``fcntl.flock`` on an open file, so the OS releases it when the holder exits for any
reason (a crash or ``kill -9`` included): a stale lock file never blocks a later run. The file
holds the holder's PID and start time, for the message a second writer gets.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from types import TracebackType

from quickstudy.errors import QuickstudyError

LOCK = ".lock"


class RunLockedError(QuickstudyError):
    """Another process is writing the run directory."""


class RunLock:
    """An exclusive lock on a run directory, re-entrant within one object.

    Example:
        >>> with RunLock(run_dir):  # doctest: +SKIP
        ...     train(...)
    """

    def __init__(self, run_dir: str | Path) -> None:
        """Prepares (does not take) the lock of ``run_dir``."""
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        """Takes the lock without waiting.

        Raises:
            RunLockedError: Another process holds it; the message names its PID.
        """
        if self._depth:
            self._depth += 1
            return
        import fcntl  # POSIX only; imported here so that the module imports everywhere.

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by {holder}; wait for it to finish or stop it "
                "(one writer per run directory)"
            ) from None
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} (since {stamp})\n".encode())
        self._fd, self._depth = fd, 1

    def release(self) -> None:
        """Releases the lock (the file stays; it is free once no process holds it)."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._depth > 0

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
