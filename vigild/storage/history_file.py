"""The metrics history: every observation's metrics, kept in tiers, in a file of its own.

Three tiers: ``raw`` (every value), ``five_minute`` and ``hourly`` (per
bucket: min, max, sum, count and last; for ``up`` the sum is the number of
probes that found the target up). Each batch of new values (a cycle's) is
one row of a ``staged`` table, which survives a crash; once an hour is over
(plus ``GRACE`` for a slow cycle's results), each series' values of that hour
become one compressed raw block (see ``chunks``). Once a day is over, its raw
blocks give its five-minute block and its hourly buckets, added to the
series' ten-day hourly block: each aggregate block is written once, not
rewritten every hour. Until then, reads aggregate the raw values the same
way. Retention drops whole blocks.

``max_size`` is a hard cap on the file: past it, the oldest hour of raw blocks
whose day has its buckets goes first, then the oldest day of five-minute
blocks, then hourly ones, and last raw blocks still waiting for their buckets.

This file is never in the alerting path: it has its own connection and lives
beside the state file. One that SQLite cannot read is moved aside and a fresh
one started.

Reads are ``history_reader``'s; tiers and buckets are ``history_tiers``'.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from vigild.storage.chunks import encode, keep_bits
from vigild.storage.file import Transaction
from vigild.storage.history_reader import batches, raw_blocks, staged_slice
from vigild.storage.history_tiers import (
    FIVE_MINUTE,
    GRACE,
    HOUR_MS,
    HOURLY,
    RAW,
    TICK,
    TIERS,
    Retention,
    Tier,
    decode_buckets,
    encode_buckets,
    hourly_buckets,
    tier_buckets,
)
from vigild.storage.migrations import Migration, _statements, migrate

__all__ = ["HistoryFile"]

log = structlog.get_logger("vigild")

COMPACT_VALUES = 200_000
"""Values compacted together (3 MB as arrays): a pass takes as many series as that
many values make, from the hour's batches (about one a cycle): 1,600 series of a 30 s
interval, 160 of a 3 s one. A fixed 2,000 series held 40 MB at 3 s, which the process
kept after, and the hour of 10,000 targets at 3 s took 140 MB."""
EXPIRE_EVERY = 300_000
"""Milliseconds between looks for blocks past their tier's retention."""

_MIGRATIONS: tuple[Migration, ...] = (
    _statements(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS series (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            metric TEXT NOT NULL,
            UNIQUE (target, metric)
        )""",
        # Values not compacted yet: one row per batch (a cycle), its series ids, times
        # and values as packed arrays. A row per value would cost more to insert than
        # everything else the history does.
        """CREATE TABLE IF NOT EXISTS staged (
            id INTEGER PRIMARY KEY,
            first INTEGER NOT NULL,
            last INTEGER NOT NULL,
            series BLOB NOT NULL,
            times BLOB NOT NULL,
            vals BLOB NOT NULL
        )""",
        # A rowid table, not WITHOUT ROWID: there a block over about 1 KB would spill
        # into an overflow page of its own, most of it empty.
        """CREATE TABLE IF NOT EXISTS blocks (
            series INTEGER NOT NULL,
            tier INTEGER NOT NULL,
            start INTEGER NOT NULL,
            data BLOB NOT NULL,
            UNIQUE (series, tier, start)
        )""",
        "CREATE INDEX IF NOT EXISTS blocks_by_age ON blocks (tier, start)",
    ),
)


class HistoryFile:
    """The writer's side: one connection, used by one thread."""

    def __init__(
        self,
        path: Path,
        retention: Retention,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the file; one SQLite cannot read is moved aside first.

        Raises ``OSError`` or ``sqlite3.Error`` when no file can be used at ``path``.
        """
        self.path = path
        self.retention = retention
        self.clock = clock
        self.evicted: dict[str, int] = {tier.name: 0 for tier in TIERS}
        """Blocks dropped to stay under ``max_size``, per tier."""
        self.late = 0
        """Values that arrived after their hour was compacted, dropped."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open()
        except sqlite3.OperationalError:
            raise  # locked, cannot open, I/O error, full: not the file's fault
        except sqlite3.DatabaseError as exc:  # not a database, malformed
            self.move_aside(exc)
            self.db = self._open()
        self._series: dict[str, dict[str, int]] = {}
        for id_, target, metric in self.db.execute("SELECT id, target, metric FROM series"):
            self._series.setdefault(str(target), {})[str(metric)] = int(id_)
        self._compacted = self._meta_int("compacted")
        """Every value before this time (ms) is in blocks; None before the first compaction."""
        self._oldest = self._oldest_staged()
        """The oldest staged value's time (ms), kept here: a scan of the table costs."""
        self._expired_at = -EXPIRE_EVERY

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            # Set before the first table, so deleted blocks give their pages back to the
            # file system and the file's size is what ``max_size`` caps.
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 5000")
            migrate(db, self.path, _MIGRATIONS)
        except BaseException:
            db.close()
            raise
        return db

    def move_aside(self, error: Exception) -> Path:
        """Rename the file SQLite cannot use (and its WAL) out of the way, for a person to
        look at, and say so; the caller starts a fresh one."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{aside}{suffix}"))
        log.error(
            "history file is unreadable: moved it aside and started a new one; "
            "alerting is not affected",
            path=str(self.path),
            moved_to=str(aside),
            error=str(error),
        )
        return aside

    def close(self) -> None:
        self.db.close()

    def _meta_int(self, key: str) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _oldest_staged(self) -> int | None:
        oldest: int | None = self.db.execute("SELECT min(first) FROM staged").fetchone()[0]
        return oldest

    def _new_series(self, target: str, metric: str) -> int:
        found: int = self.db.execute(
            "INSERT INTO series (target, metric) VALUES (?, ?) RETURNING id", (target, metric)
        ).fetchone()[0]
        self._series.setdefault(target, {})[metric] = found
        return found

    # -- writing ----------------------------------------------------------

    def append(self, observations: Iterable[tuple[str, float, dict[str, float]]]) -> None:
        """Stage (target, time in seconds, metrics) triples, then compact and cap as due."""
        floor = self._compacted
        ids, times, values = array("q"), array("q"), array("d")
        known = self._series
        with Transaction(self.db):
            for target, seconds, metrics in observations:
                t = int(seconds * 1000) // TICK * TICK
                if floor is not None and t < floor:
                    self.late += len(metrics)
                    continue
                of_target = known.get(target, {})
                for metric, value in metrics.items():
                    series = of_target.get(metric)
                    ids.append(self._new_series(target, metric) if series is None else series)
                    times.append(t)
                    values.append(value)
            if ids:
                self._stage(ids, times, values)
        if ids:
            first = min(times)
            self._oldest = first if self._oldest is None else min(self._oldest, first)
        self.maintain()

    def _stage(self, ids: array[int], times: array[int], values: array[float]) -> None:
        # Sorted by series (stable: a series' values keep their order), so compaction
        # finds a range of series by bisection.
        order = sorted(range(len(ids)), key=ids.__getitem__)
        ids = array("q", map(ids.__getitem__, order))
        times = array("q", map(times.__getitem__, order))
        values = array("d", keep_bits([values[i] for i in order], RAW.bits))
        self.db.execute(
            "INSERT INTO staged (first, last, series, times, vals) VALUES (?, ?, ?, ?, ?)",
            (min(times), max(times), ids.tobytes(), times.tobytes(), values.tobytes()),
        )

    def maintain(self) -> None:
        """Compact the hours that are over, drop what is past retention, keep under the cap."""
        now = int(self.clock() * 1000)
        self._compact(now)
        # Blocks change once an hour: a look every few minutes is plenty, and every
        # cycle would cost more than staging the cycle's values.
        if now >= self._expired_at + EXPIRE_EVERY:
            self._expire(now)
            self._expired_at = now
        self._cap()

    def _compact(self, now: int) -> None:
        while True:
            oldest = self._oldest
            if oldest is None:
                return
            # After a long stop, skip straight to the first hour that holds anything.
            hour = max(self._compacted or 0, oldest - oldest % HOUR_MS)
            end = hour + HOUR_MS
            if now < end + GRACE:
                return
            self._roll_up(hour)
            with Transaction(self.db):
                rows = self.db.execute(
                    "SELECT id, last FROM staged WHERE first < ? ORDER BY id", (end,)
                ).fetchall()
                # A range of series at a time, each batch's part found by bisection in
                # the stored row: the whole hour of 10,000 targets in memory at once
                # would be about 60 MB at a 30 s interval, 600 MB at 3 s.
                top = max((id_ for ids in self._series.values() for id_ in ids.values()), default=0)
                per_pass = max(1, COMPACT_VALUES // max(1, len(rows)))
                for low in range(0, top + 1, per_pass):
                    by_series: dict[int, tuple[array[int], array[float]]] = {}
                    for row, _ in rows:
                        ids, times, values = staged_slice(self.db, row, low, low + per_pass)
                        for series, t, value in zip(ids, times, values, strict=True):
                            if hour <= t < end:
                                found = by_series.get(series)
                                if found is None:
                                    found = by_series[series] = array("q"), array("d")
                                found[0].append(t)
                                found[1].append(value)
                    for series, (times, values) in by_series.items():
                        self._store_hour(series, hour, list(times), list(values))
                for row, last in rows:
                    if last >= end:  # a batch across the hour's end keeps the rest staged
                        _, ids, times, values = next(batches(self.db, "id = ?", (row,)))
                        kept = [i for i, t in enumerate(times) if t >= end]
                        self._stage(
                            array("q", (ids[i] for i in kept)),
                            array("q", (times[i] for i in kept)),
                            array("d", (values[i] for i in kept)),
                        )
                    self.db.execute("DELETE FROM staged WHERE id = ?", (row,))
                self._set_meta("compacted", end)
            self._compacted = end
            self._oldest = self._oldest_staged()
            self._roll_up(end)

    def _store_hour(self, series: int, hour: int, times: list[int], values: list[float]) -> None:
        if times != sorted(times):  # rare: a batch of results that came out of order
            order = sorted(range(len(times)), key=times.__getitem__)  # stable
            times, values = [times[i] for i in order], [values[i] for i in order]
        self._put(series, RAW, hour, encode(times, [values]))

    def _rolled(self) -> int | None:
        """Every day before this time (ms) has its five-minute and hourly buckets."""
        return self._meta_int("rolled")

    def _roll_up(self, until: int) -> None:
        """Make each finished day's five-minute block, and add its hourly buckets to the
        ten-day hourly block, from its raw blocks: once a day. Once an hour would rewrite
        a day's and ten days' blocks 24 times a day, most of the history's CPU."""
        while True:
            day = self._rolled()
            if day is None:
                oldest = self.db.execute(
                    "SELECT min(start) FROM blocks WHERE tier = ?", (RAW.number,)
                ).fetchone()[0]
                if oldest is None:
                    return
                day = oldest - oldest % FIVE_MINUTE.span
            if day + FIVE_MINUTE.span > until:
                return
            end = day + FIVE_MINUTE.span
            with Transaction(self.db):
                for (series,) in self.db.execute(
                    "SELECT DISTINCT series FROM blocks WHERE tier = ? AND start >= ? "
                    "AND start < ?",
                    (RAW.number, day, end),
                ).fetchall():
                    times, values = raw_blocks(self.db, series, day, end)
                    five = tier_buckets(times, values, FIVE_MINUTE)
                    self._put(series, FIVE_MINUTE, day, encode_buckets(five))
                    start = day - day % HOURLY.span
                    found = self.db.execute(
                        "SELECT data FROM blocks WHERE series = ? AND tier = ? AND start = ?",
                        (series, HOURLY.number, start),
                    ).fetchone()
                    hourly = decode_buckets(found[0]) if found else []
                    hourly += hourly_buckets(five)
                    self._put(series, HOURLY, start, encode_buckets(hourly))
                self._set_meta("rolled", end)

    def _put(self, series: int, tier: Tier, start: int, data: bytes) -> None:
        self.db.execute(
            "INSERT INTO blocks (series, tier, start, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET data = excluded.data",
            (series, tier.number, start, data),
        )

    def _expire(self, now: int) -> None:
        with Transaction(self.db):
            rolled = self._rolled() or 0
            for tier in TIERS:
                cutoff = now - int(self.retention.of(tier) * 1000) - tier.span
                if tier is RAW:
                    cutoff = min(cutoff, rolled - tier.span)  # a day's raw makes its buckets
                self.db.execute(
                    "DELETE FROM blocks WHERE tier = ? AND start <= ?", (tier.number, cutoff)
                )
            # Staged values older than raw retention (a clock step back, a long stop).
            cutoff = now - int(self.retention.raw * 1000)
            if self._oldest is not None and self._oldest < cutoff:
                self.db.execute("DELETE FROM staged WHERE last < ?", (cutoff,))
                self._oldest = self._oldest_staged()
        self.db.execute("PRAGMA incremental_vacuum")

    def size(self) -> int:
        """Bytes on disk: the file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def _used(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _cap(self) -> None:
        if self._used() <= self.retention.max_size:
            return
        # Raw whose day has its buckets first; raw the day's buckets are still to be
        # made from only when nothing else is left (those hours lose their buckets).
        for tier, rolled_only in ((RAW, True), (FIVE_MINUTE, False), (HOURLY, False), (RAW, False)):
            while self._used() > self.retention.max_size:
                oldest = self.db.execute(
                    "SELECT min(start) FROM blocks WHERE tier = ?", (tier.number,)
                ).fetchone()[0]
                if oldest is None or (rolled_only and oldest >= (self._rolled() or oldest)):
                    break
                # A whole hour (or day, or ten days) at once: the pages a block frees
                # are shared with its neighbours, so one block rarely frees one.
                end = oldest + tier.span
                with Transaction(self.db):
                    gone = self.db.execute(
                        "DELETE FROM blocks WHERE tier = ? AND start < ?", (tier.number, end)
                    ).rowcount
                    evicted = max(end, self._meta_int(f"evicted:{tier.name}") or 0)
                    self._set_meta(f"evicted:{tier.name}", evicted)
                self.db.execute("PRAGMA incremental_vacuum")
                self.evicted[tier.name] += gone
                log.warning(
                    "history is over max_size: evicted its oldest data",
                    tier=tier.name,
                    before=end / 1000,
                    blocks=gone,
                    max_size=self.retention.max_size,
                )
