"""The state file under abuse: deleted, replaced or emptied while vigild uses it, or
reached through a symlink. Real SQLite files, real locks (a real ``vigild run``: tests/system)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from state_files import RECREATED, remove_state

from vigild.storage import AlertRow, Database, StateLock, StateLocked
from vigild.storage.file import RECREATE_RETRY
from vigild.testing import FakeClock

CANNOT = (
    "state file was deleted or replaced and cannot be recreated: alert state is kept "
    "in memory only, and a restart now would lose it"
)


def open_locked(path: Path, clock: FakeClock | None = None) -> Database:
    """As vigild opens it: the database holds the lock, and releases it at close."""
    lock = StateLock(path)
    lock.acquire()
    if clock is None:
        return Database(path, lock=lock)
    return Database(path, lock=lock, clock=clock)


def fill(db: Database, fingerprint: str) -> None:
    """One alert and the notification it caused, written together as the engine does."""
    db.write(
        db.alerts.save([AlertRow(fingerprint, "api", "up", '{"told": {}}')], []),
        db.outbox.queue([("hook", 1.0, "{}")]),
    )


def contents(path: Path) -> tuple[list[str], int, list[str], list[str]]:
    """Alerts, outbox size, silences and probe states, read by a fresh reader."""
    db = Database(path)
    try:
        return (
            sorted(row.fingerprint for row in db.alerts.load()),
            db.outbox.pending("hook"),
            [silence_id for silence_id, _ in db.silences.load()],
            sorted(db.probe_states.load()),
        )
    finally:
        db.close()


def test_a_deleted_state_file_is_recreated_with_all_it_held(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_locked(path)
    fill(db, "before")
    db.silences.save("s1", {"comment": "maintenance"})
    db.probe_states.save([("prom", {"previous": 1.0})])

    remove_state(path)
    db.silences.save("s2", {"comment": "written to the deleted file"})
    with structlog.testing.capture_logs() as logs:
        fill(db, "after")  # a transaction looks at the file first
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "state lock file was deleted while vigild ran: locked it again"),
        ("error", RECREATED),
    ]
    assert db.file.recreated == 1 and db.file.recreate_failures == 0
    with pytest.raises(StateLocked):
        StateLock(path).acquire()  # the new lock file is held again

    db.close()
    assert contents(path) == (["after", "before"], 2, ["s1", "s2"], ["prom"])


def test_a_state_file_deleted_just_before_a_clean_stop_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_locked(path)
    fill(db, "a")
    remove_state(path)
    db.close()
    assert contents(path) == (["a"], 1, [], [])


def test_a_replaced_state_file_is_overwritten_with_the_running_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_locked(path)
    fill(db, "ours")
    mode = path.stat().st_mode
    other = tmp_path / "other.db"
    foreign = Database(other)
    fill(foreign, "theirs")
    foreign.close()
    other.chmod(0o444)
    other.replace(path)  # our WAL is still beside it: it must not be replayed into the copy

    with structlog.testing.capture_logs() as logs:
        db.check()
    assert [e["event"] for e in logs] == [
        "state file was replaced by another file while vigild ran: recreated it from memory"
    ]
    assert path.stat().st_mode == mode
    fill(db, "later")
    db.close()
    assert contents(path) == (["later", "ours"], 2, [], [])


def test_a_state_file_that_cannot_be_recreated_is_retried_and_nothing_stops(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    clock = FakeClock()
    db = open_locked(path, clock)
    fill(db, "a")
    remove_state(path)
    path.mkdir()  # nothing, not even root, can rename a file over a directory

    with structlog.testing.capture_logs() as logs:
        fill(db, "b")  # still recorded, in the open (deleted) file
        fill(db, "c")  # within the retry pause: no second copy attempted
        assert db.file.recreate_failures == 1
        clock.advance(RECREATE_RETRY)
        fill(db, "d")
        assert db.file.recreate_failures == 2
    assert [(e["log_level"], e["event"]) for e in logs if "state file" in e["event"]] == [
        ("error", CANNOT)
    ]  # once per streak
    assert db.outbox.pending("hook") == 4
    assert not list(tmp_path.glob(".state.db.*"))  # no staged copy left behind

    path.rmdir()
    clock.advance(RECREATE_RETRY)
    db.check()
    assert db.file.recreated == 1
    db.close()
    assert contents(path) == (["a", "b", "c", "d"], 4, [], [])


def test_an_empty_state_file_starts_fresh_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    with structlog.testing.capture_logs() as logs:
        Database(path).close()
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "state file is empty: starting fresh")
    ]
    with structlog.testing.capture_logs() as logs:
        Database(path).close()  # written now: no warning
    assert logs == []


def test_a_symlinked_state_path_contends_for_the_same_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    alias = tmp_path / "alias.db"
    alias.symlink_to(path)
    held = StateLock(path)
    held.acquire()
    try:
        with pytest.raises(StateLocked, match="in use by another vigild"):
            StateLock(alias).acquire()
    finally:
        held.release()


def test_a_state_file_that_cannot_be_written_keeps_alerts_and_outbox_in_memory(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "state.db")
    try:
        db.write(db.outbox.queue([("hook", 1.0, '{"first": 1}')]))
        [first] = db.outbox.entries("hook")
        # The file system refuses writes (a full disk): SQLite's own refusal.
        db.file.db.execute("PRAGMA query_only = ON")
        row = AlertRow("fp-db", "db", "up", '{"severity": 2}')
        db.write(
            db.alerts.save([row], []), db.outbox.queue([("hook", 2.0, '{"second": 2}')])
        )  # does not raise
        assert db.file.write_failures == 1
        assert [payload for _, payload in db.outbox.entries("hook")] == [
            '{"first": 1}',
            '{"second": 2}',
        ]
        db.outbox.remove(first[0])  # delivered: not sent again, though not written
        head = db.outbox.head("hook")
        assert head is not None and head.payload == '{"second": 2}'
        db.outbox.postpone(head.id, 99.0, "HTTP 503")
        assert db.outbox.head("hook") == head.__class__(
            head.id, "hook", 2.0, '{"second": 2}', 1, 99.0, "HTTP 503"
        )
        assert db.outbox.pending("hook") == 1

        db.file.db.execute("PRAGMA query_only = OFF")  # space is back
        db.write()
        assert db.outbox.pending("hook") == 1
        written = db.outbox.head("hook")
        assert written is not None and written.id > 0 and written.attempts == 1
        db.outbox.remove(head.id)  # a sender holding the id from before the write
        assert db.outbox.pending("hook") == 0
        assert [r.fingerprint for r in db.alerts.load()] == ["fp-db"]
    finally:
        db.close()
