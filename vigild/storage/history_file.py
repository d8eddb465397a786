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

Reads (``HistoryReader``) open their own read-only connection, so they can run
beside the writer, in the daemon or in another process.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

import structlog

from vigild.storage.chunks import decode, encode
from vigild.storage.file import Transaction
from vigild.storage.migrations import Migration, _statements, migrate

__all__ = [
    "GRACE",
    "TIERS",
    "Bucket",
    "HistoryFile",
    "HistoryReader",
    "Retention",
    "Tier",
    "TierName",
    "Values",
    "aggregate",
    "combine",
]

log = structlog.get_logger("vigild")

HOUR_MS = 3_600_000
GRACE = 300_000
"""Milliseconds after an hour's end before it is compacted: a cycle's late results."""

COMPACT_SERIES = 2000
"""Series compacted together: bounds the values held in memory to about 2000 hours' worth."""
EXPIRE_EVERY = 300_000
"""Milliseconds between looks for blocks past their tier's retention."""

TierName = Literal["raw", "five_minute", "hourly"]


@dataclass(frozen=True)
class Tier:
    name: TierName
    number: int
    """Its key in the file."""
    step: int
    """Milliseconds per bucket; 0 for raw values."""
    span: int
    """Milliseconds per block."""


TIERS = (
    Tier("raw", 0, 0, HOUR_MS),
    Tier("five_minute", 1, 300_000, 24 * HOUR_MS),
    Tier("hourly", 2, HOUR_MS, 240 * HOUR_MS),
)
RAW, FIVE_MINUTE, HOURLY = TIERS


@dataclass(frozen=True, slots=True)
class Bucket:
    """The values of one step, ``start`` in milliseconds."""

    start: int
    min: float
    max: float
    sum: float
    count: float
    last: float

    def columns(self) -> tuple[float, float, float, float, float]:
        return self.min, self.max, self.sum, self.count, self.last


class Values(NamedTuple):
    """What ``HistoryReader.values`` found: raw (seconds, value) ``points`` when ``tier`` is
    raw, else that tier's ``buckets``."""

    tier: Tier
    points: list[tuple[float, float]]
    buckets: list[Bucket]


class Retention(NamedTuple):
    """Seconds each tier is kept, and the cap on the file's bytes."""

    raw: float = 48 * 3600.0
    five_minute: float = 35 * 86400.0
    hourly: float = 400 * 86400.0
    max_size: int = 2**30

    def of(self, tier: Tier) -> float:
        value: float = getattr(self, tier.name)
        return value


def _extreme(values: Sequence[float], pick: Callable[[Iterable[float]], float]) -> float:
    # NaN is no smaller or larger than anything, so min() would depend on its place.
    numbers = [v for v in values if not math.isnan(v)]
    return pick(numbers) if numbers else math.nan


def aggregate(times: Sequence[int], values: Sequence[float], step: int) -> list[Bucket]:
    """Raw values (in time order) as buckets of ``step`` ms aligned on the epoch."""
    buckets = []
    # A NaN is rare: look once, and take the fast builtins when there is none.
    low, high = (min, max) if not any(map(math.isnan, values)) else (_nan_min, _nan_max)
    at = 0
    count = len(times)
    while at < count:
        start = times[at] - times[at] % step
        end = bisect_left(times, start + step, at)
        chunk = values[at:end]
        buckets.append(
            Bucket(start, low(chunk), high(chunk), sum(chunk), float(end - at), chunk[-1])
        )
        at = end
    return buckets


def _nan_min(values: Sequence[float]) -> float:
    return _extreme(values, min)


def _nan_max(values: Sequence[float]) -> float:
    return _extreme(values, max)


def combine(buckets: Iterable[Bucket], step: int) -> list[Bucket]:
    """Buckets (in time order) merged into coarser ones of ``step`` ms."""
    merged = []
    for start, group in groupby(buckets, lambda b: b.start // step):
        chunk = list(group)
        merged.append(
            Bucket(
                start * step,
                _extreme([b.min for b in chunk], min),
                _extreme([b.max for b in chunk], max),
                sum(b.sum for b in chunk),
                sum(b.count for b in chunk),
                chunk[-1].last,
            )
        )
    return merged


def _buckets(block: bytes) -> list[Bucket]:
    times, columns = decode(block)
    return [Bucket(*row) for row in zip(times, *columns, strict=True)]


def _encode_buckets(buckets: Sequence[Bucket]) -> bytes:
    columns = [list(column) for column in zip(*(b.columns() for b in buckets), strict=True)]
    return encode([b.start for b in buckets], columns)


@overload
def _batches(
    db: sqlite3.Connection, where: str, args: tuple[int, ...], packed: Literal[True]
) -> Iterator[tuple[int, bytes, array[int], array[float]]]: ...


@overload
def _batches(
    db: sqlite3.Connection, where: str, args: tuple[int, ...], packed: Literal[False] = False
) -> Iterator[tuple[int, array[int], array[int], array[float]]]: ...


def _batches(
    db: sqlite3.Connection, where: str, args: tuple[int, ...], packed: bool = False
) -> Iterator[tuple[int, Any, array[int], array[float]]]:
    """Staged batches as (row id, series ids, times, values), in the order they came;
    ``packed`` leaves the series ids as bytes, for searching."""
    for row, ids, times, values in db.execute(
        f"SELECT id, series, times, vals FROM staged WHERE {where} ORDER BY id", args
    ):
        yield (
            row,
            ids if packed else array("q", ids),
            array("q", times),
            array("d", values),
        )


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


def _slice(
    db: sqlite3.Connection, row: int, low: int, high: int
) -> tuple[array[int], array[int], array[float]]:
    """The values of series ``low`` to ``high`` (excluded) in staged batch ``row``, read
    from the file without loading the whole batch."""
    with db.blobopen("staged", "series", row, readonly=True) as ids:
        count = len(ids) // 8

        def first_at_least(key: int) -> int:
            lo, hi = 0, count
            while lo < hi:
                mid = (lo + hi) // 2
                ids.seek(8 * mid)
                if int.from_bytes(ids.read(8), sys.byteorder, signed=True) < key:
                    lo = mid + 1
                else:
                    hi = mid
            return lo

        start, stop = first_at_least(low), first_at_least(high)
        found_ids = array("q", _read(ids, start, stop))
    with db.blobopen("staged", "times", row, readonly=True) as times:
        found_times = array("q", _read(times, start, stop))
    with db.blobopen("staged", "vals", row, readonly=True) as values:
        found_values = array("d", _read(values, start, stop))
    return found_ids, found_times, found_values


def _read(blob: sqlite3.Blob, start: int, stop: int) -> bytes:
    """Items ``start`` to ``stop`` of a blob of 8-byte items."""
    blob.seek(8 * start)
    return blob.read(8 * (stop - start))


def _raw_blocks(
    db: sqlite3.Connection, series: int, start: int, end: int
) -> tuple[list[int], list[float]]:
    times: list[int] = []
    values: list[float] = []
    for (data,) in db.execute(
        "SELECT data FROM blocks WHERE series = ? AND tier = ? AND start >= ? AND start < ? "
        "ORDER BY start",
        (series, RAW.number, start, end),
    ):
        block_times, (block_values,) = decode(data)
        times += block_times
        values += block_values
    return times, values


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
                t = int(seconds * 1000)
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
        values = array("d", map(values.__getitem__, order))
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
                # would be about 60 MB.
                top = max((id_ for ids in self._series.values() for id_ in ids.values()), default=0)
                for low in range(0, top + 1, COMPACT_SERIES):
                    by_series: dict[int, tuple[array[int], array[float]]] = {}
                    for row, _ in rows:
                        ids, times, values = _slice(self.db, row, low, low + COMPACT_SERIES)
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
                        _, ids, times, values = next(_batches(self.db, "id = ?", (row,)))
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
                    times, values = _raw_blocks(self.db, series, day, end)
                    five = aggregate(times, values, FIVE_MINUTE.step)
                    self._put(series, FIVE_MINUTE, day, _encode_buckets(five))
                    start = day - day % HOURLY.span
                    found = self.db.execute(
                        "SELECT data FROM blocks WHERE series = ? AND tier = ? AND start = ?",
                        (series, HOURLY.number, start),
                    ).fetchone()
                    hourly = _buckets(found[0]) if found else []
                    hourly += combine(five, HOURLY.step)
                    self._put(series, HOURLY, start, _encode_buckets(hourly))
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


class HistoryReader:
    """Reads of the history file, on a read-only connection of their own.

    The two questions SLOs, forecasts and backtests ask: ``values`` of a metric
    of a target between two times at the finest tier that holds them, and
    ``aggregates`` of it per step.
    """

    def __init__(self, path: Path, retention: Retention) -> None:
        self.retention = retention
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self.empty = not self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'"
        ).fetchone()
        """The writer has not made its tables yet: nothing to read."""

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def tier_for(self, start: float, now: float) -> Tier:
        """The finest tier that still holds ``start`` (seconds)."""
        for tier in TIERS:
            kept_from = (now - self.retention.of(tier)) * 1000
            row = self.db.execute(
                "SELECT value FROM meta WHERE key = ?", (f"evicted:{tier.name}",)
            ).fetchone()
            if row is not None:
                kept_from = max(kept_from, int(row[0]))
            if start * 1000 >= kept_from:
                return tier
        return HOURLY

    def _series(self, target: str, metric: str) -> int | None:
        row = self.db.execute(
            "SELECT id FROM series WHERE target = ? AND metric = ?", (target, metric)
        ).fetchone()
        return None if row is None else int(row[0])

    def _raw(self, series: int, start: int, end: int) -> Iterator[tuple[int, float]]:
        """Raw values with ``start <= t < end`` (ms), from blocks then from the staged rows."""
        for (data,) in self.db.execute(
            "SELECT data FROM blocks WHERE series = ? AND tier = 0 AND start > ? AND start < ? "
            "ORDER BY start",
            (series, start - RAW.span, end),
        ):
            times, (values,) = decode(data)
            for t, v in zip(times, values, strict=True):
                if start <= t < end:
                    yield t, v
        yield from self._staged(series, start, end)

    def _staged(self, series: int, start: int, end: int) -> Iterator[tuple[int, float]]:
        found = []
        key = array("q", [series]).tobytes()
        where = "last >= ? AND first < ?"
        for _, ids, times, values in _batches(self.db, where, (start, end), packed=True):
            # The series' places in the batch, found by bytes.find rather than a loop.
            at = ids.find(key)
            while at != -1:
                if at % 8 == 0:
                    t = times[at // 8]
                    if start <= t < end:
                        found.append((t, values[at // 8]))
                at = ids.find(key, at + 1)
        found.sort(key=itemgetter(0))
        return iter(found)

    def _stored_buckets(self, series: int, tier: Tier, start: int, end: int) -> list[Bucket]:
        # Days not rolled up yet are raw only (whole days, so no bucket is part stored,
        # part raw): aggregated here the same way.
        row = self.db.execute("SELECT value FROM meta WHERE key = 'rolled'").fetchone()
        rolled = max(start, int(row[0]) if row else start)
        found = self._blocks(series, tier, start, min(end, rolled))
        recent = list(self._raw(series, rolled, end))
        if recent:
            five = aggregate([t for t, _ in recent], [v for _, v in recent], FIVE_MINUTE.step)
            found.extend(five if tier is FIVE_MINUTE else combine(five, HOURLY.step))
        return found

    def _blocks(self, series: int, tier: Tier, start: int, end: int) -> list[Bucket]:
        found: list[Bucket] = []
        if start >= end:
            return found
        for (data,) in self.db.execute(
            "SELECT data FROM blocks WHERE series = ? AND tier = ? AND start > ? AND start < ? "
            "ORDER BY start",
            (series, tier.number, start - tier.span, end),
        ):
            found.extend(b for b in _buckets(data) if start <= b.start < end)
        return found

    def every_target(
        self, tier: Tier, metrics: Collection[str], start: float, end: float
    ) -> Iterator[tuple[str, str, list[Bucket]]]:
        """Every target's ``metrics`` from ``start`` to ``end`` (seconds) in buckets of
        ``tier`` (five-minute or hourly), as (target, metric, buckets): one pass over the
        file for all of them, where ``aggregates`` per target would read every staged
        batch once per target. A series may come in several parts, in no set order;
        a bucket is never split between two parts."""
        if self.empty or not metrics:
            return
        first, last = int(start * 1000), int(end * 1000)
        # One read transaction: the writer compacting staged rows into blocks between two
        # SELECTs would otherwise hide values from both.
        self.db.execute("BEGIN")
        try:
            names = {
                int(id_): (str(target), str(metric))
                for id_, target, metric in self.db.execute(
                    "SELECT id, target, metric FROM series WHERE metric IN "
                    f"({', '.join('?' * len(metrics))})",
                    tuple(metrics),
                )
            }
            row = self.db.execute("SELECT value FROM meta WHERE key = 'rolled'").fetchone()
            rolled = min(last, max(first, int(row[0]) if row else first))
            for series, data in self.db.execute(
                "SELECT series, data FROM blocks WHERE tier = ? AND start > ? AND start < ?",
                (tier.number, first - tier.span, rolled),
            ):
                if series in names:
                    yield *names[series], [b for b in _buckets(data) if first <= b.start < rolled]
            # An hour is either one raw block or staged, never both (compaction moves it
            # whole), and no bucket spans two hours: each block aggregates on its own.
            for series, data in self.db.execute(
                "SELECT series, data FROM blocks WHERE tier = ? AND start > ? AND start < ?",
                (RAW.number, rolled - RAW.span, last),
            ):
                if series in names:
                    times, (values,) = decode(data)
                    lo, hi = bisect_left(times, rolled), bisect_left(times, last)
                    if lo < hi:
                        yield *names[series], aggregate(times[lo:hi], values[lo:hi], tier.step)
            staged: dict[int, tuple[array[int], array[float]]] = {}
            for _, ids, stamps, readings in _batches(
                self.db, "last >= ? AND first < ?", (rolled, last)
            ):
                # Per value, so inline: at 10,000 targets a batch holds tens of thousands.
                for series, t, value in zip(ids, stamps, readings, strict=True):
                    if series in names and rolled <= t < last:
                        held = staged.get(series)
                        if held is None:
                            held = staged[series] = array("q"), array("d")
                        held[0].append(t)
                        held[1].append(value)
        finally:
            self.db.execute("COMMIT")
        for series, (stamps, readings) in staged.items():
            # Batches can come out of order (a slow cycle's): sorted, stable, and cheap
            # when they did not.
            order = sorted(range(len(stamps)), key=stamps.__getitem__)
            yield (
                *names[series],
                aggregate([stamps[i] for i in order], [readings[i] for i in order], tier.step),
            )

    def values(self, target: str, metric: str, start: float, end: float, *, now: float) -> Values:
        """``metric`` of ``target`` from ``start`` to ``end`` (seconds, end excluded) at
        the finest tier that holds ``start``: raw points, or that tier's buckets."""
        if self.empty:
            return Values(RAW, [], [])
        tier = self.tier_for(start, now)
        series = self._series(target, metric)
        if series is None:
            return Values(tier, [], [])
        first, last = int(start * 1000), int(end * 1000)
        if tier is RAW:
            return Values(tier, [(t / 1000, v) for t, v in self._raw(series, first, last)], [])
        return Values(tier, [], self._stored_buckets(series, tier, first, last))

    def aggregates(
        self, target: str, metric: str, start: float, end: float, step: float, *, now: float
    ) -> tuple[Tier, int, list[Bucket]]:
        """``metric`` of ``target`` in buckets of ``step`` seconds (at least the tier's),
        aligned on the epoch: (tier read, step in ms, buckets)."""
        tier = RAW if self.empty else self.tier_for(start, now)
        step_ms = max(int(step * 1000), tier.step, 1)
        series = None if self.empty else self._series(target, metric)
        if series is None:
            return tier, step_ms, []
        first, last = int(start * 1000), int(end * 1000)
        if tier is RAW:
            raw = list(self._raw(series, first, last))
            return tier, step_ms, aggregate([t for t, _ in raw], [v for _, v in raw], step_ms)
        return tier, step_ms, combine(self._stored_buckets(series, tier, first, last), step_ms)
