"""Reading the metrics history (``HistoryReader``): its own read-only connection, so
it runs beside the writer, in the daemon or in another process (``vigild backtest``)."""

from __future__ import annotations

import sqlite3
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, overload

from vigild.storage.chunks import decode
from vigild.storage.history_tiers import (
    HOURLY,
    RAW,
    TIERS,
    Bucket,
    Retention,
    Tier,
    Values,
    aggregate,
    combine,
    decode_buckets,
    tier_buckets,
)

__all__ = ["HistoryReader", "batches", "raw_blocks", "staged_slice"]


@overload
def batches(
    db: sqlite3.Connection, where: str, args: tuple[int, ...], packed: Literal[True]
) -> Iterator[tuple[int, bytes, array[int], array[float]]]: ...


@overload
def batches(
    db: sqlite3.Connection, where: str, args: tuple[int, ...], packed: Literal[False] = False
) -> Iterator[tuple[int, array[int], array[int], array[float]]]: ...


def batches(
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


def staged_slice(
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
        found_ids = array("q", _read_blob(ids, start, stop))
    with db.blobopen("staged", "times", row, readonly=True) as times:
        found_times = array("q", _read_blob(times, start, stop))
    with db.blobopen("staged", "vals", row, readonly=True) as values:
        found_values = array("d", _read_blob(values, start, stop))
    return found_ids, found_times, found_values


def _read_blob(blob: sqlite3.Blob, start: int, stop: int) -> bytes:
    """Items ``start`` to ``stop`` of a blob of 8-byte items."""
    blob.seek(8 * start)
    return blob.read(8 * (stop - start))


def raw_blocks(
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

    def kept_from(self, tier: Tier, now: float) -> float:
        """The oldest time (seconds) ``tier`` still holds: its retention, or what
        ``max_size`` evicted."""
        kept_from = (now - self.retention.of(tier)) * 1000
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = ?", (f"evicted:{tier.name}",)
        ).fetchone()
        if row is not None:
            kept_from = max(kept_from, int(row[0]))
        return kept_from / 1000

    def tier_for(self, start: float, now: float) -> Tier:
        """The finest tier that still holds ``start`` (seconds)."""
        for tier in TIERS:
            if start >= self.kept_from(tier, now):
                return tier
        return HOURLY

    def series(self) -> list[tuple[str, str]]:
        """Every (target, metric) the file has ever held, in the order first seen."""
        if self.empty:
            return []
        return [
            (str(target), str(metric))
            for target, metric in self.db.execute("SELECT target, metric FROM series ORDER BY id")
        ]

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
        for _, ids, times, values in batches(self.db, where, (start, end), packed=True):
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
            found.extend(tier_buckets([t for t, _ in recent], [v for _, v in recent], tier))
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
            found.extend(decode_buckets(data, start, end))
        return found

    def of_targets(
        self,
        targets: Collection[str],
        tier: Tier,
        metrics: Collection[str],
        start: float,
        end: float,
    ) -> Iterator[tuple[str, str, list[Bucket]]]:
        """``targets``' ``metrics`` from ``start`` to ``end`` (seconds) in buckets of
        ``tier`` (five-minute or hourly), as (target, metric, buckets): one pass over the
        file for all of them, where ``aggregates`` per target would read every staged
        batch once per target. A series may come in several parts, in no set order;
        a bucket is never split between two parts. For a few hundred targets at most
        (a status page's): they are named in the query."""
        if self.empty or not metrics or not targets:
            return
        first, last = int(start * 1000), int(end * 1000)
        # One read transaction: the writer compacting staged rows into blocks between two
        # SELECTs would otherwise hide values from both.
        self.db.execute("BEGIN")
        try:
            names = self._names(metrics, targets)
            # Their blocks only, through the (series, tier, start) index: of 10,000 targets'
            # blocks, a page's few hundred.
            blocks = (
                "SELECT series, data FROM blocks WHERE tier = ? AND start > ? AND start < ? "
                f"AND series IN ({', '.join(map(str, sorted(names)))})"
            )
            row = self.db.execute("SELECT value FROM meta WHERE key = 'rolled'").fetchone()
            rolled = min(last, max(first, int(row[0]) if row else first))
            for series, data in self.db.execute(blocks, (tier.number, first - tier.span, rolled)):
                yield (
                    *names[series],
                    decode_buckets(data, first, rolled),
                )
            # An hour is either one raw block or staged, never both (compaction moves it
            # whole), and no bucket spans two hours: each block aggregates on its own.
            for series, data in self.db.execute(blocks, (RAW.number, rolled - RAW.span, last)):
                times, (values,) = decode(data)
                lo, hi = bisect_left(times, rolled), bisect_left(times, last)
                if lo < hi:
                    yield *names[series], tier_buckets(times[lo:hi], values[lo:hi], tier)
            staged = self._staged_of(names, rolled, last)
        finally:
            self.db.execute("COMMIT")
        for series, (stamps, readings) in staged.items():
            # Batches can come out of order (a slow cycle's): sorted, stable, and cheap
            # when they did not.
            order = sorted(range(len(stamps)), key=stamps.__getitem__)
            yield (
                *names[series],
                tier_buckets([stamps[i] for i in order], [readings[i] for i in order], tier),
            )

    def _names(
        self, metrics: Collection[str], targets: Collection[str]
    ) -> dict[int, tuple[str, str]]:
        """Series id → (target, metric), of ``metrics`` of ``targets``."""
        rows = self.db.execute(
            "SELECT id, target, metric FROM series "
            f"WHERE metric IN ({_marks(metrics)}) AND target IN ({_marks(targets)})",
            (*metrics, *targets),
        )
        return {int(id_): (str(target), str(metric)) for id_, target, metric in rows}

    def _staged_of(
        self, names: Collection[int], rolled: int, last: int
    ) -> dict[int, tuple[array[int], array[float]]]:
        """The staged values of series ``names`` with ``rolled <= t < last``, each found
        in a batch by bisection (a batch is sorted by series)."""
        staged: dict[int, tuple[array[int], array[float]]] = {}
        wanted = sorted(names)
        for _, ids, stamps, readings in batches(self.db, "last >= ? AND first < ?", (rolled, last)):
            for series in wanted:
                for at in range(bisect_left(ids, series), bisect_right(ids, series)):
                    if rolled <= stamps[at] < last:
                        held = staged.get(series)
                        if held is None:
                            held = staged[series] = array("q"), array("d")
                        held[0].append(stamps[at])
                        held[1].append(readings[at])
        return staged

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
        return (
            tier,
            step_ms,
            combine(self._stored_buckets(series, tier, first, last), step_ms),
        )


def _marks(values: Collection[object]) -> str:
    """SQL placeholders for ``values``: ``?, ?, ?``."""
    return ", ".join("?" * len(values))
