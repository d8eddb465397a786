"""Schema migrations, on real SQLite files, from files real vigilds wrote."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from vigild.alerting.engine import Engine
from vigild.model import Notification
from vigild.storage import Database, Ping, PushRun, StateFileError
from vigild.storage.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, version

DATA = Path(__file__).parents[2] / "data"
SCHEMA_4 = DATA / "state-schema-4.db"
"""Written by vigild at e2c10e5 (the last ``alerting/store.py``), through its own
engine, pipeline and store: one open alert, its message in the outbox after a
failed attempt, a silence, a probe's state, two status page history buckets (a table
schema 5 drops), two action runs."""
SCHEMA_3 = DATA / "state-before-fleet-identity.db"

NOW = 1_780_000_000.0


def copy(fixture: Path, tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    shutil.copy(fixture, path)
    for suffix in ("-wal", "-shm"):
        if Path(f"{fixture}{suffix}").exists():
            shutil.copy(f"{fixture}{suffix}", f"{path}{suffix}")
    return path


def schema_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return version(db)
    finally:
        db.close()


def test_a_file_written_before_the_storage_package_is_read_row_for_row(tmp_path: Path) -> None:
    path = copy(SCHEMA_4, tmp_path)
    db = Database(path)
    try:
        [alert] = Engine(db.alerts.load(), (), flap_limit=4).alerts()
        assert (alert.target, alert.metric, alert.severity.label) == ("api", "up", "critical")
        assert alert.told == {"hook": ("critical", NOW)}

        [entry] = db.outbox.entries("hook")
        head = db.outbox.head("hook")
        assert head is not None and head.id == entry[0] == 1
        assert (head.attempts, head.next_attempt, head.last_error) == (1, NOW + 2, "HTTP 503")
        [event] = Notification.from_json(json.loads(head.payload)).events
        assert event.fingerprint == alert.fingerprint and event.kind == "firing"

        [(silence_id, silence)] = db.silences.load()
        assert silence_id == "aa628a88ef92f3c1"
        assert silence["comment"] == "moving racks" and silence["matchers"]["target"] == "db*"

        assert db.probe_states.load() == {
            "api-metrics": {"previous": {"requests": 120.0, "errors": 3.0}}
        }
        assert not _tables(path) & {"history"}  # the status page reads the history file now

        done, skipped = db.actions.runs("rollback", 0.0, alert.fingerprint, NOW)
        assert (done.outcome, done.verified, done.exit_code) == ("succeeded", "helped", 0)
        assert (done.timeout, done.pgid, done.process_started) == (300.0, 4242, NOW + 60.5)
        assert (skipped.outcome, skipped.detail) == ("skipped", "cooldown")
    finally:
        db.close()
    assert schema_of(path) == SCHEMA_VERSION


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


def test_step_6_drops_the_status_page_buckets_and_keeps_everything_else(
    tmp_path: Path,
) -> None:
    path = copy(SCHEMA_4, tmp_path)
    assert schema_of(path) == 4
    before = _tables(path)
    assert "history" in before  # two buckets of the old status page history
    Database(path).close()
    assert schema_of(path) == 6
    assert _tables(path) == (before | {"push_runs"}) - {"history"}


def test_the_current_schema_is_opened_without_a_write(tmp_path: Path) -> None:
    path = copy(SCHEMA_4, tmp_path)
    Database(path).close()
    assert schema_of(path) == SCHEMA_VERSION == 6  # a file at today's schema needs no step
    before = path.read_bytes()
    Database(path).close()
    assert path.read_bytes() == before


def test_a_schema_4_file_gets_a_push_runs_table(tmp_path: Path) -> None:
    path = copy(SCHEMA_4, tmp_path)
    db = Database(path)
    try:
        assert db.push_runs.get("backup") is None
        db.push_runs.record("backup", Ping("success", NOW))
        assert db.push_runs.get("backup") == PushRun(ended=NOW, succeeded=NOW, exit_status=0)
        assert db.alerts.load()  # its alerts are still there
    finally:
        db.close()
    assert schema_of(path) == SCHEMA_VERSION


def test_a_schema_3_file_gets_the_steps_after_3(tmp_path: Path) -> None:
    path = copy(SCHEMA_3, tmp_path)
    assert schema_of(path) == 3
    db = Database(path)
    try:
        columns = {row[1] for row in db.file.db.execute("PRAGMA table_info(action_runs)")}
        assert {"timeout", "pgid", "process_started"} <= columns
        assert db.alerts.load()  # its alerts are still there
    finally:
        db.close()
    assert schema_of(path) == SCHEMA_VERSION
    assert "history" not in _tables(path)


def test_a_new_file_goes_through_every_step(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Database(path).close()
    assert schema_of(path) == len(MIGRATIONS)
    db = sqlite3.connect(path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"meta", "alerts", "outbox", "probe_state", "silences", "action_runs"} <= tables
    assert "history" not in tables


def test_a_file_from_a_newer_vigild_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateFileError, match="newer vigild"):
        Database(path).close()
    db = sqlite3.connect(path)
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    db.close()
    assert tables == ["meta"]


def test_a_step_that_fails_leaves_the_file_at_the_step_before(tmp_path: Path) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, tmp_path / "state.db", (*MIGRATIONS[:2], broken))
    assert version(db) == 2
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'half'").fetchone()
    migrate(db, tmp_path / "state.db")  # the fixed step runs next time
    assert version(db) == SCHEMA_VERSION
    db.close()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database, but long enough to be read as one" * 100)
    with pytest.raises(StateFileError, match="cannot use state file"):
        Database(path)
