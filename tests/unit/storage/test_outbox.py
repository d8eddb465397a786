"""The outbox on a real SQLite file: order, its bound, and its journal when the file
refuses writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigild.storage import Database, Dropped
from vigild.storage.file import Change


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    opened = Database(tmp_path / "state.db")
    yield opened
    opened.close()


def message(*fingerprints: str) -> str:
    return json.dumps({"events": [{"fingerprint": fp} for fp in fingerprints]})


def queue(db: Database, *payloads: str) -> None:
    assert db.write(db.outbox.queue(("hook", float(i), p) for i, p in enumerate(payloads)))


def payloads(db: Database) -> list[str]:
    return [payload for _, payload in db.outbox.entries("hook")]


def test_messages_leave_in_order_and_per_notifier(db: Database) -> None:
    queue(db, "a", "b")
    db.write(db.outbox.queue([("other", 0.0, "c")]))
    head = db.outbox.head("hook")
    assert head is not None and head.payload == "a"
    db.outbox.postpone(head.id, 60.0, "HTTP 503")
    assert db.outbox.head("hook") == head.__class__(head.id, "hook", 0.0, "a", 1, 60.0, "HTTP 503")
    db.outbox.remove(head.id)
    assert payloads(db) == ["b"] and db.outbox.pending("other") == 1


def test_the_bound_drops_superseded_messages_first(db: Database) -> None:
    # "x" is told again later, so its first message is no loss; "y"'s only one is.
    queue(db, message("x"), message("y"), message("x"), message("z"))
    assert db.outbox.bound("hook", 3) == Dropped(count=1, superseded=1)
    assert payloads(db) == [message("y"), message("x"), message("z")]


def test_the_bound_then_drops_the_oldest(db: Database) -> None:
    # An unreadable message could never be sent: it goes with the superseded ones.
    queue(db, message("x"), message("y"), "not json", message("z"))
    assert db.outbox.bound("hook", 1) == Dropped(count=3, superseded=1)
    assert payloads(db) == [message("z")]
    assert db.outbox.bound("hook", 1) == Dropped(0, 0)


def test_a_message_kept_in_memory_is_found_by_its_memory_id_once_written(
    db: Database,
) -> None:
    db.file.db.execute("PRAGMA query_only = ON")  # the file refuses writes (a full disk)
    assert not db.write(db.outbox.queue([("hook", 1.0, "kept")]))
    [(memory_id, _)] = db.outbox.entries("hook")
    assert memory_id < 0 and db.outbox.pending("hook") == 1
    db.file.db.execute("PRAGMA query_only = OFF")
    assert db.write()  # written with the next write
    [(written_id, _)] = db.outbox.entries("hook")
    assert written_id > 0
    db.outbox.remove(memory_id)  # a sender that read it before the write
    assert db.outbox.pending("hook") == 0


def test_a_journal_is_written_only_by_a_transaction_that_commits(db: Database) -> None:
    db.file.db.execute("PRAGMA query_only = ON")
    assert not db.write(db.outbox.queue([("hook", 1.0, "kept")]))
    [(memory_id, _)] = db.outbox.entries("hook")
    db.file.db.execute("PRAGMA query_only = OFF")
    kept: list[str] = []

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    # The journal's insert runs, then the transaction rolls back: its id went to nobody.
    assert not db.write(Change(fails, lambda: kept.append("kept")))
    assert kept == ["kept"]
    db.outbox.remove(memory_id)  # delivered
    assert db.outbox.pending("hook") == 0  # not sent again
    assert db.write()
    assert db.outbox.pending("hook") == 0
