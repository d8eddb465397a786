"""SQLite state: alerts, the notification outbox, probes' last samples, silences and
the status page's 24 h history.

Alert transitions and the notifications they cause are written in one
transaction, so after any crash either both exist or neither does. WAL with
``synchronous=NORMAL`` survives ``kill -9`` (only a power loss can cost the
last commits), and keeps readers from blocking the writer.

The file is watched while it is open: deleted or replaced under a running
vigild, it is written again at its path from the open database (which still
reads the old inode), so a restart finds every alert and what each notifier
was told.

When the file cannot be written (a full disk, a file system gone read-only),
alert changes and the outbox are kept in memory (``_Unwritten``) and read
through as if written: pages still go out, and a delivered one is not sent
again. The next write that succeeds writes them too. A restart before that
repeats what was not written, and loses nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

__all__ = ["ActionRun", "OutboxEntry", "Store", "StoreError", "read_action_history"]

SCHEMA_VERSION = 4

RECREATE_RETRY = 30.0
"""Seconds between attempts to recreate a state file that could not be recreated: each
attempt copies the whole database."""

log = structlog.get_logger("vigild")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier TEXT NOT NULL,
    created REAL NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_notifier ON outbox (notifier, id);
CREATE TABLE IF NOT EXISTS probe_state (target TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, silence TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    bucket INTEGER NOT NULL,
    target TEXT NOT NULL,
    latency REAL NOT NULL,
    probes INTEGER NOT NULL,
    up INTEGER NOT NULL,
    PRIMARY KEY (bucket, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS action_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    incident REAL NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    output TEXT NOT NULL DEFAULT '',
    verified TEXT,
    timeout REAL,
    pgid INTEGER,
    process_started REAL
);
CREATE INDEX IF NOT EXISTS action_runs_by_action ON action_runs (action, started);
"""


class StoreError(Exception):
    """The state file cannot be opened or is not vigild's."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    notifier: str
    created: float
    payload: str
    attempts: int
    next_attempt: float
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ActionRun:
    """One run (or skip, or dry run) of an action; ``outcome`` is "running" until it ends."""

    id: int
    action: str
    fingerprint: str
    target: str
    metric: str
    incident: float
    """The alert's ``started``: with the fingerprint, the incident this run answered."""
    started: float
    finished: float | None
    outcome: str
    detail: str
    exit_code: int | None
    output: str
    verified: str | None
    """After a successful run: "helped" or "did not help", once ``verify_after`` passed."""
    timeout: float | None = None
    pgid: int | None = None
    """A command's process group, with its leader's start time (psutil ``create_time``):
    a vigild restarted while it runs tells it from a process that reused the pid."""
    process_started: float | None = None


_HISTORY_COLUMNS = (
    "id, action, fingerprint, target, metric, incident, started, finished, outcome, detail, "
    "exit_code, output, verified"
)
_ACTION_COLUMNS = _HISTORY_COLUMNS + ", timeout, pgid, process_started"

_RUN_PROCESS_COLUMNS = (("timeout", "REAL"), ("pgid", "INTEGER"), ("process_started", "REAL"))
"""Schema 4 added them to ``action_runs``."""


def read_action_history(path: Path, limit: int) -> list[ActionRun]:
    """The latest ``limit`` action runs, oldest first, read-only: a daemon may hold the file."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read state file {path}: {exc}") from None
    try:
        rows = db.execute(
            # Not the process columns: a file not yet opened by this vigild lacks them.
            f"SELECT {_HISTORY_COLUMNS} FROM action_runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # written by a vigild from before actions
        raise StoreError(f"cannot read state file {path}: {exc}") from None
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read state file {path}: {exc}") from None
    finally:
        db.close()
    return [ActionRun(*row) for row in reversed(rows)]


@dataclass
class _Unwritten:
    """What the state file should hold and could not be given yet."""

    alerts: dict[str, AlertRow | None] = field(default_factory=dict)
    """By fingerprint; None: deleted."""
    outbox: list[OutboxEntry] = field(default_factory=list)
    """Queued messages, with negative ids of their own."""
    removed: set[int] = field(default_factory=set)
    postponed: dict[int, tuple[int, float, str]] = field(default_factory=dict)
    """Outbox id → (further attempts, next attempt, last error)."""

    def __bool__(self) -> bool:
        return bool(self.alerts or self.outbox or self.removed or self.postponed)


@dataclass(frozen=True, slots=True)
class AlertRow:
    fingerprint: str
    target: str
    metric: str
    state: str


class Store:
    def __init__(
        self,
        path: Path,
        *,
        keep_lock: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open (or create) the state file at ``path``.

        Args:
            keep_lock: called before every check of the file; takes the state lock again
                when its file was deleted too, and raises ``StoreError`` when it cannot.
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
        self._unwritten = _Unwritten()
        self._unwritable = False
        self._next_memory_id = -1
        self._written_as: dict[int, int] = {}
        """Memory id → the id its message got once written, for a sender still holding it."""
        self._retry_at = float("-inf")
        self._failing = False
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            if self._file.exists() and self._file.stat().st_size == 0:
                log.warning("state file is empty: starting fresh", path=str(path))
            self._db = self._connect()
            self._check_version()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use state file {path}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._file, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            opened = os.stat(self._file)
        except BaseException:
            db.close()
            raise
        self._identity = (opened.st_dev, opened.st_ino)
        self._mode = opened.st_mode & 0o777
        return db

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} was written by a newer vigild (schema {row[0]})"
            )
        # Tables the file lacks the script above created; columns are added here.
        if row is not None and int(row[0]) < 4:
            self._add_columns("action_runs", _RUN_PROCESS_COLUMNS)
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def _add_columns(self, table: str, columns: Iterable[tuple[str, str]]) -> None:
        # A file from before the table has it from the script, with every column.
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.check()  # a file deleted since the last write is not lost at a clean stop
        self._db.close()

    # -- the file itself --------------------------------------------------

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
        except (OSError, sqlite3.Error, StoreError) as exc:
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

    # -- alerts -----------------------------------------------------------

    def load_alerts(self) -> list[AlertRow]:
        rows = self._db.execute("SELECT fingerprint, target, metric, state FROM alerts")
        return [AlertRow(*row) for row in rows]

    def commit(
        self,
        upserts: Iterable[AlertRow],
        deletes: Iterable[str],
        outbox: Iterable[tuple[str, float, str]],
    ) -> None:
        """Write alert changes and their notifications atomically (or keep them in memory)."""
        upserts, deletes = list(upserts), list(deletes)
        queued = [
            OutboxEntry(0, notifier, created, payload, 0, created)
            for notifier, created, payload in outbox
        ]

        def write() -> None:
            self._write_alerts(upserts, deletes)
            self._write_outbox(queued)

        if self._write(write):
            return
        for row in upserts:
            self._unwritten.alerts[row.fingerprint] = row
        for fingerprint in deletes:
            self._unwritten.alerts[fingerprint] = None
        for entry in queued:
            self._unwritten.outbox.append(replace(entry, id=self._next_memory_id))
            self._next_memory_id -= 1

    def _write_alerts(self, upserts: Iterable[AlertRow], deletes: Iterable[str]) -> None:
        self._db.executemany(
            "INSERT INTO alerts (fingerprint, target, metric, state) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state",
            ((r.fingerprint, r.target, r.metric, r.state) for r in upserts),
        )
        self._db.executemany("DELETE FROM alerts WHERE fingerprint = ?", ((fp,) for fp in deletes))

    def _write_outbox(self, entries: Iterable[OutboxEntry]) -> list[int]:
        ids = []
        for e in entries:
            cursor = self._db.execute(
                "INSERT INTO outbox (notifier, created, payload, attempts, next_attempt, "
                "last_error) VALUES (?, ?, ?, ?, ?, ?)",
                (e.notifier, e.created, e.payload, e.attempts, e.next_attempt, e.last_error),
            )
            assert cursor.lastrowid is not None
            ids.append(cursor.lastrowid)
        return ids

    def _write(self, change: Callable[[], object]) -> bool:
        """Run ``change`` in a transaction, with whatever earlier writes left in memory.

        False when the file could not be written: the caller keeps its change in memory.
        """
        kept = self._unwritten
        try:
            with self._transaction():
                if kept:
                    self._write_unwritten(kept)
                change()
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
            return False
        if kept:
            self._unwritten = _Unwritten()
        if self._unwritable:
            self._unwritable = False
            log.warning("state file written again", path=str(self.path))
        return True

    def _write_unwritten(self, kept: _Unwritten) -> None:
        self._write_alerts(
            (row for row in kept.alerts.values() if row is not None),
            (fingerprint for fingerprint, row in kept.alerts.items() if row is None),
        )
        self._db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in kept.removed))
        self._db.executemany(
            "UPDATE outbox SET attempts = attempts + ?, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            ((more, at, error, i) for i, (more, at, error) in kept.postponed.items()),
        )
        ids = self._write_outbox(kept.outbox)
        self._written_as.update(zip((e.id for e in kept.outbox), ids, strict=True))

    # -- probe state -----------------------------------------------------

    def load_probe_states(self) -> dict[str, dict[str, Any]]:
        states = {}
        for target, text in self._db.execute("SELECT target, state FROM probe_state"):
            try:
                states[target] = json.loads(text)
            except ValueError:
                continue  # a rate starts again; nothing else depends on it
        return states

    def save_probe_states(self, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO probe_state (target, state) VALUES (?, ?) "
                "ON CONFLICT (target) DO UPDATE SET state = excluded.state",
                ((target, json.dumps(state)) for target, state in states),
            )

    # -- silences ---------------------------------------------------------

    def load_silences(self) -> list[tuple[str, dict[str, Any]]]:
        rows = []
        for silence_id, text in self._db.execute("SELECT id, silence FROM silences"):
            try:
                rows.append((silence_id, json.loads(text)))
            except ValueError:
                continue
        return rows

    def save_silence(self, silence_id: str, row: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO silences (id, silence) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET silence = excluded.silence",
            (silence_id, json.dumps(row)),
        )

    def delete_silence(self, silence_id: str) -> None:
        self._db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))

    # -- status page history ---------------------------------------------

    def load_history(self, since_bucket: int) -> list[tuple[str, int, float, int, int]]:
        """(target, bucket, latency, probes, up) of every bucket from ``since_bucket`` on."""
        rows = self._db.execute(
            "SELECT target, bucket, latency, probes, up FROM history WHERE bucket >= ?",
            (since_bucket,),
        )
        return [(str(t), int(b), float(lat), int(n), int(up)) for t, b, lat, n, up in rows]

    def save_history(
        self, rows: Iterable[tuple[str, int, float, int, int]], prune_before: int
    ) -> None:
        """Upsert finished buckets and drop those older than ``prune_before``, in one go."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO history (target, bucket, latency, probes, up) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, target) DO UPDATE SET "
                "latency = excluded.latency, probes = excluded.probes, up = excluded.up",
                rows,
            )
            self._db.execute("DELETE FROM history WHERE bucket < ?", (prune_before,))

    def _transaction(self) -> _Transaction:
        self.check()
        return _Transaction(self._db)

    # -- action runs ------------------------------------------------------

    def add_action_run(
        self,
        *,
        action: str,
        fingerprint: str,
        target: str,
        metric: str,
        incident: float,
        started: float,
        outcome: str,
        detail: str = "",
        timeout: float | None = None,
    ) -> int:
        """Record a run as it starts ("running"), or a skip or dry run, which end at once."""
        finished = None if outcome == "running" else started
        cursor = self._db.execute(
            "INSERT INTO action_runs (action, fingerprint, target, metric, incident, started, "
            "finished, outcome, detail, timeout) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                action,
                fingerprint,
                target,
                metric,
                incident,
                started,
                finished,
                outcome,
                detail,
                timeout,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_action_run(
        self,
        run_id: int,
        *,
        finished: float,
        outcome: str,
        detail: str,
        exit_code: int | None,
        output: str,
    ) -> None:
        self._db.execute(
            "UPDATE action_runs SET finished = ?, outcome = ?, detail = ?, exit_code = ?, "
            "output = ? WHERE id = ?",
            (finished, outcome, detail, exit_code, output, run_id),
        )

    def record_action_process(self, run_id: int, pgid: int, started: float) -> None:
        self._db.execute(
            "UPDATE action_runs SET pgid = ?, process_started = ? WHERE id = ?",
            (pgid, started, run_id),
        )

    def verify_action_run(self, run_id: int, verdict: str) -> None:
        self._db.execute("UPDATE action_runs SET verified = ? WHERE id = ?", (verdict, run_id))

    def action_runs(
        self, action: str, since: float, fingerprint: str, incident: float
    ) -> list[ActionRun]:
        """What the guards of ``action`` need: its runs since ``since``, any still running,
        and every run of the incident, oldest first."""
        rows = self._db.execute(
            f"SELECT {_ACTION_COLUMNS} FROM action_runs WHERE action = ? AND "
            "(started >= ? OR outcome = 'running' OR (fingerprint = ? AND incident = ?)) "
            "ORDER BY id",
            (action, since, fingerprint, incident),
        )
        return [ActionRun(*row) for row in rows]

    def action_runs_to_verify(self) -> list[ActionRun]:
        rows = self._db.execute(
            f"SELECT {_ACTION_COLUMNS} FROM action_runs "
            "WHERE outcome IN ('succeeded', 'finished') AND verified IS NULL ORDER BY id"
        )
        return [ActionRun(*row) for row in rows]

    def running_action_runs(self) -> list[ActionRun]:
        rows = self._db.execute(
            f"SELECT {_ACTION_COLUMNS} FROM action_runs WHERE outcome = 'running' ORDER BY id"
        )
        return [ActionRun(*row) for row in rows]

    # -- outbox -----------------------------------------------------------

    def outbox_head(self, notifier: str) -> OutboxEntry | None:
        """The oldest undelivered message: a notifier's messages go out in order."""
        return next(self._outbox(notifier), None)

    def outbox_pending(self, notifier: str) -> int:
        if not self._unwritten:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE notifier = ?", (notifier,))
            return int(row.fetchone()[0])
        return sum(1 for _ in self._outbox(notifier))

    def outbox_entries(self, notifier: str) -> list[tuple[int, str]]:
        """(id, payload) of every queued message of ``notifier``, oldest first."""
        return [(entry.id, entry.payload) for entry in self._outbox(notifier)]

    def _outbox(self, notifier: str) -> Iterator[OutboxEntry]:
        """The notifier's queue, oldest first, with what is kept in memory read through."""
        kept = self._unwritten
        rows = self._db.execute(
            "SELECT id, notifier, created, payload, attempts, next_attempt, last_error "
            "FROM outbox WHERE notifier = ? ORDER BY id",
            (notifier,),
        )
        for row in rows:
            entry = OutboxEntry(*row)
            if entry.id in kept.removed:
                continue
            if entry.id in kept.postponed:
                more, at, error = kept.postponed[entry.id]
                entry = replace(
                    entry, attempts=entry.attempts + more, next_attempt=at, last_error=error
                )
            yield entry
        yield from (entry for entry in kept.outbox if entry.notifier == notifier)

    def outbox_remove(self, entry_id: int) -> None:
        entry_id = self._written_as.pop(entry_id, entry_id)
        if entry_id < 0:
            self._unwritten.outbox = [e for e in self._unwritten.outbox if e.id != entry_id]
            return
        if not self._write(
            lambda: self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))
        ):
            self._unwritten.removed.add(entry_id)
            self._unwritten.postponed.pop(entry_id, None)

    def outbox_postpone(self, entry_id: int, next_attempt: float, error: str) -> None:
        entry_id = self._written_as.get(entry_id, entry_id)
        if entry_id < 0:
            self._unwritten.outbox = [
                replace(e, attempts=e.attempts + 1, next_attempt=next_attempt, last_error=error)
                if e.id == entry_id
                else e
                for e in self._unwritten.outbox
            ]
            return

        def postpone() -> None:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE id = ?",
                (next_attempt, error, entry_id),
            )

        if not self._write(postpone):
            more, _, _ = self._unwritten.postponed.get(entry_id, (0, 0.0, ""))
            self._unwritten.postponed[entry_id] = (more + 1, next_attempt, error)


class _Transaction:
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
