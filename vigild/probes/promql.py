"""The PromQL arithmetic vigild needs from two scrapes of a page. Pure: no I/O.

- ``increase``, ``bucket_increases``: counter increases between two scrapes,
  with resets handled per series as ``rate()`` does.
- ``histogram_quantile``: PromQL's classic-histogram interpolation, line for line.
- ``summary_quantiles``: a summary's own quantiles.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter

from vigild.probes.selectors import Series

__all__ = [
    "Buckets",
    "bucket_increases",
    "finite_values",
    "histogram_buckets",
    "histogram_quantile",
    "increase",
    "summary_quantiles",
]


# ---------------------------------------------------------------------------
# Counters


def finite_values(series: Iterable[Series]) -> tuple[dict[str, float], list[str]]:
    """Values by series key, and the keys of NaN or infinite samples (left out: they count
    nothing)."""
    values: dict[str, float] = {}
    skipped: list[str] = []
    for s in series:
        if math.isfinite(s.value):
            values[s.key] = s.value
        else:
            skipped.append(s.key)
    return values, skipped


def _increase_of(before: float | None, now: float) -> float:
    # A series absent from the previous scrape counts from 0. Apps create a label set at
    # its first increment, so all of its value happened since then. (Prometheus's rate()
    # ignores such a series: it needs two samples of it.) A value that went down is a
    # counter reset, the service restarted: as in rate(), all of the new value is increase.
    if before is None or now < before:
        return now
    return now - before


def increase(previous: Mapping[str, float], current: Mapping[str, float]) -> float:
    """Sum of each series' increase since ``previous``, resets handled per series."""
    return sum(_increase_of(previous.get(key), value) for key, value in current.items())


# ---------------------------------------------------------------------------
# Histograms


@dataclass(frozen=True, slots=True)
class Buckets:
    """A histogram's bucket series that a selector picked, ready for ``bucket_increases``."""

    counts: dict[str, float]
    """Series key → cumulative count."""
    bounds: dict[str, float]
    """Series key → its ``le``."""
    skipped: list[str]
    """Keys of series left out with their whole histogram (a NaN or infinite bucket)."""
    problem: str | None = None
    """Why no quantile can come from these buckets (no +Inf bucket), or None."""


def histogram_buckets(series: Iterable[Series], family: str) -> Buckets:
    """The ``_bucket`` series of ``family``, grouped per histogram (labels but ``le``).

    A bucket without a readable ``le`` is ignored, as in PromQL. A histogram with a
    NaN or infinite bucket is left out whole: one missing bucket would shift the
    others' interpolation. One without a +Inf bucket makes ``problem``: PromQL
    would answer NaN, and the sum over histograms would be wrong.
    """
    groups: dict[frozenset[tuple[str, str]], list[tuple[str, float, float]]] = {}
    for s in series:
        le = s.labels.get("le")
        if le is None:
            continue
        try:
            bound = float(le)
        except ValueError:
            continue
        if math.isnan(bound):
            continue
        group = frozenset(item for item in s.labels.items() if item[0] != "le")
        groups.setdefault(group, []).append((s.key, bound, s.value))
    counts: dict[str, float] = {}
    bounds: dict[str, float] = {}
    skipped: list[str] = []
    for buckets in groups.values():
        if not any(bound == math.inf for _, bound, _ in buckets):
            return Buckets({}, {}, [], f"histogram {family} has no +Inf bucket")
        if len(buckets) < 2:
            return Buckets({}, {}, [], f"histogram {family} has only a +Inf bucket")
        if not all(math.isfinite(value) for _, _, value in buckets):
            skipped.extend(key for key, _, _ in buckets)
            continue
        for key, bound, value in buckets:
            counts[key] = value
            bounds[key] = bound
    return Buckets(counts, bounds, skipped)


def bucket_increases(previous: Mapping[str, float], buckets: Buckets) -> list[tuple[float, float]]:
    """(upper bound, increase) summed by ``le`` over the histograms, as
    ``sum by (le) (increase(...))``."""
    by_bound: dict[float, float] = {}
    for key, value in buckets.counts.items():
        bound = buckets.bounds[key]
        by_bound[bound] = by_bound.get(bound, 0.0) + _increase_of(previous.get(key), value)
    return list(by_bound.items())


# Relative differences below this between adjacent buckets are float noise (PromQL's value).
_SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = sys.float_info.min


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """PromQL's ``histogram_quantile`` over (upper bound, cumulative count) buckets.

    A port of ``bucketQuantile`` (prometheus/promql/quantile.go): sort by bound,
    merge equal bounds, absorb float noise and force monotonicity, find the
    bucket holding rank q * count, interpolate linearly in it. Rank in the +Inf
    bucket gives the highest finite bound; the first bucket's lower bound is 0
    when its upper bound is positive, else the quantile is that upper bound.
    None where PromQL gives NaN: no +Inf bucket, fewer than two buckets, no
    observations.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=itemgetter(0))
    if not ordered or ordered[-1][0] != math.inf:
        return None
    bounds, counts = _coalesce(ordered)
    _ensure_monotonic(counts)
    if len(bounds) < 2:
        return None
    observations = counts[-1]
    if observations == 0:
        return None
    rank = q * observations
    b = bisect.bisect_left(counts, rank, 0, len(counts) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return None  # q = 0 and an empty first bucket: 0/0, NaN in PromQL
    return start + (end - start) * (rank / count)


def _coalesce(ordered: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    bounds = [ordered[0][0]]
    counts = [ordered[0][1]]
    for bound, count in ordered[1:]:
        if bound == bounds[-1]:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    return bounds, counts


def _ensure_monotonic(counts: list[float]) -> None:
    """``ensureMonotonicAndIgnoreSmallDeltas``: ``prev`` is the last count accepted, not the
    last seen, so the result is the envelope of the counts."""
    prev = counts[0]
    for i in range(1, len(counts)):
        current = counts[i]
        if current == prev:
            continue
        if _almost_equal(prev, current, _SMALL_DELTA_TOLERANCE) or current < prev:
            counts[i] = prev
            continue
        prev = current


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Prometheus's ``almost.Equal``."""
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


def summary_quantiles(series: Iterable[Series]) -> dict[float, list[float]]:
    """A summary's ``quantile`` series: quantile → the values of every series exposing it."""
    found: dict[float, list[float]] = {}
    for s in series:
        quantile = s.labels.get("quantile")
        if quantile is None:
            continue
        try:
            found.setdefault(float(quantile), []).append(s.value)
        except ValueError:
            continue
    return found
