"""What one Prometheus page says against the counters of the previous scrape: the
prometheus probe's arithmetic (error rate, quantiles, gauges) and its saved state."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vigild.model import Observation
from vigild.probes.base import MAX_ERROR
from vigild.probes.exposition import Page
from vigild.probes.promql import (
    bucket_increases,
    finite_values,
    histogram_buckets,
    histogram_quantile,
    increase,
    summary_quantiles,
)
from vigild.probes.selectors import Selector, Series
from vigild.redaction import one_line
from vigild.slo import (
    ERRORS_INCREASE,
    LATENCY_GOOD_INCREASE,
    LATENCY_TOTAL_INCREASE,
    REQUESTS_INCREASE,
)

__all__ = [
    "STATE_VERSION",
    "Reading",
    "counters_of",
    "names_of",
]

STATE_VERSION = 1
"""Of ``saved_state``: a state of another version is ignored."""
_ERROR_RATE = "error_rate_percent"


class Reading:
    """What one page says, given the counters of the previous scrape.

    A metric without a value is UNKNOWN (``missing``) only when its selector's metric
    name is nowhere on the page, or the page cannot give it (a histogram without a
    +Inf bucket, NaN in PromQL too). Anything else is absent (``no_data``): a series
    not created yet, a rate warming up, no traffic. Each says why in ``reasons``.
    """

    def __init__(
        self,
        page: Page,
        previous: Mapping[str, dict[str, float]],
        metrics: dict[str, float],
        scale: float = 1.0,
    ) -> None:
        self.page = page
        self.previous = previous
        self.metrics = metrics
        self.scale = scale
        """Latency values times this are seconds."""
        self.missing: set[str] = set()
        self.no_data: set[str] = set()
        self.reasons: dict[str, str] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        """What looks like a mistake in the config rather than a quiet service."""
        self.counters: dict[str, dict[str, float]] = {}
        """What the next scrape compares with."""
        self.changed = False
        """``counters`` differ from the previous scrape's."""

    def error_rate(self, requests: Selector, errors: Selector, *, increases: bool = False) -> None:
        """``error_rate_percent``; with ``increases`` (for an SLO) also the counters'
        increases since the last scrape, ``requests_increase`` and ``errors_increase``,
        which sum over any window to PromQL's ``increase`` without its extrapolation."""
        handled_series = requests.select(self.page)
        handled_now, handled_before = self._counter(requests.text, handled_series)
        # No errors series at all is 0 errors: apps create the 5xx label set at the first 5xx.
        failed_now, failed_before = self._counter(errors.text, errors.select(self.page))
        if not handled_series:
            self._not_found([_ERROR_RATE], requests, "metric")
            return
        if handled_before is None or failed_before is None:
            self._absent([_ERROR_RATE], "warming up: a rate needs two scrapes")
            return
        handled = increase(handled_before, handled_now)
        failed = increase(failed_before, failed_now)
        if increases:
            self.metrics[REQUESTS_INCREASE] = handled
            self.metrics[ERRORS_INCREASE] = failed
        if handled <= 0:
            self._absent([_ERROR_RATE], "no requests since the last scrape")
            return
        self.metrics[_ERROR_RATE] = 100.0 * failed / handled

    def quantiles(
        self, selector: Selector, quantiles: Mapping[float, str], slo_le: float | None = None
    ) -> None:
        """The quantiles; with ``slo_le`` (a latency SLO's bound) also the increases of
        the +Inf bucket and of that one: all requests, and those fast enough."""
        family = selector.metric
        buckets = selector.select(self.page, family + "_bucket")
        if buckets:
            self._histogram_quantiles(selector, buckets, quantiles, slo_le)
            return
        summary = summary_quantiles(selector.select(self.page))
        if summary:
            self._summary_quantiles(family, summary, quantiles)
            return
        # No buckets yet is zero counts: buckets created before the next scrape count
        # from 0, as a request counter's new series do.
        self.counters[_histogram_key(selector)] = {}
        mentioned = self.page.mentioned
        if (
            family not in mentioned
            and family + "_bucket" not in mentioned
            and (family + "_count" in mentioned or family + "_sum" in mentioned)
        ):
            why = (
                f"summary {family} has no quantiles (made without objectives): "
                "a histogram gives them"
            )
            self.warnings.append(f"{', '.join(sorted(quantiles.values()))}: {why}")
            self._absent(quantiles.values(), why)
            return
        self._not_found(quantiles.values(), selector, "histogram or summary", histogram=True)

    def _histogram_quantiles(
        self,
        selector: Selector,
        series: list[Series],
        quantiles: Mapping[float, str],
        slo_le: float | None,
    ) -> None:
        buckets = histogram_buckets(series, selector.metric)
        if buckets.problem is not None:
            self._unknown(quantiles.values(), buckets.problem)  # NaN in PromQL too
            return
        key = _histogram_key(selector)
        previous = self.previous.get(key)
        self.counters[key] = _carried(buckets.counts, buckets.skipped, previous)
        if slo_le is not None and not any(math.isclose(b, slo_le) for b in buckets.bounds.values()):
            self.warnings.append(f"latency_slo: {selector.text} has no bucket le={slo_le:g}")
            slo_le = None
        if previous is None:
            self._absent(quantiles.values(), "warming up: quantiles need two scrapes")
            return
        increases = bucket_increases(previous, buckets)
        if slo_le is not None:
            by_bound = dict(increases)
            self.metrics[LATENCY_TOTAL_INCREASE] = by_bound.get(math.inf, 0.0)
            self.metrics[LATENCY_GOOD_INCREASE] = sum(
                n for b, n in increases if math.isclose(b, slo_le)
            )
        for q, metric in quantiles.items():
            value = histogram_quantile(q, increases)
            if value is None:
                self._absent([metric], "no requests since the last scrape")
            else:
                self.metrics[metric] = value * self.scale

    def _summary_quantiles(
        self, family: str, summary: Mapping[float, list[float]], quantiles: Mapping[float, str]
    ) -> None:
        # A summary's quantiles are the service's own, over its own window: no deltas.
        for q, metric in quantiles.items():
            values = summary.get(q)
            if values is None:
                why = f"summary {family} has no quantile {q:g}"
                self.warnings.append(f"{metric}: {why}")
                self._absent([metric], why)
                continue
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                self.metrics[metric] = max(finite) * self.scale
            else:
                self._absent([metric], "no requests in the summary's window")

    def gauges(self, gauges: Mapping[str, Selector]) -> None:
        for metric, selector in gauges.items():
            series = selector.select(self.page)
            if not series:
                self._not_found([metric], selector, "metric")
                continue
            values = [s.value for s in series]
            # As PromQL's sum: a NaN member makes the sum NaN (judged UNKNOWN).
            exact = all(math.isfinite(v) for v in values)
            self.metrics[metric] = math.fsum(values) if exact else sum(values)

    def _not_found(
        self, metrics: Iterable[str], selector: Selector, what: str, *, histogram: bool = False
    ) -> None:
        """No series matches ``selector``: UNKNOWN if its name is nowhere on the page."""
        if any(self.page.has(name) for name in names_of(selector.metric, histogram=histogram)):
            self._absent(metrics, f"no series of {selector.text} yet")
            return
        why = f"no {what} {selector.metric} on the page"
        self.warnings.append(f"{', '.join(sorted(metrics))}: {why}")
        self._unknown(metrics, why)

    def _counter(
        self, selector: str, series: Iterable[Series]
    ) -> tuple[dict[str, float], dict[str, float] | None]:
        """This scrape's finite values and the previous scrape's (None on the first)."""
        current, skipped = finite_values(series)
        previous = self.previous.get(selector)
        self.counters[selector] = _carried(current, skipped, previous)
        return current, previous

    def _absent(self, metrics: Iterable[str], why: str) -> None:
        for metric in metrics:
            self.no_data.add(metric)
            self.reasons[metric] = why

    def _unknown(self, metrics: Iterable[str], why: str) -> None:
        metrics = sorted(metrics)
        for metric in metrics:
            self.missing.add(metric)
            self.reasons[metric] = why
        self.notes.append(f"{', '.join(metrics)}: {why}")

    def observation(self, target: str, now: float, secrets: frozenset[str]) -> Observation:
        note = one_line("; ".join(self.notes), MAX_ERROR, secrets) if self.notes else None
        return Observation(
            target,
            now,
            True,
            note,
            self.metrics,
            missing=frozenset(self.missing),
            no_data=frozenset(self.no_data),
            reasons=self.reasons,
        )


def _histogram_key(selector: Selector) -> str:
    return "histogram " + selector.text  # never the same as a counter selector's text


def names_of(metric: str, *, histogram: bool = False) -> tuple[str, ...]:
    """The names under which ``metric`` can be on a page."""
    if histogram:
        return (metric, metric + "_bucket", metric + "_count", metric + "_sum")
    if metric.endswith("_total"):
        return (metric, metric.removesuffix("_total"))
    return (metric,)


def _carried(
    current: dict[str, float], skipped: Sequence[str], previous: Mapping[str, float] | None
) -> dict[str, float]:
    """The counters to keep: a series skipped this time (NaN) keeps its last value, or it
    would count from 0, as a new series does, when it comes back."""
    if not skipped or not previous:
        return current
    kept = {key: previous[key] for key in skipped if key in previous}
    kept.update(current)
    return kept


def counters_of(state: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """The counters of a saved state, or None for a state of another shape."""
    if state.get("version") != STATE_VERSION:
        return None
    counters = state.get("counters")
    if not isinstance(counters, dict):
        return None
    restored: dict[str, dict[str, float]] = {}
    for selector, series in counters.items():
        if not isinstance(selector, str) or not isinstance(series, dict):
            return None
        values: dict[str, float] = {}
        for key, value in series.items():
            if not _is_count(key, value):
                return None
            values[key] = float(value)
        restored[selector] = values
    return restored


def _is_count(key: object, value: object) -> bool:
    return (
        isinstance(key, str)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
