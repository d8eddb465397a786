"""SQLite state: alerts, the notification outbox, probes' last samples and silences.

Alert transitions and the notifications they cause are written in one
transaction, so after any crash either both exist or neither does. WAL with
``synchronous=NORMAL`` survives ``kill -9`` (only a power loss can cost the
last commits), and keeps readers from blocking the writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OutboxEntry", "Store", "StoreError"]

SCHEMA_VERSION = 2

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


@dataclass(frozen=True, slots=True)
class AlertRow:
    fingerprint: str
    target: str
    metric: str
    state: str


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use state file {path}: {exc}") from None

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} was written by a newer vigild (schema {row[0]})"
            )
        # Every schema change so far only adds tables, which the script above created.
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        self._db.close()

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
        """Write alert changes and their notifications atomically."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO alerts (fingerprint, target, metric, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state",
                ((r.fingerprint, r.target, r.metric, r.state) for r in upserts),
            )
            self._db.executemany(
                "DELETE FROM alerts WHERE fingerprint = ?", ((fp,) for fp in deletes)
            )
            self._db.executemany(
                "INSERT INTO outbox (notifier, created, payload, next_attempt) VALUES (?, ?, ?, ?)",
                ((notifier, created, payload, created) for notifier, created, payload in outbox),
            )

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

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- outbox -----------------------------------------------------------

    def outbox_head(self, notifier: str) -> OutboxEntry | None:
        """The oldest undelivered message: a notifier's messages go out in order."""
        row = self._db.execute(
            "SELECT id, notifier, created, payload, attempts, next_attempt FROM outbox "
            "WHERE notifier = ? ORDER BY id LIMIT 1",
            (notifier,),
        ).fetchone()
        return OutboxEntry(*row) if row else None

    def outbox_pending(self, notifier: str) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox WHERE notifier = ?", (notifier,))
        return int(row.fetchone()[0])

    def outbox_entries(self, notifier: str) -> list[tuple[int, str]]:
        """(id, payload) of every queued message of ``notifier``, oldest first."""
        rows = self._db.execute(
            "SELECT id, payload FROM outbox WHERE notifier = ? ORDER BY id", (notifier,)
        )
        return [(int(entry_id), payload) for entry_id, payload in rows]

    def outbox_remove(self, entry_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def outbox_postpone(self, entry_id: int, next_attempt: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            (next_attempt, error, entry_id),
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
