"""Series selectors with label matchers, as PromQL reads them (parsed by
``promql-parser``; regexes fully anchored, ``.`` matching newlines), and the unit a
latency family's name says it is in. Pure: what the config checks at load and the
prometheus probe matches with.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import promql_parser

__all__ = ["Matcher", "Selector", "SelectorError", "Series", "latency_scale", "parse_selector"]


class Series(NamedTuple):
    """One sample of a page, as a selector picks it."""

    key: str
    """``name{label="value",...}`` with labels sorted: the series' identity across scrapes."""
    labels: dict[str, str]
    value: float


class SelectorError(ValueError):
    """A selector vigild cannot use; the message is one line for ``check-config``."""


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    """``=``, ``!=``, ``=~`` or ``!~``."""
    value: str
    pattern: re.Pattern[str] | None = None
    """The compiled regex of ``=~`` and ``!~``."""
    negated: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "negated", self.op.startswith("!"))

    def matches(self, labels: Mapping[str, str]) -> bool:
        # PromQL: a label the series does not carry has the empty value.
        actual = labels.get(self.label, "")
        if self.pattern is None:
            found = actual == self.value
        else:
            found = self.pattern.fullmatch(actual) is not None
        return found is not self.negated


@dataclass(frozen=True, slots=True)
class Selector:
    """``metric{label="value", ...}``: one metric's series whose labels match every matcher."""

    text: str
    metric: str
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.matchers)

    def select(self, page: Mapping[str, list[Series]], metric: str | None = None) -> list[Series]:
        """The series of ``metric`` (default the selector's own) that the matchers accept."""
        return [s for s in page.get(metric or self.metric, ()) if self.matches(s.labels)]


_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def parse_selector(text: str) -> Selector:
    """A series selector such as ``http_requests_total{status=~"5..", route!="/health"}``.

    It must name one metric (by name, or ``__name__="..."``): vigild reads only
    the lines of the metrics its selectors name. Raises ``SelectorError``.
    """
    try:
        expr = promql_parser.parse(text)
    except ValueError as exc:
        raise SelectorError(f"invalid selector {text!r}: {exc}") from None
    if not isinstance(expr, promql_parser.VectorSelector):
        raise SelectorError(
            f"invalid selector {text!r}: expected a series selector such as "
            f'name{{label="value"}}, not a {type(expr).__name__} expression'
        )
    if expr.offset is not None or expr.at is not None:
        raise SelectorError(f"invalid selector {text!r}: offset and @ do not apply to a scrape")
    if expr.matchers.or_matchers:
        raise SelectorError(f"invalid selector {text!r}: 'or' between matchers is not supported")
    metric = expr.name
    matchers: list[Matcher] = []
    for parsed in expr.matchers.matchers:
        op = next((symbol for kind, symbol in _OPS if parsed.op == kind), None)
        if op is None:
            raise SelectorError(f"invalid selector {text!r}: unknown operator {parsed.op}")
        if parsed.name == "__name__" and op == "=" and metric is None:
            metric = parsed.value
            continue
        if parsed.name == "__name__":
            raise SelectorError(f"invalid selector {text!r}: it must name exactly one metric")
        pattern = _compile(text, parsed.value) if op in ("=~", "!~") else None
        matchers.append(Matcher(parsed.name, op, parsed.value, pattern))
    if metric is None:
        raise SelectorError(f"invalid selector {text!r}: it must name a metric")
    return Selector(text, metric, tuple(matchers))


def _compile(text: str, regex: str) -> re.Pattern[str]:
    """Python's ``re`` for PromQL's RE2: ASCII classes as in RE2, ``.`` matching newlines as in
    Prometheus 3; syntax the two read differently is refused rather than read another way."""
    try:
        with warnings.catch_warnings():
            # "Possible nested set": [[:alpha:]] is a POSIX class to RE2, a plain set to re.
            warnings.simplefilter("error", FutureWarning)
            return re.compile(regex, re.ASCII | re.DOTALL)
    except re.error as exc:
        raise SelectorError(f"invalid selector {text!r}: regex {regex!r}: {exc}") from None
    except FutureWarning as exc:
        raise SelectorError(
            f"invalid selector {text!r}: regex {regex!r}: {exc} "
            "(spell out POSIX classes such as [[:alpha:]] as [a-zA-Z])"
        ) from None


_SCALED = {"milliseconds": 1e-3}
"""Latency units vigild converts to seconds."""
_OTHER_UNITS = (
    "bytes", "bits", "meters", "grams", "celsius", "volts", "amperes", "joules", "ratio",
    "percent", "microseconds", "nanoseconds", "minutes", "hours", "days", "total", "count",
)  # fmt: skip
"""Name endings that say a histogram is not of seconds (Prometheus's base units and the
usual others)."""


def latency_scale(metric: str) -> tuple[float, str | None]:
    """What a latency family's values are multiplied by to be seconds, and the unit they
    are in when not seconds. Raises ``SelectorError`` for a family in another unit."""
    for unit, scale in _SCALED.items():
        if metric.endswith("_" + unit):
            return scale, unit
    for unit in _OTHER_UNITS:
        if metric.endswith("_" + unit):
            raise SelectorError(
                f"latency_histogram {metric} is in {unit}, not seconds: "
                "latency quantiles need a histogram or summary of durations"
            )
    return 1.0, None
