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
import re
import time
from typing import Any, Literal, Self

import aiohttp
import structlog
import yarl
from pydantic import field_validator, model_validator

from vigild.config import TargetConfig
from vigild.config_slo import LatencySloSpec, SloSpec
from vigild.fields import HttpUrlText
from vigild.model import Observation
from vigild.probes._net import describe_client_error, read_body
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.exposition import ExpositionError, Page, PageReader
from vigild.probes.prometheus_reading import STATE_VERSION, Reading, counters_of, names_of
from vigild.probes.selectors import Selector, SelectorError, latency_scale, parse_selector
from vigild.redaction import one_line
from vigild.slo import LATENCY

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


_QUANTILE_DIGITS = re.compile(r"[^0-9]")


def quantile_metric(quantile: float) -> str:
    """0.95 → ``latency_p95_seconds``; 0.5 → ``latency_p50_seconds``; 0.999 → ``…p999…``."""
    digits = _QUANTILE_DIGITS.sub("", f"{quantile * 100:g}")
    return f"latency_p{digits}_seconds"


class PrometheusTarget(TargetConfig):
    """A Prometheus (or OpenMetrics) exposition page, read as error rate, quantiles, gauges."""

    REPORTED = frozenset({"up", "latency_seconds", "error_rate_percent"})
    """And the quantiles and gauges the target's keys name (``reported_metrics``)."""
    SLO_EVENTS = "requests"

    type: Literal["prometheus"] = "prometheus"
    url: HttpUrlText
    headers: dict[str, str] = {}
    tls_verify: bool = True
    requests: str | None = None
    """Series selector of the request counter, e.g. ``http_requests_total``."""
    errors: str | None = None
    """Series selector of the failed requests, e.g. ``http_requests_total{status=~"5.."}``."""
    latency_histogram: str | None = None
    """A histogram's (or summary's) family name, optionally with label matchers."""
    quantiles: list[float] = [0.95, 0.99]
    gauges: dict[str, str] = {}
    """Metric name → series selector: any gauge of the target, thresholded like the rest."""
    latency_slo: LatencySloSpec | None = None

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < q <= 1 for q in value):
            raise ValueError("quantiles must be numbers above 0 and at most 1, such as 0.95")
        return value

    @field_validator("requests", "errors", "latency_histogram")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            parse_selector(value)  # its SelectorError is a ValueError with one clear line
        return value

    @field_validator("latency_histogram")
    @classmethod
    def _in_seconds(cls, value: str | None) -> str | None:
        if value is not None:
            latency_scale(parse_selector(value).metric)  # a SelectorError naming the unit
        return value

    @field_validator("gauges")
    @classmethod
    def _gauge_names(cls, value: dict[str, str]) -> dict[str, str]:
        taken = cls.REPORTED
        for name, selector in value.items():
            quantile = re.fullmatch(r"latency_p[0-9]+_seconds", name)
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name in taken or quantile:
                raise ValueError(
                    f"gauge name {name!r} must be a metric name of letters, digits and _ "
                    "that vigild does not already report"
                )
            try:
                parse_selector(selector)
            except SelectorError as exc:
                raise ValueError(f"gauge {name!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _errors_need_requests(self) -> Self:
        if (self.errors is None) != (self.requests is None):
            raise ValueError("requests and errors go together: the error rate is errors / requests")
        if self.slo is not None and self.requests is None:
            raise ValueError("an slo needs requests and errors: its bad events are the errors")
        if self.latency_slo is not None and self.latency_histogram is None:
            raise ValueError("a latency_slo needs latency_histogram: it counts its buckets")
        return self

    def objectives(self) -> tuple[tuple[str, SloSpec], ...]:
        latency = () if self.latency_slo is None else ((LATENCY, self.latency_slo),)
        return super().objectives() + latency

    def reported_metrics(self) -> frozenset[str]:
        metrics = {"up", "latency_seconds"}
        if self.requests is not None:
            metrics.add("error_rate_percent")
        if self.latency_histogram is not None:
            metrics.update(quantile_metric(q) for q in self.quantiles)
        return frozenset(metrics | self.gauges.keys())

    def notes(self) -> tuple[tuple[str, str], ...]:
        """A histogram in another unit than seconds, and how it is scaled."""
        if self.latency_histogram is None:
            return ()
        metric = parse_selector(self.latency_histogram).metric
        scale, unit = latency_scale(metric)
        if unit is None:
            return ()
        scaled = f"its quantiles are multiplied by {scale:g} to seconds"
        return (("note", f"{self.name}: {metric} is in {unit}: {scaled}"),)

    def shown_url(self) -> str | None:
        return self.url


class PrometheusProbe(Probe):
    """Probes one ``type = "prometheus"`` target through the daemon's shared session."""

    keeps_state = True
    Options = PrometheusTarget
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
        self._slo_le = None if target.latency_slo is None else target.latency_slo.le / self._scale
        """The latency SLO's bucket bound in the histogram's own unit."""
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
                names.update(names_of(selector.metric))
        if self._histogram is not None:
            names.update(names_of(self._histogram.metric, histogram=True))
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

    def _read(self, body: bytes, content_type: str, metrics: dict[str, float]) -> Reading | str:
        """What the page says against the last good scrape, or why it cannot be read.

        In a worker thread for a large page: it only reads ``_previous``, and the reader
        is this probe's alone (a target is never probed twice at once).
        """
        try:
            page = read_page(self._reader, body, content_type)
        except ExpositionError as exc:
            return one_line(f"invalid exposition: {exc}", MAX_ERROR, self.secrets)
        reading = Reading(page, self._previous, metrics, self._scale)
        if self._requests is not None and self._errors is not None:
            reading.error_rate(self._requests, self._errors, increases=self.target.slo is not None)
        if self._histogram is not None:
            reading.quantiles(self._histogram, self._quantiles, self._slo_le)
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
        return {"version": STATE_VERSION, "counters": self._previous}

    def unsaved_state(self) -> dict[str, Any] | None:
        # A failed write is not retried until the next change: it loses at most the
        # previous sample of an idle service, whose rate has nothing to say anyway.
        if not self._unsaved:
            return None
        self._unsaved = False
        return self.saved_state()

    def restore_state(self, state: dict[str, Any]) -> None:
        counters = counters_of(state)
        if counters is not None:
            self._previous = counters
            self._unsaved = False


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
