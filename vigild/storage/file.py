"""The state file itself: its SQLite connection, transactions, and what happens when
the file is deleted, replaced or cannot be written.

WAL with ``synchronous=NORMAL`` survives ``kill -9`` (only a power loss can cost
the last commits), and keeps readers from blocking the writer.

The file is watched while it is open: deleted or replaced under a running
vigild, it is written again at its path from the open database (which still
reads the old inode), so a restart finds every alert and what each notifier
was told.

When the file cannot be written (a full disk, a file system gone read-only),
the repositories that must not lose a change (alert state, the outbox) keep it
in a ``Journal`` and read it through as if written: pages still go out, and a
delivered one is not sent again. The next write that succeeds writes the
journals too. A restart before that repeats what was not written, and loses
nothing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

import structlog

from vigild.storage.errors import StateFileError

__all__ = ["RECREATE_RETRY", "Change", "Journal", "StateFile", "Transaction"]

RECREATE_RETRY = 30.0
"""Seconds between attempts to recreate a state file that could not be recreated: each
attempt copies the whole database."""

log = structlog.get_logger("vigild")


class Change(NamedTuple):
    """One repository's part of a write: how to write it, and how to keep it in its
    journal when the file cannot be written."""

    write: Callable[[sqlite3.Connection], object]
    keep: Callable[[], None]


class Journal(Protocol):
    """A repository's changes that the file could not be given yet."""

    def __bool__(self) -> bool: ...
    def write(self, db: sqlite3.Connection) -> None:
        """Write them, inside the transaction of the next write."""

    def written(self) -> None:
        """That transaction committed: forget them."""


class StateFile:
    def __init__(
        self,
        path: Path,
        *,
        keep_lock: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open (or create) the SQLite file at ``path``; the schema is ``migrations``' job.

        Args:
            keep_lock: called before every check of the file; takes the state lock again
                when its file was deleted too, and raises ``StateFileError`` when it cannot.
            clock: paces the retries of a recreation that failed.
        """
        self.path = path
        # A symlinked path is followed once: the file we watch and recreate is the target.
        self._file = Path(os.path.realpath(path))
        self._keep_lock = keep_lock
        self._clock = clock
        self.recreated = 0
        """How many times the file was recreated after it was deleted or replaced."""
        self.recreate_failures = 0
        self.write_failures = 0
        """Writes of alert state or the outbox that failed and were kept in memory."""
        self._journals: list[Journal] = []
        self._unwritable = False
        self._retry_at = float("-inf")
        self._failing = False
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            if self._file.exists() and self._file.stat().st_size == 0:
                log.warning("state file is empty: starting fresh", path=str(path))
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StateFileError(f"cannot use state file {path}: {exc}") from None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection: a new one after each recreation, so never keep it."""
        return self._db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._file, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            opened = os.stat(self._file)
        except BaseException:
            db.close()
            raise
        self._identity = (opened.st_dev, opened.st_ino)
        self._mode = opened.st_mode & 0o777
        return db

    def close(self) -> None:
        self.check()  # a file deleted since the last write is not lost at a clean stop
        self._db.close()

    def keeps(self, journal: Journal) -> None:
        """Write ``journal`` with the next write that succeeds, before its own change."""
        self._journals.append(journal)

    # -- writing ------------------------------------------------------------

    def transaction(self) -> Transaction:
        """A write transaction on the file as found at its path now; raises on failure."""
        self.check()
        return Transaction(self._db)

    def write(self, *changes: Change) -> bool:
        """Write ``changes`` in one transaction, with whatever the journals hold.

        False when the file could not be written: each change is then kept in its
        repository's journal, and counts as written for everything but a restart.
        """
        pending = [journal for journal in self._journals if journal]
        try:
            with self.transaction():
                for journal in pending:
                    journal.write(self._db)
                for change in changes:
                    change.write(self._db)
        except sqlite3.OperationalError as exc:
            self.write_failures += 1
            if not self._unwritable:
                log.error(
                    "cannot write the state file: alert state and notifications are kept "
                    "in memory until it can be written; a restart now would repeat them",
                    path=str(self.path),
                    error=str(exc),
                )
            self._unwritable = True
            for change in changes:
                change.keep()
            return False
        for journal in pending:
            journal.written()
        if self._unwritable:
            self._unwritable = False
            log.warning("state file written again", path=str(self.path))
        return True

    # -- the file itself ------------------------------------------------------

    def check(self) -> None:
        """Recreate the state file when the path no longer leads to the open one.

        A stat and a compare while all is well. Deleted (``rm state.db*``) or replaced
        while open, the file is written again at its path from the open database, which
        still reads the old inode. When that fails, writes go on to the old inode: alerting
        goes on from memory, and a restart would lose that state. Never raises.
        """
        if self._clock() < self._retry_at:
            return
        try:
            self._keep_lock()
            try:
                found = os.stat(self._file)
            except FileNotFoundError:
                what = "deleted"
            else:
                if (found.st_dev, found.st_ino) == self._identity:
                    return
                what = "replaced by another file"
            self._recreate()
        except (OSError, sqlite3.Error, StateFileError) as exc:
            self.recreate_failures += 1
            self._retry_at = self._clock() + RECREATE_RETRY
            if not self._failing:
                log.error(
                    "state file was deleted or replaced and cannot be recreated: alert "
                    "state is kept in memory only, and a restart now would lose it",
                    path=str(self.path),
                    error=str(exc),
                    retry_every=RECREATE_RETRY,
                )
            self._failing = True
            return
        self.recreated += 1
        self._failing = False
        self._retry_at = float("-inf")
        log.error(
            f"state file was {what} while vigild ran: recreated it from memory",
            path=str(self.path),
        )

    def _recreate(self) -> None:
        """Copy the open database to a new file and move it to the path, then use it."""
        import tempfile  # only ever needed here

        directory = self._file.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{self._file.name}.", suffix=".new")
        os.close(fd)
        staged = Path(name)
        try:
            copy = sqlite3.connect(staged)
            try:
                self._db.backup(copy)
            finally:
                copy.close()
            os.chmod(staged, self._mode)
            # What is left at the path (our own WAL when the file was replaced, or the
            # replacement's) belongs to no file we write: SQLite would replay it into ours.
            for suffix in ("-wal", "-shm"):
                Path(f"{self._file}{suffix}").unlink(missing_ok=True)
            os.replace(staged, self._file)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        old, self._db = self._db, self._connect()
        # SQLite sees the old file has moved, so closing it neither checkpoints into
        # the new file nor deletes the new file's WAL.
        old.close()


class Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            if self._db.in_transaction:  # SQLite may have rolled back by itself (SQLITE_FULL)
                self._db.execute("ROLLBACK")
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            # A COMMIT that failed (a full disk) leaves the transaction open.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
