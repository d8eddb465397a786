"""The status page's history: five-minute buckets per target, written once per bucket."""

from __future__ import annotations

from collections.abc import Iterable

from vigild.storage.file import StateFile

__all__ = ["History", "HistoryRow"]

HistoryRow = tuple[str, int, float, int, int]
"""(target, bucket, max latency seconds, probes, probes up)."""


class History:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def load(self, since_bucket: int) -> list[HistoryRow]:
        """Every bucket from ``since_bucket`` on."""
        rows = self._file.db.execute(
            "SELECT target, bucket, latency, probes, up FROM history WHERE bucket >= ?",
            (since_bucket,),
        )
        return [(str(t), int(b), float(lat), int(n), int(up)) for t, b, lat, n, up in rows]

    def save(self, rows: Iterable[HistoryRow], prune_before: int) -> None:
        """Upsert finished buckets and drop those older than ``prune_before``, in one go."""
        with self._file.transaction():
            self._file.db.executemany(
                "INSERT INTO history (target, bucket, latency, probes, up) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, target) DO UPDATE SET "
                "latency = excluded.latency, probes = excluded.probes, up = excluded.up",
                rows,
            )
            self._file.db.execute("DELETE FROM history WHERE bucket < ?", (prune_before,))
