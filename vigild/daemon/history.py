"""The last 24 hours of every target's latency and up/down, for the status page.

One ring of ``SLOTS`` five-minute buckets per observed target, held in flat
``array``s (no object per probe or per bucket), so memory stays fixed however
long vigild runs: about 1.8 KB per target. A probe only updates the bucket it
falls into; the store sees finished buckets once per bucket, not every probe,
and the open bucket once more at shutdown, so a restart keeps the graph.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from vigild.events import CycleCompleted, ProbeResult
from vigild.model import Observation
from vigild.storage.history import HistoryRow

__all__ = ["BUCKET", "SLOTS", "History", "HistoryStore", "Point", "Series"]

BUCKET = 300.0
"""Seconds per bucket."""
SLOTS = 288
"""Buckets kept: 24 h of five-minute buckets."""

_MAX_COUNT = 255
"""Counts are bytes; a bucket that fills one halves both, which keeps the up fraction."""


class HistoryStore(Protocol):
    def load(self, since_bucket: int) -> Iterable[HistoryRow]: ...
    def save(self, rows: Iterable[HistoryRow], prune_before: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket as the page draws it."""

    latency: float | None
    """The slowest reading in the bucket, None when no reading had a latency."""
    up: float
    """Fraction of the bucket's probes that found the target up."""


class Series:
    """One target's ring. ``last`` is the newest bucket written; a slot ``i`` holds the
    bucket ``b`` with ``b % SLOTS == i`` and ``last - SLOTS < b <= last``."""

    __slots__ = ("last", "latency", "probes", "up")

    def __init__(self) -> None:
        self.latency = array("f", bytes(4 * SLOTS))
        self.probes = array("B", bytes(SLOTS))
        self.up = array("B", bytes(SLOTS))
        self.last = -1

    def _advance(self, bucket: int) -> None:
        # Clear the slots of the buckets skipped since the last write: they are stale.
        start = max(self.last + 1, bucket - SLOTS + 1)
        for each in range(start, bucket + 1):
            slot = each % SLOTS
            self.latency[slot] = 0.0
            self.probes[slot] = 0
            self.up[slot] = 0
        self.last = bucket

    def add(self, bucket: int, latency: float, up: bool) -> None:
        if bucket > self.last:
            self._advance(bucket)
        elif bucket <= self.last - SLOTS:
            return  # older than the ring (a clock step back): nowhere to put it
        slot = bucket % SLOTS
        probes = self.probes[slot]
        if probes == _MAX_COUNT:
            probes = _MAX_COUNT // 2
            self.up[slot] //= 2
        self.probes[slot] = probes + 1
        if up:
            self.up[slot] += 1
        self.latency[slot] = max(self.latency[slot], latency)

    def put(self, bucket: int, latency: float, probes: int, up: int) -> None:
        """Restore one stored bucket (rows may come in any order)."""
        if bucket > self.last:
            self._advance(bucket)
        elif bucket <= self.last - SLOTS:
            return
        slot = bucket % SLOTS
        self.latency[slot] = latency
        self.probes[slot] = min(probes, _MAX_COUNT)
        self.up[slot] = min(up, probes, _MAX_COUNT)

    def copy(self) -> Series:
        """A copy to read elsewhere: three array copies, where its points are 288 objects
        (at 10,000 targets with a day of history, seconds of the event loop)."""
        ring = Series.__new__(Series)
        ring.latency, ring.probes, ring.up = self.latency[:], self.probes[:], self.up[:]
        ring.last = self.last
        return ring

    def row(self, bucket: int) -> tuple[float, int, int] | None:
        """(latency, probes, up) of ``bucket``, None when it has no reading."""
        if not self.last - SLOTS < bucket <= self.last:
            return None
        slot = bucket % SLOTS
        probes = self.probes[slot]
        if probes == 0:
            return None
        return float(self.latency[slot]), probes, self.up[slot]

    def points(self, newest: int) -> list[Point | None]:
        """The ``SLOTS`` buckets ending at ``newest``, oldest first; None where empty."""
        points: list[Point | None] = []
        for bucket in range(newest - SLOTS + 1, newest + 1):
            row = self.row(bucket)
            if row is None:
                points.append(None)
            else:
                latency, probes, up = row
                points.append(Point(latency if latency > 0 else None, up / probes))
        return points


def bucket_of(ts: float) -> int:
    return int(ts // BUCKET)


def points_of(ring: Series | None, now: float) -> list[Point | None]:
    """The last 24 h of a ring, oldest first; all None for no ring."""
    return [None] * SLOTS if ring is None else ring.points(bucket_of(now))


def _latency(observation: Observation) -> float:
    if not observation.up:
        return 0.0  # how fast a probe failed says nothing about the service: a gap, not a dip
    # http and tcp report the response time; other probes only have their own duration.
    value = observation.metrics.get("latency_seconds")
    if value is None or not math.isfinite(value):
        value = observation.duration
    return value if math.isfinite(value) and value > 0 else 0.0


class History:
    """Every target's ring, fed by each probe result, written to the store per bucket."""

    def __init__(self, store: HistoryStore | None, *, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.series: dict[str, Series] = {}
        self._open = bucket_of(clock())
        """The oldest bucket not yet written to the store in full."""

    def load(self) -> History:
        """Restore the last 24 h from the store; a bucket already written counts as open
        again, so the readings of this run are added to it, not written over it."""
        if self.store is None:
            return self
        now = bucket_of(self.clock())
        for target, bucket, latency, probes, up in self.store.load(now - SLOTS + 1):
            if bucket > now:
                continue  # written under a clock that ran ahead: it would hide new readings
            series = self.series.get(target)
            if series is None:
                series = self.series[target] = Series()
            series.put(bucket, latency, probes, up)
        self._open = now
        return self

    def probe_result(self, event: ProbeResult) -> None:
        """It runs for every probe, so it is a dict lookup and a few array writes."""
        observation = event.observation
        series = self.series.get(observation.target)
        if series is None:
            series = self.series[observation.target] = Series()
        series.add(bucket_of(observation.time), _latency(observation), observation.up)

    def cycle_completed(self, event: CycleCompleted) -> None:
        """Write the buckets that finished since the last write, and prune what is past 24 h."""
        if not event.recorded:
            return
        current = bucket_of(event.now)
        if current > self._open:
            self._write(range(self._open, current), current)
            self._open = current

    def close(self) -> None:
        """Write the open bucket too: a restart within it keeps what it holds."""
        current = bucket_of(self.clock())
        self._write(range(self._open, current + 1), current)
        self._open = current

    def _write(self, buckets: range, current: int) -> None:
        if self.store is None:
            return
        # Older than the ring is not worth writing (a long pause between cycles).
        buckets = range(max(buckets.start, current - SLOTS + 1), buckets.stop)
        self.store.save(self._rows(buckets), prune_before=current - SLOTS + 1)

    def _rows(self, buckets: range) -> Iterator[HistoryRow]:
        for target, series in self.series.items():
            for bucket in buckets:
                row = series.row(bucket)
                if row is not None:
                    yield (target, bucket, *row)

    def retain(self, owner_of: Callable[[str], str | None]) -> None:
        """After a reload: forget the rings of what no configured target observes any more."""
        for name in [n for n in self.series if owner_of(n) is None]:
            del self.series[name]

    def points(self, target: str, now: float) -> list[Point | None]:
        """The last 24 h of ``target``, oldest first; all None when it has no readings."""
        return points_of(self.series.get(target), now)

    def ring(self, target: str) -> Series | None:
        """A copy of ``target``'s ring, for ``points_of`` off the event loop."""
        series = self.series.get(target)
        return None if series is None else series.copy()
