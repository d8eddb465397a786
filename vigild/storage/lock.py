"""One process at a time on a state file: the daemon, or one ``--once`` run.

The lock is a sidecar file (``state.db.lock``) held with ``flock``: locking
the database file itself would be undone by SQLite's own POSIX locks, which
any ``close()`` of that file in this process releases. It sits beside the
resolved file, so every path that leads to one state file (a symlink) leads to
one lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import structlog

from vigild.storage.errors import StateFileError

__all__ = ["LOCK_WAIT", "StateLock", "StateLocked", "lock_wait"]

log = structlog.get_logger("vigild")

LOCK_WAIT = 10.0
"""How long ``--once`` and the CLI wait for a state file held by another vigild."""


def lock_wait() -> float:
    """``LOCK_WAIT``, or ``$VIGILD_TEST_LOCK_WAIT``: only for tests, which must not wait
    10 s to see a run give up on a held lock (a subprocess gets no other handle)."""
    return float(os.environ.get("VIGILD_TEST_LOCK_WAIT", LOCK_WAIT))


class StateLocked(Exception):
    """Another vigild holds the state file."""


class StateLock:
    POLL = 0.05

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        real = Path(os.path.realpath(state_path))
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(f"cannot use state file {self.state_path}: {exc}") from None
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

    def keep(self) -> None:
        """Lock again when the lock file was deleted or replaced while held.

        The old lock holds only a file no path leads to any more: another vigild
        would take a new one at the path. Raises ``StateFileError`` when one did.
        """
        if self._fd is None:
            return
        held = os.fstat(self._fd)
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            pass
        else:
            if (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino):
                return
        old = self._fd
        try:
            self.acquire()
        except StateLocked as exc:
            raise StateFileError(
                f"the state lock was deleted, and another vigild took it: {exc}"
            ) from None
        os.close(old)
        log.warning(
            "state lock file was deleted while vigild ran: locked it again", path=str(self.path)
        )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
