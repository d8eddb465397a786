"""The status page's view of the metrics history: per target, the last 24 h in five-minute
buckets, and the up counts of the last seven days per hour.

Nothing here is stored: it is a cache of the history file (``vigild.storage.history_file``),
which the daemon's writer fills. Buckets that are over are read once, for the targets a
page shows in one pass over the file, by the first render after they ended; the few
still taking results are read again at each render and never kept. Every read runs in
the render's worker thread, never on the event loop. In flat ``array``s, about 3.6 KB
per target, for the ``CACHED`` targets shown last.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import structlog

from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import FIVE_MINUTE, HOURLY, Bucket, Retention

__all__ = [
    "BUCKET",
    "HOURS",
    "SLOTS",
    "WEEK",
    "PageHistory",
    "Points",
    "Recent",
    "Series",
    "drawn",
]

log = structlog.get_logger("vigild")

BUCKET = 300.0
"""Seconds per bucket: the history file's five-minute tier."""
SLOTS = 288
"""Buckets drawn: 24 h of five-minute buckets."""
HOUR = 3600.0
HOURS = 168
"""Hours counted for the week's uptime."""
WEEK = HOURS * HOUR
SETTLED = 2
"""Buckets read again at every render: the open one, and the one before, which a slow
probe's result may still reach (results are written at the end of their cycle)."""
CACHED = 2000
"""Targets whose rings are kept: ten pages of a big setup's (``paging.ROWS``), about 7 MB.
A target shown again after its rings were dropped is read again, as after a restart."""
METRICS = ("up", "latency_seconds")
"""What the page draws: ``latency_seconds`` is what http and tcp probes measure."""


class Points(NamedTuple):
    """Buckets as columns, oldest first: at 10,000 targets an object per bucket would cost
    more than the rest of the page."""

    latency: Sequence[float]
    """The slowest reading per bucket; 0 where none had a latency."""
    probes: Sequence[int]
    """0 where nothing was probed."""
    up: Sequence[int]
    """Probes that found the target up."""


@dataclass(frozen=True, slots=True)
class Recent:
    """What the page shows of one target's history."""

    points: Points
    """The last ``SLOTS`` buckets."""
    week: tuple[int, int]
    """(probes up, probes) in the last seven days."""


def bucket_of(ts: float) -> int:
    return int(ts // BUCKET)


def drawn(latency: float) -> bool:
    """A latency the line can show: a reading, not a NaN or an infinity from a probe."""
    return math.isfinite(latency) and latency > 0


class Series:
    """One target's rings: slot ``b % SLOTS`` holds five-minute bucket ``b``, slot
    ``h % HOURS`` hour ``h``; ``PageHistory`` clears the slots of buckets past the window."""

    __slots__ = ("hour_probes", "hour_up", "latency", "probes", "settled", "up")

    def __init__(self) -> None:
        self.settled = 0
        """Every five-minute bucket before this one is in the rings."""
        self.latency = array("f", bytes(4 * SLOTS))
        self.probes = array("H", bytes(2 * SLOTS))
        self.up = array("H", bytes(2 * SLOTS))
        self.hour_probes = array("I", bytes(4 * HOURS))
        self.hour_up = array("I", bytes(4 * HOURS))

    def clear(self, buckets: range, hours: range) -> None:
        for bucket in buckets:
            slot = bucket % SLOTS
            self.latency[slot] = 0.0
            self.probes[slot] = self.up[slot] = 0
        for hour in hours:
            self.hour_probes[hour % HOURS] = self.hour_up[hour % HOURS] = 0


class _Overlay:
    """The unsettled buckets, read at each render and dropped after it."""

    def __init__(self) -> None:
        self.latency: dict[tuple[str, int], float] = {}
        self.up: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, target: str, metric: str, buckets: Iterable[Bucket]) -> None:
        for b in buckets:
            key = target, int(b.start // 1000 // BUCKET)
            if metric == "up":
                self.up[key] = int(b.sum), int(b.count)
            elif drawn(b.max):
                self.latency[key] = b.max


class PageHistory:
    """The history the status page draws, read from the history file at ``path``, for the
    targets it shows; the rings of the ``capacity`` last shown are kept."""

    def __init__(self, path: Path, retention: Retention, capacity: int = CACHED) -> None:
        self.path = path
        self.retention = retention
        self.capacity = capacity
        self.series: OrderedDict[str, Series] = OrderedDict()
        """Least recently shown first."""
        self._lock = threading.Lock()

    def recent(self, targets: Sequence[str], now: float) -> list[Recent]:
        """Each of ``targets``' history up to ``now``. It reads the file: call it off the loop."""
        newest = bucket_of(now)
        settled = newest - SETTLED + 1
        with self._lock:
            overlay = _Overlay()
            try:
                with HistoryReader(self.path, self.retention) as reader:
                    self._settle(reader, targets, settled)
                    for target, metric, buckets in reader.of_targets(
                        targets, FIVE_MINUTE, METRICS, settled * BUCKET, (newest + 1) * BUCKET
                    ):
                        overlay.add(target, metric, buckets)
            except sqlite3.Error as exc:
                # No file yet (no cycle written), or one the writer is about to move aside:
                # the page still shows the current state, with what the rings hold.
                log.debug("status page: history file not read", error=str(exc))
            shown = [self._recent(name, overlay, now) for name in targets]
            for name in targets:
                if name in self.series:
                    self.series.move_to_end(name)
            while len(self.series) > self.capacity:
                self.series.popitem(last=False)
            return shown

    def _settle(self, reader: HistoryReader, targets: Collection[str], settled: int) -> None:
        """Read the buckets before ``settled`` that ended since each target's last read
        into its rings: the targets read up to the same bucket in one read."""
        since: dict[int | None, list[str]] = {}
        for name in targets:
            series = self.series.get(name)
            # Not shown for over a day: its ring holds nothing still shown but part of the
            # week, which the first read's way gets whole.
            last = None if series is None or series.settled < settled - SLOTS else series.settled
            if last is None or last < settled:
                since.setdefault(last, []).append(name)
        for last, names in since.items():
            try:
                self._read(reader, names, last, settled)
            except sqlite3.Error:
                for name in names:  # part read: read whole the next time
                    self.series.pop(name, None)
                raise

    def _read(
        self, reader: HistoryReader, names: list[str], last: int | None, settled: int
    ) -> None:
        start = settled - SLOTS if last is None else last
        hour_from = int((settled * BUCKET) // HOUR) - HOURS + 1
        if last is None:
            for name in names:
                self.series[name] = Series()
        else:
            # The slots of the buckets and hours now past the window are reused.
            hours = range(max(int(last * BUCKET // HOUR) + 1, hour_from), hour_from + HOURS)
            for name in names:
                self.series[name].clear(range(start, settled), hours)
        split = start * BUCKET
        if last is None:
            # The week before the 24 h from the hourly tier, to a whole hour; the rest from
            # five-minute buckets, so no raw value is read twice.
            split -= split % HOUR
            for target, _, buckets in reader.of_targets(
                names, HOURLY, ("up",), hour_from * HOUR, split
            ):
                _add_hours(self.series[target], buckets)
        for target, metric, buckets in reader.of_targets(
            names, FIVE_MINUTE, METRICS, split, settled * BUCKET
        ):
            series = self.series[target]
            _add_buckets(series, metric, buckets, start)
            if metric == "up":
                _add_hours(series, buckets)
        for name in names:
            self.series[name].settled = settled

    def _recent(self, target: str, overlay: _Overlay, now: float) -> Recent:
        newest = bucket_of(now)
        series = self.series.get(target)
        settled = newest - SETTLED + 1 if series is None else series.settled
        # The ring turned so its oldest shown bucket comes first: slices, not a loop.
        oldest = (newest + 1) % SLOTS
        if series is None:
            latency, probes, up = [0.0] * SLOTS, [0] * SLOTS, [0] * SLOTS
        else:
            latency = (series.latency[oldest:] + series.latency[:oldest]).tolist()
            probes = (series.probes[oldest:] + series.probes[:oldest]).tolist()
            up = (series.up[oldest:] + series.up[:oldest]).tolist()
        week_up = week_probes = 0
        if series is not None:
            week_up, week_probes = sum(series.hour_up), sum(series.hour_probes)
        # Buckets not settled into the ring: what this render read, or nothing.
        for bucket in range(max(settled, newest - SLOTS + 1), newest + 1):
            at = bucket - newest - 1
            up[at], probes[at] = overlay.up.get((target, bucket), (0, 0))
            latency[at] = overlay.latency.get((target, bucket), 0.0)
            week_up += up[at]
            week_probes += probes[at]
        return Recent(Points(latency, probes, up), (week_up, week_probes))


def _add_buckets(series: Series, metric: str, buckets: Iterable[Bucket], since: int) -> None:
    """Into the 24 h ring: the buckets from ``since`` on (older ones' slots are newer's)."""
    for b in buckets:
        bucket = int(b.start // 1000 // BUCKET)
        if bucket < since:
            continue
        slot = bucket % SLOTS
        if metric == "up":
            series.probes[slot] = min(int(b.count), 0xFFFF)
            series.up[slot] = min(int(b.sum), 0xFFFF)
        elif drawn(b.max):
            series.latency[slot] = b.max


def _add_hours(series: Series, buckets: Iterable[Bucket]) -> None:
    for b in buckets:
        slot = int(b.start // 1000 // HOUR) % HOURS
        series.hour_probes[slot] += int(b.count)
        series.hour_up[slot] += int(b.sum)
