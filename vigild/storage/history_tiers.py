"""The metrics history's tiers and buckets: what each tier keeps, how values become
five-minute and hourly buckets (min, max, sum, count, last), and a block of buckets
as bytes. Pure: ``history_file`` writes them, ``history_reader`` reads them."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal, NamedTuple

from vigild.storage.chunks import MAX_TIME, decode, encode, keep_bits

__all__ = [
    "FIVE_MINUTE",
    "GRACE",
    "HOURLY",
    "HOUR_MS",
    "RAW",
    "TICK",
    "TIERS",
    "Bucket",
    "Retention",
    "Tier",
    "TierName",
    "Values",
    "aggregate",
    "combine",
    "decode_buckets",
    "encode_buckets",
    "hourly_buckets",
    "tier_buckets",
]

HOUR_MS = 3_600_000
TICK = 100
"""Milliseconds raw times are kept to: a cycle's results share its tick, and the
milliseconds it started late by would cost more bytes than the value beside them."""
GRACE = 300_000
"""Milliseconds after an hour's end before it is compacted: a cycle's late results."""


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
    bits: int
    """Bits of mantissa each stored value keeps (whole numbers are kept exactly, so
    counts and increases are): a probe's latency is noise below its third digit, noise
    no encoding compresses, and it would fill the disk budget five times over. Raw
    values keep 1 part in 8,000, for backtests against thresholds; buckets 1 part in
    250, finer than any chart of them shows."""


TIERS = (
    Tier("raw", 0, 0, HOUR_MS, 12),
    Tier("five_minute", 1, 300_000, 24 * HOUR_MS, 7),
    Tier("hourly", 2, HOUR_MS, 240 * HOUR_MS, 7),
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
    five_minute: float = 14 * 86400.0
    hourly: float = 180 * 86400.0
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


def decode_buckets(block: bytes, start: int = -MAX_TIME, end: int = MAX_TIME) -> list[Bucket]:
    """The block's buckets that start from ``start`` to ``end`` (ms, excluded): only
    those become objects."""
    times, columns = decode(block)
    lo, hi = bisect_left(times, start), bisect_left(times, end)
    return [Bucket(*row) for row in zip(times[lo:hi], *(c[lo:hi] for c in columns), strict=True)]


def encode_buckets(buckets: Sequence[Bucket]) -> bytes:
    columns = [list(column) for column in zip(*(b.columns() for b in buckets), strict=True)]
    return encode([b.start for b in buckets], columns)


def _kept(buckets: Sequence[Bucket], bits: int) -> list[Bucket]:
    columns = zip(*(b.columns() for b in buckets), strict=True)
    kept = [keep_bits(column, bits) for column in columns]
    return [Bucket(b.start, *row) for b, row in zip(buckets, zip(*kept, strict=True), strict=True)]


def tier_buckets(times: Sequence[int], values: Sequence[float], tier: Tier) -> list[Bucket]:
    """Raw values (in time order) as ``tier``'s buckets, as the tier keeps them: the same
    whether made by a day's roll-up or read from raw values not rolled up yet."""
    five = _kept(aggregate(times, values, FIVE_MINUTE.step), FIVE_MINUTE.bits)
    return five if tier is FIVE_MINUTE else hourly_buckets(five)


def hourly_buckets(five: Sequence[Bucket]) -> list[Bucket]:
    """Five-minute buckets rolled up into hourly ones, as the hourly tier keeps them."""
    return _kept(combine(five, HOURLY.step), HOURLY.bits)
