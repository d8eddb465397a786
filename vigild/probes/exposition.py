"""A Prometheus exposition page, read for the series the selectors name. Pure: no I/O.

``PageReader`` reads the text format 0.0.4 or OpenMetrics. Any line that is not
an exposition line fails the whole page, as it fails a Prometheus scrape. The
selectors are in probes/selectors.py, the arithmetic over two scrapes in
probes/promql.py.

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

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from vigild.probes.selectors import Selector, Series
from vigild.redaction import shorten
from vigild.wording import label_value

__all__ = ["ExpositionError", "Page", "PageReader", "series_key"]


class ExpositionError(ValueError):
    """A page that is not a valid exposition: the scrape fails, as in Prometheus."""


# ---------------------------------------------------------------------------
# Pages


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
