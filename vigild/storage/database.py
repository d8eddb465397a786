"""The state file as vigild uses it: locked, migrated, and one repository per kind
of record.

A kind of record owns its table and its rules (the outbox its bound, alert
state and the outbox their journal for a file that cannot be written); the
``Database`` holds one of each, so every client shares the same journals.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from vigild.storage.actions import ActionLog
from vigild.storage.alerts import AlertStates
from vigild.storage.errors import StateFileError
from vigild.storage.file import Change, StateFile
from vigild.storage.lock import StateLock
from vigild.storage.migrations import migrate
from vigild.storage.outbox import Outbox
from vigild.storage.pings import PushRuns
from vigild.storage.probes import ProbeStates
from vigild.storage.silences import Silences

__all__ = ["Database"]


class Database:
    def __init__(
        self,
        path: Path,
        *,
        lock: StateLock | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open, and migrate, the state file at ``path``.

        Args:
            lock: the state lock, already acquired: the database keeps it taken while
                open (again when its file is deleted) and releases it at ``close``.
            clock: paces the retries of a recreation that failed.
        """
        self._lock = lock
        try:
            self.file = StateFile(path, keep_lock=lock.keep if lock else lambda: None, clock=clock)
            try:
                migrate(self.file.db, path)
            except sqlite3.Error as exc:
                self.file.db.close()
                raise StateFileError(f"cannot use state file {path}: {exc}") from None
            except BaseException:
                self.file.db.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self.alerts = AlertStates(self.file)
        self.outbox = Outbox(self.file)
        self.actions = ActionLog(self.file)
        self.silences = Silences(self.file)
        self.probe_states = ProbeStates(self.file)
        self.push_runs = PushRuns(self.file)

    @classmethod
    async def open(cls, path: Path, *, lock_wait: float = 0.0) -> Self:
        """Take the state lock (waiting up to ``lock_wait`` seconds, off the loop) and open."""
        lock = StateLock(path)
        await asyncio.to_thread(lock.acquire, lock_wait)
        return cls(path, lock=lock)

    @property
    def path(self) -> Path:
        return self.file.path

    def write(self, *changes: Change) -> bool:
        """Write the repositories' ``changes`` in one transaction (see ``StateFile.write``)."""
        return self.file.write(*changes)

    def check(self) -> None:
        """Recreate the file if it was deleted or replaced (see ``StateFile.check``)."""
        self.file.check()

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            if self._lock is not None:
                self._lock.release()
