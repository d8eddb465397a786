"""One process at a time on a state file: the daemon, or one ``--once`` run.

The lock is a sidecar file (``state.db.lock``) held with ``flock``: locking
the database file itself would be undone by SQLite's own POSIX locks, which
any ``close()`` of that file in this process releases.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from vigild.alerting.store import StoreError

__all__ = ["StateLock", "StateLocked"]


class StateLocked(Exception):
    """Another vigild holds the state file."""


class StateLock:
    POLL = 0.05

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot use state file {self.state_path}: {exc}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StateLocked(
                        f"state file {self.state_path} is in use by another vigild "
                        f"(lock {self.path}); waited {wait:g}s"
                    ) from None
                time.sleep(self.POLL)
            else:
                break
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
