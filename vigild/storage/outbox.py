"""The notification outbox: each notifier's queue, in order, and its bound.

Messages are queued in the transaction that records the alert changes they
tell (``AlertStates.save`` and ``Outbox.queue`` go to one ``StateFile.write``),
and leave the queue only when delivery is done with them. What the file could
not be given yet is read through from memory, with negative ids of its own;
once written, a sender still holding such an id finds the message by it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from vigild.storage.file import Change, StateFile

__all__ = ["Dropped", "Outbox", "OutboxEntry"]


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
class Dropped:
    """What ``Outbox.bound`` removed: ``count`` messages, ``superseded`` of them
    covered by a later message for every alert they told."""

    count: int
    superseded: int


class Outbox:
    def __init__(self, file: StateFile) -> None:
        self._file = file
        self._journal = _Journal()
        file.keeps(self._journal)

    def queue(self, messages: Iterable[tuple[str, float, str]]) -> Change:
        """The change for ``StateFile.write`` that queues (notifier, created, payload)."""
        entries = [
            OutboxEntry(0, notifier, created, payload, 0, created)
            for notifier, created, payload in messages
        ]

        def keep() -> None:
            for entry in entries:
                self._journal.outbox.append(replace(entry, id=self._journal.next_id))
                self._journal.next_id -= 1

        return Change(lambda db: _insert(db, entries), keep)

    def head(self, notifier: str) -> OutboxEntry | None:
        """The oldest undelivered message: a notifier's messages go out in order."""
        return next(self._entries(notifier), None)

    def pending(self, notifier: str) -> int:
        if not self._journal:
            row = self._file.db.execute(
                "SELECT count(*) FROM outbox WHERE notifier = ?", (notifier,)
            )
            return int(row.fetchone()[0])
        return sum(1 for _ in self._entries(notifier))

    def entries(self, notifier: str) -> list[tuple[int, str]]:
        """(id, payload) of every queued message of ``notifier``, oldest first."""
        return [(entry.id, entry.payload) for entry in self._entries(notifier)]

    def _entries(self, notifier: str) -> Iterator[OutboxEntry]:
        """The notifier's queue, oldest first, with what is kept in memory read through."""
        kept = self._journal
        rows = self._file.db.execute(
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

    def remove(self, entry_id: int) -> None:
        kept = self._journal
        entry_id = kept.written_as.pop(entry_id, entry_id)
        if entry_id < 0:
            kept.outbox = [e for e in kept.outbox if e.id != entry_id]
            return

        def keep() -> None:
            kept.removed.add(entry_id)
            kept.postponed.pop(entry_id, None)

        self._file.write(
            Change(lambda db: db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)), keep)
        )

    def postpone(self, entry_id: int, next_attempt: float, error: str) -> None:
        kept = self._journal
        entry_id = kept.written_as.get(entry_id, entry_id)
        if entry_id < 0:
            kept.outbox = [
                replace(e, attempts=e.attempts + 1, next_attempt=next_attempt, last_error=error)
                if e.id == entry_id
                else e
                for e in kept.outbox
            ]
            return

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE id = ?",
                (next_attempt, error, entry_id),
            )

        def keep() -> None:
            more, _, _ = kept.postponed.get(entry_id, (0, 0.0, ""))
            kept.postponed[entry_id] = (more + 1, next_attempt, error)

        self._file.write(Change(write, keep))

    def bound(self, notifier: str, limit: int) -> Dropped:
        """Keep ``notifier``'s queue within ``limit`` messages.

        What goes first is what its reader would never miss: messages every alert
        of which a later message covers, oldest first, and only then the oldest
        of the rest. Either way, what is dropped of each alert's messages is
        always its oldest ones: a reader then sees the end of each alert's story,
        never firing twice without the resolve between.
        """
        count = self.pending(notifier)
        if count <= limit:
            return Dropped(0, 0)
        entries = []
        for entry_id, payload in self.entries(notifier):
            try:
                alerts = {e["fingerprint"] for e in json.loads(payload)["events"]}
            except (ValueError, KeyError, TypeError):
                alerts = set()  # unreadable: it could never be sent anyway
            entries.append((entry_id, alerts))
        later: dict[str, int] = {}
        for entry_id, alerts in entries:
            for alert in alerts:
                later[alert] = entry_id  # the last message that mentions it
        superseded: list[int] = []
        kept: set[str] = set()  # alerts with a message that stays: nothing after it may go
        for entry_id, alerts in entries:
            if all(later[a] > entry_id for a in alerts) and not alerts & kept:
                superseded.append(entry_id)
            else:
                kept |= alerts
        excess = count - limit
        victims = superseded[:excess]
        if len(victims) < excess:
            gone = set(victims)
            victims += [i for i, _ in entries if i not in gone][: excess - len(victims)]
        for entry_id in victims:
            self.remove(entry_id)
        return Dropped(len(victims), min(len(victims), len(superseded)))


def _insert(db: sqlite3.Connection, entries: Iterable[OutboxEntry]) -> list[int]:
    ids = []
    for e in entries:
        cursor = db.execute(
            "INSERT INTO outbox (notifier, created, payload, attempts, next_attempt, "
            "last_error) VALUES (?, ?, ?, ?, ?, ?)",
            (e.notifier, e.created, e.payload, e.attempts, e.next_attempt, e.last_error),
        )
        assert cursor.lastrowid is not None
        ids.append(cursor.lastrowid)
    return ids


@dataclass
class _Journal:
    outbox: list[OutboxEntry] = field(default_factory=list)
    """Queued messages, with negative ids of their own."""
    removed: set[int] = field(default_factory=set)
    postponed: dict[int, tuple[int, float, str]] = field(default_factory=dict)
    """Outbox id → (further attempts, next attempt, last error)."""
    next_id: int = -1
    written_as: dict[int, int] = field(default_factory=dict)
    """Memory id → the id its message got once written, for a sender still holding it."""
    _writing: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outbox or self.removed or self.postponed)

    def write(self, db: sqlite3.Connection) -> None:
        db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in self.removed))
        db.executemany(
            "UPDATE outbox SET attempts = attempts + ?, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            ((more, at, error, i) for i, (more, at, error) in self.postponed.items()),
        )
        ids = _insert(db, self.outbox)
        # Known only once the transaction commits: one rolled back gave these ids to nobody.
        self._writing = dict(zip((e.id for e in self.outbox), ids, strict=True))

    def written(self) -> None:
        self.written_as.update(self._writing)
        self._writing = {}
        self.outbox = []
        self.removed = set()
        self.postponed = {}
