"""The state file under abuse: deleted, replaced or emptied while vigild uses it, or
reached through a symlink. Real SQLite files, real locks (a real ``vigild run``: tests/system)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from state_files import RECREATED, remove_state

from vigild.alerting.lock import StateLock, StateLocked
from vigild.alerting.store import RECREATE_RETRY, AlertRow, Store
from vigild.testing import FakeClock

CANNOT = (
    "state file was deleted or replaced and cannot be recreated: alert state is kept "
    "in memory only, and a restart now would lose it"
)


def open_locked(path: Path, clock: FakeClock | None = None) -> tuple[Store, StateLock]:
    lock = StateLock(path)
    lock.acquire()
    if clock is None:
        return Store(path, keep_lock=lock.keep), lock
    return Store(path, keep_lock=lock.keep, clock=clock), lock


def fill(store: Store, fingerprint: str) -> None:
    """One alert and the notification it caused, written together as the engine does."""
    store.commit([AlertRow(fingerprint, "api", "up", '{"told": {}}')], [], [("hook", 1.0, "{}")])


def contents(path: Path) -> tuple[list[str], int, list[str], list[str]]:
    """Alerts, outbox size, silences and probe states, read by a fresh reader."""
    store = Store(path)
    try:
        return (
            sorted(row.fingerprint for row in store.load_alerts()),
            store.outbox_pending("hook"),
            [silence_id for silence_id, _ in store.load_silences()],
            sorted(store.load_probe_states()),
        )
    finally:
        store.close()


def test_a_deleted_state_file_is_recreated_with_all_it_held(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, lock = open_locked(path)
    fill(store, "before")
    store.save_silence("s1", {"comment": "maintenance"})
    store.save_probe_states([("prom", {"previous": 1.0})])

    remove_state(path)
    store.save_silence("s2", {"comment": "written to the deleted file"})
    with structlog.testing.capture_logs() as logs:
        fill(store, "after")  # a transaction looks at the file first
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "state lock file was deleted while vigild ran: locked it again"),
        ("error", RECREATED),
    ]
    assert store.recreated == 1 and store.recreate_failures == 0
    with pytest.raises(StateLocked):
        StateLock(path).acquire()  # the new lock file is held again

    store.close()
    lock.release()
    assert contents(path) == (["after", "before"], 2, ["s1", "s2"], ["prom"])


def test_a_state_file_deleted_just_before_a_clean_stop_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, lock = open_locked(path)
    fill(store, "a")
    remove_state(path)
    store.close()
    lock.release()
    assert contents(path) == (["a"], 1, [], [])


def test_a_replaced_state_file_is_overwritten_with_the_running_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, lock = open_locked(path)
    fill(store, "ours")
    mode = path.stat().st_mode
    other = tmp_path / "other.db"
    foreign = Store(other)
    fill(foreign, "theirs")
    foreign.close()
    other.chmod(0o444)
    other.replace(path)  # our WAL is still beside it: it must not be replayed into the copy

    with structlog.testing.capture_logs() as logs:
        store.check()
    assert [e["event"] for e in logs] == [
        "state file was replaced by another file while vigild ran: recreated it from memory"
    ]
    assert path.stat().st_mode == mode
    fill(store, "later")
    store.close()
    lock.release()
    assert contents(path) == (["later", "ours"], 2, [], [])


def test_a_state_file_that_cannot_be_recreated_is_retried_and_nothing_stops(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    clock = FakeClock()
    store, lock = open_locked(path, clock)
    fill(store, "a")
    remove_state(path)
    path.mkdir()  # nothing, not even root, can rename a file over a directory

    with structlog.testing.capture_logs() as logs:
        fill(store, "b")  # still recorded, in the open (deleted) file
        fill(store, "c")  # within the retry pause: no second copy attempted
        assert store.recreate_failures == 1
        clock.advance(RECREATE_RETRY)
        fill(store, "d")
        assert store.recreate_failures == 2
    assert [(e["log_level"], e["event"]) for e in logs if "state file" in e["event"]] == [
        ("error", CANNOT)
    ]  # once per streak
    assert store.outbox_pending("hook") == 4
    assert not list(tmp_path.glob(".state.db.*"))  # no staged copy left behind

    path.rmdir()
    clock.advance(RECREATE_RETRY)
    store.check()
    assert store.recreated == 1
    store.close()
    lock.release()
    assert contents(path) == (["a", "b", "c", "d"], 4, [], [])


def test_an_empty_state_file_starts_fresh_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    with structlog.testing.capture_logs() as logs:
        Store(path).close()
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "state file is empty: starting fresh")
    ]
    with structlog.testing.capture_logs() as logs:
        Store(path).close()  # written now: no warning
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
    store = Store(tmp_path / "state.db")
    try:
        store.commit([], [], [("hook", 1.0, '{"first": 1}')])
        [first] = store.outbox_entries("hook")
        # The file system refuses writes (a full disk): SQLite's own refusal.
        store._db.execute("PRAGMA query_only = ON")
        row = AlertRow("fp-db", "db", "up", '{"severity": 2}')
        store.commit([row], [], [("hook", 2.0, '{"second": 2}')])  # does not raise
        assert store.write_failures == 1
        assert [payload for _, payload in store.outbox_entries("hook")] == [
            '{"first": 1}',
            '{"second": 2}',
        ]
        store.outbox_remove(first[0])  # delivered: not sent again, though not written
        head = store.outbox_head("hook")
        assert head is not None and head.payload == '{"second": 2}'
        store.outbox_postpone(head.id, 99.0, "HTTP 503")
        assert store.outbox_head("hook") == head.__class__(
            head.id, "hook", 2.0, '{"second": 2}', 1, 99.0, "HTTP 503"
        )
        assert store.outbox_pending("hook") == 1

        store._db.execute("PRAGMA query_only = OFF")  # space is back
        store.commit([], [], [])
        assert store.outbox_pending("hook") == 1
        written = store.outbox_head("hook")
        assert written is not None and written.id > 0 and written.attempts == 1
        store.outbox_remove(head.id)  # a sender holding the id from before the write
        assert store.outbox_pending("hook") == 0
        assert [r.fingerprint for r in store.load_alerts()] == ["fp-db"]
    finally:
        store.close()
