"""Alert state: one row per open alert, as the engine serialised it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from vigild.storage.file import Change, StateFile

__all__ = ["AlertRow", "AlertStates"]


@dataclass(frozen=True, slots=True)
class AlertRow:
    fingerprint: str
    target: str
    metric: str
    state: str


class AlertStates:
    def __init__(self, file: StateFile) -> None:
        self._file = file
        self._journal = _Journal()
        file.keeps(self._journal)

    def load(self) -> list[AlertRow]:
        rows = self._file.db.execute("SELECT fingerprint, target, metric, state FROM alerts")
        return [AlertRow(*row) for row in rows]

    def save(self, upserts: Iterable[AlertRow], deletes: Iterable[str]) -> Change:
        """The change for ``StateFile.write``: kept in memory when the file refuses it."""
        upserts, deletes = list(upserts), list(deletes)

        def keep() -> None:
            for row in upserts:
                self._journal.alerts[row.fingerprint] = row
            for fingerprint in deletes:
                self._journal.alerts[fingerprint] = None

        return Change(lambda db: _write(db, upserts, deletes), keep)


def _write(db: sqlite3.Connection, upserts: Iterable[AlertRow], deletes: Iterable[str]) -> None:
    db.executemany(
        "INSERT INTO alerts (fingerprint, target, metric, state) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state",
        ((r.fingerprint, r.target, r.metric, r.state) for r in upserts),
    )
    db.executemany("DELETE FROM alerts WHERE fingerprint = ?", ((fp,) for fp in deletes))


@dataclass
class _Journal:
    alerts: dict[str, AlertRow | None] = field(default_factory=dict)
    """By fingerprint; None: deleted."""

    def __bool__(self) -> bool:
        return bool(self.alerts)

    def write(self, db: sqlite3.Connection) -> None:
        _write(
            db,
            (row for row in self.alerts.values() if row is not None),
            (fingerprint for fingerprint, row in self.alerts.items() if row is None),
        )

    def written(self) -> None:
        self.alerts.clear()
