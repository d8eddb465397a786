"""Prometheus probe: a service's own metrics page, read as error rate, latency quantiles, gauges.

The story of a probe: fetch the page as Prometheus does (its Accept header;
OpenMetrics or the text format by the answer's Content-Type; the body bounded
by ``max_body``), read the series the target's selectors name, and hold them
against the counters of the previous scrape:

- ``error_rate_percent`` = 100 * Δerrors / Δrequests;
- ``latency_pNN_seconds``: ``histogram_quantile`` over the buckets' increases,
  or a summary's own quantiles;
- each of ``gauges``: the sum of its series;
- ``latency_seconds``: the time to the page's last byte.

The previous counters live in memory and in the state file (``saved_state``),
so ``vigild --once`` from cron computes rates between two runs. Only the
series the selectors match are kept, in memory as in the state file, and the
state is written only when it changed. A page larger than ``INLINE_MAX`` is
read in a worker thread: a 200,000-series page takes a good part of a second,
which must not hold the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import structlog
import yarl

from vigild.config import PrometheusTarget, quantile_metric
from vigild.model import Observation
from vigild.probes._net import describe_client_error, read_body
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.exposition import (
    ExpositionError,
    Page,
    PageReader,
    Selector,
    Series,
    bucket_increases,
    finite_values,
    histogram_buckets,
    histogram_quantile,
    increase,
    latency_scale,
    parse_selector,
    summary_quantiles,
)
from vigild.redaction import one_line

__all__ = ["ACCEPT", "INLINE_MAX", "PrometheusProbe", "read_page"]

ACCEPT = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
"""What Prometheus 2 asks for: OpenMetrics first, the text format next, anything last."""

INLINE_MAX = 64 * 1024
"""Larger pages are read in a worker thread. Starting one costs about 0.1 ms; reading a
page of this size about 1 ms on the loop."""

log = structlog.get_logger("vigild.probes.prometheus")

_OPENMETRICS = "application/openmetrics-text"
_ERROR_RATE = "error_rate_percent"
_STATE_VERSION = 1


class PrometheusProbe(Probe):
    """Probes one ``type = "prometheus"`` target through the daemon's shared session."""

    keeps_state = True
    target: PrometheusTarget

    def __init__(self, target: PrometheusTarget, timeout: float, context: ProbeContext) -> None:
        super().__init__(target, timeout, context)
        self.session = context.session
        self._requests = _selector(target.requests)
        self._errors = _selector(target.errors)
        self._histogram = _selector(target.latency_histogram)
        self._quantiles = {q: quantile_metric(q) for q in target.quantiles}
        self._scale = 1.0 if self._histogram is None else latency_scale(self._histogram.metric)[0]
        self._gauges = {name: parse_selector(text) for name, text in target.gauges.items()}
        self._reader = self._page_reader()
        self._previous: dict[str, dict[str, float]] = {}
        """Selector → series key → value, as the last good scrape saw them. A failed scrape
        leaves it be: the next good one measures from the last good one."""
        self._unsaved = False
        """``_previous`` changed since the state file last got it."""
        self._warned = False
        """What the selectors cannot find was logged, at the first good scrape."""
        self._url = yarl.URL(target.url)  # the config has parsed it with yarl already
        headers = dict(target.headers)
        if not any(name.lower() == "accept" for name in headers):
            headers["Accept"] = ACCEPT
        self._request: dict[str, Any] = {
            "headers": headers,
            "timeout": aiohttp.ClientTimeout(total=timeout),
        }
        if not target.tls_verify:
            self._request["ssl"] = False
        self._timeout_error = f"timeout after {timeout:g}s"
        self._too_large_error = f"body larger than {target.max_body} bytes"

    def _page_reader(self) -> PageReader:
        """A reader of the metrics the selectors name that keeps only what they match."""
        keep: dict[str, list[Selector]] = {}
        for selector in (self._requests, self._errors, *self._gauges.values()):
            if selector is not None:
                keep.setdefault(selector.metric, []).append(selector)
        if self._histogram is not None:
            for metric in (self._histogram.metric, self._histogram.metric + "_bucket"):
                keep.setdefault(metric, []).append(self._histogram)
        return PageReader(keep, keep=keep, mentioned=self._family_names())

    def _family_names(self) -> set[str]:
        """Every name that puts a selector's metric on the page: a counter's family name
        without ``_total`` (OpenMetrics declares it so), a histogram's or summary's parts."""
        names: set[str] = set()
        for selector in (self._requests, self._errors, *self._gauges.values()):
            if selector is not None:
                names.update(_names_of(selector.metric))
        if self._histogram is not None:
            names.update(_names_of(self._histogram.metric, histogram=True))
        return names

    async def probe(self, now: float) -> tuple[Observation]:
        name = self.target.name
        fetched = await self._fetch()
        if isinstance(fetched, str):
            return (Observation(name, now, False, fetched),)
        body, content_type, latency = fetched
        metrics = {"latency_seconds": latency}
        if len(body) > INLINE_MAX:
            reading = await asyncio.to_thread(self._read, body, content_type, metrics)
        else:
            reading = self._read(body, content_type, metrics)
        if isinstance(reading, str):
            return (Observation(name, now, False, reading, metrics),)
        if reading.changed:
            self._previous = reading.counters
            self._unsaved = True
        if not self._warned:
            self._warned = True
            for warning in reading.warnings:
                log.warning("selector finds nothing on the page", target=name, problem=warning)
        return (reading.observation(name, now, self.secrets),)

    def _read(self, body: bytes, content_type: str, metrics: dict[str, float]) -> _Reading | str:
        """What the page says against the last good scrape, or why it cannot be read.

        In a worker thread for a large page: it only reads ``_previous``, and the reader
        is this probe's alone (a target is never probed twice at once).
        """
        try:
            page = read_page(self._reader, body, content_type)
        except ExpositionError as exc:
            return one_line(f"invalid exposition: {exc}", MAX_ERROR, self.secrets)
        reading = _Reading(page, self._previous, metrics, self._scale)
        if self._requests is not None and self._errors is not None:
            reading.error_rate(self._requests, self._errors)
        if self._histogram is not None:
            reading.quantiles(self._histogram, self._quantiles)
        reading.gauges(self._gauges)
        reading.changed = reading.counters != self._previous
        return reading

    async def _fetch(self) -> tuple[bytes, str, float] | str:
        """(body, content type, seconds to the last byte), or why there is no page."""
        started = time.perf_counter()
        try:
            async with self.session.get(self._url, **self._request) as resp:
                if not 200 <= resp.status < 300:
                    return f"HTTP {resp.status} (expected 2xx)"
                body = await read_body(resp, self.target.max_body)
                if body is None:
                    resp.close()  # drop the connection: the rest of the body is never read
                    return self._too_large_error
                return body, resp.content_type, time.perf_counter() - started
        except TimeoutError:
            return self._timeout_error
        except aiohttp.ClientError as exc:
            return describe_client_error(exc, self.secrets)

    def saved_state(self) -> dict[str, Any] | None:
        if not self._previous:
            return None
        return {"version": _STATE_VERSION, "counters": self._previous}

    def unsaved_state(self) -> dict[str, Any] | None:
        # A failed write is not retried until the next change: it loses at most the
        # previous sample of an idle service, whose rate has nothing to say anyway.
        if not self._unsaved:
            return None
        self._unsaved = False
        return self.saved_state()

    def restore_state(self, state: dict[str, Any]) -> None:
        counters = _counters_of(state)
        if counters is not None:
            self._previous = counters
            self._unsaved = False


class _Reading:
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

    def error_rate(self, requests: Selector, errors: Selector) -> None:
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
        if handled <= 0:
            self._absent([_ERROR_RATE], "no requests since the last scrape")
            return
        self.metrics[_ERROR_RATE] = 100.0 * increase(failed_before, failed_now) / handled

    def quantiles(self, selector: Selector, quantiles: Mapping[float, str]) -> None:
        family = selector.metric
        buckets = selector.select(self.page, family + "_bucket")
        if buckets:
            self._histogram_quantiles(selector, buckets, quantiles)
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
        self, selector: Selector, series: list[Series], quantiles: Mapping[float, str]
    ) -> None:
        buckets = histogram_buckets(series, selector.metric)
        if buckets.problem is not None:
            self._unknown(quantiles.values(), buckets.problem)  # NaN in PromQL too
            return
        key = _histogram_key(selector)
        previous = self.previous.get(key)
        self.counters[key] = _carried(buckets.counts, buckets.skipped, previous)
        if previous is None:
            self._absent(quantiles.values(), "warming up: quantiles need two scrapes")
            return
        increases = bucket_increases(previous, buckets)
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
        if any(self.page.has(name) for name in _names_of(selector.metric, histogram=histogram)):
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


def _names_of(metric: str, *, histogram: bool = False) -> tuple[str, ...]:
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


def _counters_of(state: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """The counters of a saved state, or None for a state of another shape."""
    if state.get("version") != _STATE_VERSION:
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


def _selector(text: str | None) -> Selector | None:
    return None if text is None else parse_selector(text)


def read_page(reader: PageReader, body: bytes, content_type: str) -> Page:
    """The series ``reader`` wants from a body, read as its Content-Type says (anything but
    OpenMetrics is the text format, as Prometheus falls back to). Raises ``ExpositionError``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExpositionError(f"not UTF-8 text (byte {exc.start})") from None
    return reader.read(text, openmetrics=content_type == _OPENMETRICS)
