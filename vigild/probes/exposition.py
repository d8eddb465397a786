"""A Prometheus exposition page, and the PromQL arithmetic vigild needs from it. Pure: no I/O.

- ``parse_selector``: a series selector with label matchers, as PromQL reads it
  (parsed by ``promql-parser``; regexes fully anchored, ``.`` matching newlines).
- ``PageReader``: the series of the metrics the selectors name, from the text
  format 0.0.4 or OpenMetrics. Any line that is not an exposition line fails
  the whole page, as it fails a Prometheus scrape.
- ``increase``, ``bucket_increases``: counter increases between two scrapes,
  with resets handled per series as ``rate()`` does.
- ``histogram_quantile``: PromQL's classic-histogram interpolation, line for line.

Why a reader of its own: ``prometheus_client``'s parser walks every label
character in Python. On the realistic 5,000-series page of
``bench/prometheus_page.py`` it costs 70 ms of CPU (110 ms for OpenMetrics),
and 33 ms for just the 1,952 lines a typical target's selectors need, where
the budget for the whole scrape is 50 ms. Here one compiled regex validates every
line and another picks out the lines of the wanted metrics; only those are
taken apart, and a series seen on the last scrape is not taken apart again. A line outside that fast
grammar (quoted UTF-8 names, hex values, float timestamps) is handed to
``prometheus_client``'s own parser, which decides, so the reader never accepts
less than the library does. Tests check both agree on every line the fast
grammar reads.
"""

from __future__ import annotations

import bisect
import math
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

import promql_parser

from vigild.redaction import shorten
from vigild.wording import label_value

__all__ = [
    "Buckets",
    "ExpositionError",
    "Matcher",
    "Page",
    "PageReader",
    "Selector",
    "SelectorError",
    "Series",
    "bucket_increases",
    "finite_values",
    "histogram_buckets",
    "histogram_quantile",
    "increase",
    "latency_scale",
    "parse_selector",
    "series_key",
    "summary_quantiles",
]


class SelectorError(ValueError):
    """A selector vigild cannot use; the message is one line for ``check-config``."""


class ExpositionError(ValueError):
    """A page that is not a valid exposition: the scrape fails, as in Prometheus."""


# ---------------------------------------------------------------------------
# Selectors


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


# ---------------------------------------------------------------------------
# Pages


class Series(NamedTuple):
    key: str
    """``name{label="value",...}`` with labels sorted: the series' identity across scrapes."""
    labels: dict[str, str]
    value: float


class Page(dict[str, list[Series]]):
    """Metric name → its kept series on the page, first of any duplicate only (as Prometheus
    keeps).

    ``mentioned``: the names the reader looks for that have a sample on the page, kept or
    not.
    """

    __slots__ = ("declared", "mentioned")

    def __init__(self) -> None:
        super().__init__()
        self.mentioned: set[str] = set()
        self.declared: set[str] = set()
        """Names of ``# TYPE`` and ``# HELP`` lines; looked for only when some name the
        reader looks for has no sample."""

    def has(self, name: str) -> bool:
        return name in self.mentioned or name in self.declared


# Every run below is possessive (*+, ++, ?+) and no two runs can share a character, so
# the regexes never backtrack into one: a hostile or broken page costs linear time.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
# What float() reads and Go's ParseFloat too (not hex floats or "1_0": those go to the library).
_VALUE = (
    r"(?>[+-]?(?:[0-9]++(?:\.[0-9]*+)?+(?:[eE][+-]?[0-9]++)?+|\.[0-9]++(?:[eE][+-]?[0-9]++)?+"
    r"|[Nn][Aa][Nn]|[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?+))"
)
# The inside of {...}: anything but quotes and braces, and quoted strings with escapes
# (unrolled: a run of plain characters, then one escape and its character).
_QUOTED = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
_BRACED = rf'[^"{{}}\n]*+(?:{_QUOTED}[^"{{}}\n]*+)*+'
_LABELS = rf"(?:[ \t]*+\{{({_BRACED})\}})?"
_TEXT_REST = rf"{_LABELS}[ \t]++({_VALUE})(?:[ \t]++-?[0-9]++)?+[ \t\r]*+$"
_EXEMPLAR = rf"[ \t]++#[ \t]++\{{{_BRACED}\}}[ \t]++{_VALUE}(?:[ \t]++{_VALUE})?+"
_OPENMETRICS_REST = rf"{_LABELS}[ \t]++({_VALUE})(?:[ \t]++{_VALUE})?+(?:{_EXEMPLAR})?+[ \t\r]*+$"
_COMMENT_OR_BLANK = r"[ \t]*+(?:#[^\n]*+)?+\r?$"


def _good_lines(rest: str) -> re.Pattern[str]:
    # A run of good lines is consumed in one call.
    line = rf"(?:{_COMMENT_OR_BLANK}|[ \t]*+{_NAME}{rest})"
    return re.compile(rf"(?:{line}(?:\n|\Z))*+", re.M)


_GOOD_TEXT_LINES = _good_lines(_TEXT_REST)
_GOOD_OPENMETRICS_LINES = _good_lines(_OPENMETRICS_REST)

_PAIR = rf"[a-zA-Z_][a-zA-Z0-9_]*+[ \t]*+=[ \t]*+{_QUOTED}"
_LABEL_LIST = re.compile(rf"[ \t]*+(?:{_PAIR}(?:[ \t]*+,[ \t]*+{_PAIR})*+[ \t]*+,?+)?+[ \t]*+")
_LABEL_PAIRS = re.compile(
    r'([a-zA-Z_][a-zA-Z0-9_]*+)[ \t]*+=[ \t]*+"([^"\\\n]*+(?:\\.[^"\\\n]*+)*+)"'
)
_ESCAPE = re.compile(r'\\[\\n"]')
_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_NEEDS_ESCAPE = re.compile(r'[\\"\n]')
_EOF_LINE = re.compile(r"^# EOF\r?$", re.M)


_UNKEPT = None
"""A series no selector keeps: remembered as such, so it is not taken apart again."""
_UNREAD: tuple[str, dict[str, str]] = ("", {})

_CHUNK = 64 * 1024
"""Characters a regex call covers at most. ``re`` holds the GIL for a whole call: on a page
read in a worker thread, shorter calls let the event loop run in between."""


class PageReader:
    """Reads the series of ``metrics`` from pages; one per target.

    ``keep`` narrows what is kept of a metric to the series one of its selectors
    matches (a metric not in it keeps all): on a page of many series only those a
    target looks at are held. ``mentioned`` are further names whose presence on
    the page (``Page.mentioned``) matters, though none of their series is kept.

    It remembers each line it read last time, and what it made of it: a target
    shows the same series scrape after scrape, so only new ones are taken apart.
    """

    def __init__(
        self,
        metrics: Iterable[str],
        *,
        keep: Mapping[str, Sequence[Selector]] | None = None,
        mentioned: Iterable[str] = (),
    ) -> None:
        self.metrics = frozenset(metrics)
        self.keep = dict(keep or {})
        self.names = self.metrics | frozenset(mentioned)
        names = "|".join(re.escape(m) for m in sorted(self.names, key=len, reverse=True))
        # Each line is found by the newline before it: re scans for a literal prefix far
        # faster than it tries "^" at every position of the page.
        self._text = re.compile(rf"\n[ \t]*+({names}){_TEXT_REST}", re.M)
        self._openmetrics = re.compile(rf"\n[ \t]*+({names}){_OPENMETRICS_REST}", re.M)
        self._declared = re.compile(rf"\n#[ \t]++(?:TYPE|HELP)[ \t]++({names})(?=[ \t\r]|$)", re.M)
        self._known: dict[tuple[str, str], tuple[str, dict[str, str]] | None] = {}

    def read(self, text: str, *, openmetrics: bool) -> Page:
        """The wanted series of one page; raises ``ExpositionError`` for a page Prometheus
        would refuse."""
        text = "\n" + text  # the first line too has a newline before it
        if openmetrics:
            text = _before_eof(text)
        collected = _Collected()
        mentioned = collected.page.mentioned
        known, self._known = self._known, {}
        wanted = self._openmetrics if openmetrics else self._text
        for start, end in _chunks(text):
            for match in wanted.finditer(text, start, end):
                name, braced, value = match.groups()
                mentioned.add(name)
                written = (name, braced or "")
                identity = known.get(written, _UNREAD)
                if identity is _UNREAD:
                    labels = _labels(braced) if braced else {}
                    if labels is None:
                        self._add_as_library_reads(collected, text, match.start() + 1, openmetrics)
                        continue
                    identity = _UNKEPT
                    if self._kept(name, labels):
                        identity = (series_key(name, labels), labels)
                self._known[written] = identity
                if identity is not None:
                    collected.add(name, identity[1], float(value), identity[0])
        good = _GOOD_OPENMETRICS_LINES if openmetrics else _GOOD_TEXT_LINES
        position = _after_good_lines(good, text, 1)
        while position < len(text):
            self._add_as_library_reads(collected, text, position, openmetrics)
            end = text.find("\n", position)
            position = len(text) if end < 0 else _after_good_lines(good, text, end + 1)
        if not self.names <= mentioned:  # rare: a typo, a wrong target, a family with no series
            for start, end in _chunks(text):
                declared = self._declared.finditer(text, start, end)
                collected.page.declared.update(m.group(1) for m in declared)
        return collected.page

    def _kept(self, name: str, labels: Mapping[str, str]) -> bool:
        if name not in self.metrics:
            return False
        selectors = self.keep.get(name)
        return selectors is None or any(s.matches(labels) for s in selectors)

    def _add_as_library_reads(
        self, collected: _Collected, text: str, position: int, openmetrics: bool
    ) -> None:
        """A line outside the fast grammar: the library reads it, or the page is invalid."""
        for name, labels, value in _library_samples(text, position, openmetrics):
            if name in self.names:
                collected.page.mentioned.add(name)
            if self._kept(name, labels):
                collected.add(name, labels, value)


def _chunks(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) spans of about ``_CHUNK`` characters covering ``text``, each ending just
    before a newline (or at the end), so that no line is cut."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + _CHUNK)
        if end < 0:
            end = len(text)
        yield start, end
        start = end


def _after_good_lines(good: re.Pattern[str], text: str, position: int) -> int:
    """Where the first line at or after ``position`` that the fast grammar rejects starts."""
    while position < len(text):
        # Up to and with a newline: every line the call sees is whole.
        end = text.find("\n", position + _CHUNK)
        end = len(text) if end < 0 else end + 1
        run = good.match(text, position, end)
        if run is None or run.end() < end:
            return position if run is None else run.end()
        position = end
    return position


class _Collected:
    def __init__(self) -> None:
        self.page = Page()
        self.seen: set[str] = set()

    def add(self, name: str, labels: dict[str, str], value: float, key: str | None = None) -> None:
        if key is None:
            key = series_key(name, labels)
        if key in self.seen:
            return  # a duplicate series: Prometheus keeps the first and drops the rest
        self.seen.add(key)
        self.page.setdefault(name, []).append(Series(key, labels, value))


def _before_eof(text: str) -> str:
    """An OpenMetrics page without its ``# EOF`` line, which must come last and only once."""
    body = text[:-1] if text.endswith("\n") else text
    if not body.endswith("\n# EOF"):
        raise ExpositionError('no "# EOF" at the end (truncated?)')
    body = body[: -len("# EOF")]
    early = _EOF_LINE.search(body)
    if early is not None:
        raise ExpositionError(f'line {_line_number(body, early.start())}: text after "# EOF"')
    return body


def _labels(braced: str) -> dict[str, str] | None:
    """The labels between braces; None for anything the fast grammar does not read
    (a duplicate or reserved name, a quoted name, a leading comma): the library
    decides those."""
    if _LABEL_LIST.fullmatch(braced) is None:
        return None
    pairs = _LABEL_PAIRS.findall(braced)
    labels = {name: _unescape(value) if "\\" in value else value for name, value in pairs}
    if len(labels) != len(pairs) or any(name.startswith("__") for name in labels):
        return None  # a duplicate or reserved name: the library refuses the line
    return labels


def _unescape(value: str) -> str:
    # Only \\, \" and \n are escapes; any other backslash stays, as both Prometheus and
    # prometheus_client read it.
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], value)


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """The series in exposition form with its labels sorted: equal for the same series."""
    if not labels:
        return name
    parts = [
        f'{label}="{label_value(value)}"' if _NEEDS_ESCAPE.search(value) else f'{label}="{value}"'
        for label, value in sorted(labels.items())
    ]
    return f"{name}{{{','.join(parts)}}}"


_LIBRARY_LINE_LIMIT = 16 * 1024
"""Longer lines outside the fast grammar are refused unread: no real page has one."""


def _library_samples(
    text: str, position: int, openmetrics: bool
) -> list[tuple[str, dict[str, str], float]]:
    """The samples of the line at ``position`` as ``prometheus_client`` reads it."""
    end = text.find("\n", position)
    line = text[position : end if end >= 0 else len(text)]
    if len(line) > _LIBRARY_LINE_LIMIT:
        # The library's label parser is quadratic in a line's length.
        raise ExpositionError(
            f"line {_line_number(text, position)}: cannot parse a line of {len(line)} characters"
        )
    try:
        if openmetrics:
            from prometheus_client.openmetrics.parser import (
                text_string_to_metric_families as parse_openmetrics,
            )

            families = list(parse_openmetrics(line + "\n# EOF\n"))  # type: ignore[no-untyped-call]
        else:
            from prometheus_client.parser import text_string_to_metric_families as parse_text

            families = list(parse_text(line))
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in families
            for sample in family.samples
        ]
    except Exception:  # the library's own complaints are ValueError, IndexError, KeyError...
        shown = shorten(line, 80)
        raise ExpositionError(
            f"line {_line_number(text, position)}: cannot parse {shown!r}"
        ) from None


def _line_number(text: str, position: int) -> int:
    """The line number of ``position`` in a page read with a newline added before it."""
    return text.count("\n", 0, position)


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


# ---------------------------------------------------------------------------
# Units

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
