"""``GET /``: the status page, one self-contained HTML document rendered on the server.

No script, no stylesheet or font from elsewhere, no build step: an operator
opens it on a host without internet access, on a laptop or a phone, and sees
what is broken. It refreshes itself about once per probe interval.

Built in two steps so the event loop is held only briefly: a ``Snapshot``
holds what the page shows as the loop has it (``Board.moment``: references
and the open alerts, where the engine lives), ``render`` builds the status
document from it, reads the sparklines from the metrics history and turns it
all into HTML (in a thread: at 10,000 targets that takes a while). A
``WeekSnapshot`` and ``render_week`` do the same for one target's last seven
days (``GET /history?target=``). With thousands of targets, a page lists
``paging.ROWS`` of them, problems first.
Every string from the config or a probe goes through the same redaction as
``/api/status``; the template (``templates/status.html.j2``) escapes every
value it prints, and control characters are shown as their escapes.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from vigild.daemon.history import BUCKET, SLOTS, WEEK, PageHistory, Points, Recent, drawn
from vigild.daemon.paging import ROWS, page_of
from vigild.daemon.sparklines import (
    HOURS,
    SPARK_HEIGHT,
    SPARK_WIDTH,
    STRIP_HEIGHT,
    WEEK_SLOTS,
    Budget,
    Line,
    Strip,
    box,
    budget_bar,
    fraction,
    latency_line,
    up_strip,
)
from vigild.redaction import printable, redact_values
from vigild.status import Board, Moment
from vigild.wording import clock_time, duration, measure, seconds, zone

if TYPE_CHECKING:
    from jinja2 import Template

    from vigild.config import TargetConfig
    from vigild.storage.history_reader import HistoryReader
    from vigild.storage.history_tiers import Bucket

__all__ = [
    "Levels",
    "Snapshot",
    "TargetLevels",
    "WeekSnapshot",
    "refresh_seconds",
    "render",
    "render_week",
]

MIN_REFRESH = 5.0
"""A faster refresh would reload the page while an operator is still reading it."""
MAX_REFRESH = 300.0


Levels = tuple[float | None, float | None, str]
"""(warning, critical, direction) of one metric's threshold."""
TargetLevels = dict[str, Levels]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one rendering of the page shows, taken off the live state."""

    moment: Moment
    history: PageHistory
    """Read in ``render``, off the loop."""
    refresh: float
    page: int = 1
    """Which ``ROWS`` targets, when there are more."""
    target: str | None = None
    """A target whose page is shown instead: a message's link to its row."""

    @property
    def now(self) -> float:
        return self.moment.now


def refresh_seconds(interval: float) -> float:
    return min(max(interval, MIN_REFRESH), MAX_REFRESH)


@dataclass(frozen=True, slots=True)
class WeekSnapshot:
    """What the 7-day view of one target shows, taken off the live state."""

    moment: Moment
    target: str
    reader: Callable[[], HistoryReader]
    refresh: float

    @property
    def now(self) -> float:
        return self.moment.now


# -- what the template draws ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """One current value as a phrase: ``latency_seconds 1.5 s`` and its thresholds."""

    metric: str
    severity: str
    reading: str
    levels: str
    no_data: str | None


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    type: str
    where: str
    state: str
    label: str
    error: str | None
    values: list[Value]
    latency: Line
    strip: Strip
    week: str
    """The last seven days' uptime, ``99.93 %``; empty when not probed in them."""
    budget: Budget | None


@dataclass(frozen=True, slots=True)
class Day:
    """One local calendar day of the 7-day view."""

    date: str
    uptime: str
    slowest: str
    down: str
    """When it was last down that day, ``14:05 CET``; empty when never."""


@dataclass(frozen=True, slots=True)
class Week:
    row: Row
    latency: Line
    strip: Strip
    days: list[Day]
    latency_box: Markup
    strip_box: Markup


_STATE_LABELS = {"none": "not probed"}


def render(snap: Snapshot, secrets: frozenset[str]) -> str:
    """The whole page. Pure: the same snapshot (and local zone) gives the same bytes."""
    moment, now = snap.moment, snap.now
    # The order needs every row's colour, not every entry: at 10,000 targets, ten times
    # as many objects alive at once would set off a full collection, which holds the
    # event loop too.
    listed = moment.listed()
    states = [moment.state(name) for _, name in listed]
    names = [name for _, name in listed]
    holding = names.index(snap.target) if snap.target in names else None
    shown, paging = page_of(states, snap.page, holding=holding)
    names = [names[i] for i in shown]
    # Names as the history file has them: before redaction.
    recents = snap.history.recent(names, now)
    counts = _counts(moment, listed)
    document = redact_values(moment.document([moment.entry(*listed[i]) for i in shown]), secrets)
    alerts = document["alerts"]
    return _template().render(
        **_header(document, counts, snap.refresh, now),
        paging=paging,
        rows=[
            _row(entry, states[i], recent, _target_levels(moment.board, name), now)
            for entry, i, recent, name in zip(
                document["targets"], shown, recents, names, strict=True
            )
        ],
        alerts=[_alert(alert, now) for alert in alerts[:ROWS]],
        more_alerts=max(len(alerts) - ROWS, 0),
        silences=[_silence(s, now) for s in document["silences"] if s["active"]],
        inactive=sum(1 for s in document["silences"] if not s["active"]),
    )


def _counts(moment: Moment, listed: list[tuple[TargetConfig, str]]) -> tuple[int, int]:
    """(targets, down) of the whole document: the header's, whichever targets are shown."""
    return len(listed), sum(moment.down(name) for _, name in listed)


def _target_levels(board: Board, name: str) -> TargetLevels:
    """The thresholds of the target's current verdicts."""
    latest = board.latest.get(name)
    if latest is None:
        return {}
    return {v.metric: (v.rule.warning, v.rule.critical, v.rule.direction) for v in latest[1]}


def render_week(snap: WeekSnapshot, secrets: frozenset[str]) -> str | None:
    """The 7-day view of one target: five-minute buckets read as ``GET /api/history``
    reads them, drawn as the status page draws its 24 h. None when the status page does
    not list ``snap.target``."""
    moment, now = snap.moment, snap.now
    listed = moment.listed()
    target = next((t for t, name in listed if name == snap.target), None)
    if target is None:
        return None
    start = (now // BUCKET + 1) * BUCKET - WEEK
    try:
        with snap.reader() as reader:
            _, _, up = reader.aggregates(snap.target, "up", start, now, BUCKET, now=now)
            _, _, latency = reader.aggregates(
                snap.target, "latency_seconds", start, now, BUCKET, now=now
            )
    except sqlite3.Error:  # no file yet, or one the writer is about to move aside
        up = latency = []
    points = _points(up, latency, start)
    document = redact_values(moment.document([moment.entry(target, snap.target)]), secrets)
    return _template().render(
        **_header(document, _counts(moment, listed), snap.refresh, now),
        week=_week(document["targets"][0], moment.state(snap.target), points, start, now),
        week_from=round(start),
    )


def _header(
    document: dict[str, Any], counts: tuple[int, int], refresh: float, now: float
) -> dict[str, Any]:
    """What every page says at its top, from the redacted status document and the
    (targets, down) ``counts`` of the whole of it."""
    identity = [f"{k}={v}" for k, v in document["external_labels"].items()]
    if document["replica"]:
        identity.append(f"replica {document['replica']}")
    return {
        "document": document,
        "identity": " · ".join(identity),
        "refresh": round(refresh),
        "refresh_text": duration(refresh),
        "updated": clock_time(now, now),
        "zone": zone(now),
        "hours": HOURS,
        "total": counts[0],
        "down": counts[1],
        "spark_width": SPARK_WIDTH,
        "latency_box": box(SPARK_HEIGHT, SLOTS),
        "strip_box": box(STRIP_HEIGHT, SLOTS),
    }


@functools.cache
def _template() -> Template:
    """Compiled once per process; jinja2 is imported only when a page is first asked for,
    so ``vigild --once`` and a daemon nobody looks at never load it."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    def shown(value: object) -> object:
        # Names and errors can hold control characters (a container's name comes from
        # its engine): they are shown as their escapes, then autoescaped.
        if type(value) is str:
            return printable(value)
        return "" if value is None else value

    environment = Environment(
        loader=PackageLoader("vigild.daemon", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=shown,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template("status.html.j2")


def _row(
    entry: dict[str, Any], state: str, recent: Recent, levels: TargetLevels, now: float
) -> Row:
    observation = entry["observation"]
    error = None
    if observation is not None and not observation["up"]:
        error = observation["error"] or "probe failed"
    where = [entry["url"]] if entry.get("url") else []
    if "discovered" in entry:
        where.append(f"from container {entry['discovered']['container']}")
    return Row(
        name=entry["name"],
        type=entry["type"],
        where="".join(f" · {w}" for w in where),
        state=state,
        label=_STATE_LABELS.get(state, state),
        error=error,
        values=_values(entry, levels) if error is None and observation is not None else [],
        latency=latency_line(recent.points),
        strip=up_strip(recent.points, now),
        week=fraction(*recent.week),
        budget=budget_bar(observation),
    )


def _points(up: list[Bucket], latency: list[Bucket], start: float) -> Points:
    """``WEEK_SLOTS`` buckets from ``start`` (seconds)."""
    first = int(start // BUCKET)
    slowest = [0.0] * WEEK_SLOTS
    probes = [0] * WEEK_SLOTS
    ups = [0] * WEEK_SLOTS
    for b in up:
        at = int(b.start / 1000 // BUCKET) - first
        if 0 <= at < WEEK_SLOTS:
            probes[at], ups[at] = int(b.count), int(b.sum)
    for b in latency:
        at = int(b.start / 1000 // BUCKET) - first
        if 0 <= at < WEEK_SLOTS:
            slowest[at] = b.max if drawn(b.max) else 0.0
    return Points(slowest, probes, ups)


def _week(entry: dict[str, Any], state: str, points: Points, start: float, now: float) -> Week:
    days: list[Day] = []
    at = 0
    for _, group in itertools.groupby(
        range(WEEK_SLOTS), key=lambda x: time.localtime(start + x * BUCKET)[:3]
    ):
        day = slice(at, at + len(list(group)))
        probes, up = sum(points.probes[day]), sum(points.up[day])
        down = [x for x in range(day.start, day.stop) if points.up[x] < points.probes[x]]
        slowest = max(points.latency[day])
        days.append(
            Day(
                date=time.strftime("%a %d %b", time.localtime(start + at * BUCKET)),
                uptime=fraction(up, probes),
                slowest=seconds(slowest) if slowest > 0 else "-",
                down=clock_time(start + down[-1] * BUCKET, now) if down else "",
            )
        )
        at = day.stop
    days.reverse()  # today first, as a person looks for it
    last_day = Points(points.latency[-SLOTS:], points.probes[-SLOTS:], points.up[-SLOTS:])
    return Week(
        row=_row(entry, state, Recent(last_day, (0, 0)), {}, now),
        latency=latency_line(points, span="7 d"),
        strip=up_strip(points, now, span="7 d"),
        days=days,
        latency_box=box(SPARK_HEIGHT, WEEK_SLOTS),
        strip_box=box(STRIP_HEIGHT, WEEK_SLOTS),
    )


def _values(entry: dict[str, Any], levels: TargetLevels) -> list[Value]:
    absent = entry["observation"].get("no_data", {})
    shown = []
    for v in entry["verdicts"]:
        metric = v["metric"]
        if metric == "up":
            continue
        if metric in absent and v["value"] is None:
            shown.append(Value(metric, "none", "", "", absent[metric]))
        else:
            reading = "-" if v["value"] is None else measure(metric, v["value"])
            shown.append(Value(metric, v["severity"], reading, _levels(metric, levels), None))
    return shown


def _levels(metric: str, levels: TargetLevels) -> str:
    found = levels.get(metric)
    if found is None:
        return ""
    warning, critical, direction = found
    sign = ">" if direction == "above" else "<"
    said = []
    if warning is not None:
        said.append(f"warn {sign} {measure(metric, warning)}")
    if critical is not None:
        said.append(f"crit {sign} {measure(metric, critical)}")
    return " · ".join(said)


def _alert(alert: dict[str, Any], now: float) -> dict[str, Any]:
    metric = alert["metric"]
    value = "-" if alert["value"] is None else measure(metric, alert["value"])
    if alert["threshold"] is not None:
        value += f" (threshold {measure(metric, alert['threshold'])})"
    opened = alert["for_seconds"]
    return {
        **alert,
        "shown_value": value,
        "open_for": duration(opened) if opened is not None else "-",
        "since_local": clock_time(now - opened, now) if opened is not None else "",
    }


def _silence(silence: dict[str, Any], now: float) -> dict[str, Any]:
    matchers = " ".join(
        f"{key}={value}" for key, value in silence["matchers"].items() if value is not None
    )
    if silence["ends"]:
        ends = clock_time(datetime.fromisoformat(silence["ends"]).timestamp(), now)
    else:
        ends = silence.get("schedule") or "-"
    return {**silence, "shown_matchers": matchers, "shown_ends": ends}
