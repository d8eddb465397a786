"""The state file's schema, one numbered step at a time.

``meta.schema`` holds the number of the last step a file went through; opening
it runs the steps after that one, each in its own transaction with its new
number, so a step that fails leaves the file at the one before. A file whose
number is past the last step was written by a newer vigild and is refused
untouched. A new kind of record is one more step at the end of ``MIGRATIONS``
and one more repository.

Steps are written to be safe on a file that already has what they add: the
silences table came with schema 2 without a number of its own, so a file at 2
may or may not have it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from vigild.storage.errors import StateFileError
from vigild.storage.file import Transaction

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "version"]

Migration = Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Migration:
    # Not executescript: it commits the open transaction first.
    def step(db: sqlite3.Connection) -> None:
        for statement in sql:
            db.execute(statement)

    return step


def _add_columns(table: str, columns: Sequence[tuple[str, str]]) -> Migration:
    def step(db: sqlite3.Connection) -> None:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    return step


MIGRATIONS: tuple[Migration, ...] = (
    # 1: alert state and the outbox
    _statements(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS alerts (
            fingerprint TEXT PRIMARY KEY,
            target TEXT NOT NULL,
            metric TEXT NOT NULL,
            state TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            notifier TEXT NOT NULL,
            created REAL NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL,
            last_error TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS outbox_by_notifier ON outbox (notifier, id)",
    ),
    # 2: probes' state between runs, runtime silences
    _statements(
        "CREATE TABLE IF NOT EXISTS probe_state (target TEXT PRIMARY KEY, state TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, silence TEXT NOT NULL)",
    ),
    # 3: the status page's history, action runs
    _statements(
        """CREATE TABLE IF NOT EXISTS history (
            bucket INTEGER NOT NULL,
            target TEXT NOT NULL,
            latency REAL NOT NULL,
            probes INTEGER NOT NULL,
            up INTEGER NOT NULL,
            PRIMARY KEY (bucket, target)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS action_runs (
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
            verified TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS action_runs_by_action ON action_runs (action, started)",
    ),
    # 4: an action command's process, so a restarted vigild finds it
    _add_columns(
        "action_runs", (("timeout", "REAL"), ("pgid", "INTEGER"), ("process_started", "REAL"))
    ),
    # 5: push targets' last runs, as their pings tell them
    _statements(
        """CREATE TABLE IF NOT EXISTS push_runs (
            target TEXT PRIMARY KEY,
            started REAL,
            ended REAL,
            succeeded REAL,
            failed INTEGER NOT NULL DEFAULT 0,
            exit_status INTEGER,
            duration REAL,
            output TEXT NOT NULL DEFAULT ''
        )"""
    ),
    # 6: the status page reads the metrics history file; its own buckets go
    _statements("DROP TABLE IF EXISTS history"),
)

SCHEMA_VERSION = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The file's schema number; 0 for a new file."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None:
            return int(row[0])
    return 0


def migrate(
    db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> None:
    """Bring the file to the last step, or refuse one from a newer vigild."""
    found = version(db)
    if found > len(migrations):
        raise StateFileError(f"state file {path} was written by a newer vigild (schema {found})")
    for number, step in enumerate(migrations[found:], start=found + 1):
        with Transaction(db):
            step(db)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(number),),
            )
