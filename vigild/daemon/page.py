"""``GET /``: the status page, one self-contained HTML document rendered on the server.

No script, no stylesheet or font from elsewhere, no build step: an operator
opens it on a host without internet access, on a laptop or a phone, and sees
what is broken. It refreshes itself about once per probe interval.

Built in two steps so the event loop is held only briefly: ``snapshot``
copies what the page shows (on the loop, where the engine lives), ``render``
turns that into HTML (in a thread: at 10,000 targets that takes a while).
Every string from the config or a probe goes through the same redaction as
``/api/status``; the template (``templates/status.html.j2``) escapes every
value it prints, and control characters are shown as their escapes.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from vigild.daemon.history import BUCKET, SLOTS, History, Point
from vigild.model import Severity, worst
from vigild.redaction import printable, redact_values
from vigild.slo import BUDGET
from vigild.status import Board
from vigild.wording import clock_time, duration, measure, seconds, zone

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = [
    "Levels",
    "Snapshot",
    "Strip",
    "TargetLevels",
    "latency_line",
    "refresh_seconds",
    "render",
    "snapshot",
    "up_strip",
    "uptime",
]

MIN_REFRESH = 5.0
"""A faster refresh would reload the page while an operator is still reading it."""
MAX_REFRESH = 300.0

SPARK_WIDTH = SLOTS
"""One pixel per bucket at full size: no resampling on the server."""
SPARK_HEIGHT = 28
STRIP_HEIGHT = 10
HOURS = round(SLOTS * BUCKET / 3600)

Levels = tuple[float | None, float | None, str]
"""(warning, critical, direction) of one metric's threshold."""
TargetLevels = dict[str, Levels]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one rendering of the page shows, copied off the live state."""

    document: dict[str, Any]
    """The ``/api/status`` document, not yet redacted."""
    histories: list[list[Point | None]]
    """Per entry of ``document["targets"]``, in the same order."""
    levels: list[TargetLevels]
    """Per entry of ``document["targets"]``: the thresholds of its current verdicts."""
    refresh: float
    now: float


def refresh_seconds(interval: float) -> float:
    return min(max(interval, MIN_REFRESH), MAX_REFRESH)


def snapshot(
    document: dict[str, Any], board: Board, history: History, *, refresh: float, now: float
) -> Snapshot:
    histories = []
    levels: list[TargetLevels] = []
    for entry in document["targets"]:
        name = entry["name"]
        histories.append(history.points(name, now))
        latest = board.latest.get(name)
        target_levels: TargetLevels = {}
        if latest is not None:
            for v in latest[1]:
                target_levels[v.metric] = (v.rule.warning, v.rule.critical, v.rule.direction)
        levels.append(target_levels)
    return Snapshot(document, histories, levels, refresh, now)


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
class Line:
    """The latency sparkline: an SVG path, empty when nothing was measured."""

    path: Markup
    """Numbers and path commands only."""
    title: str


@dataclass(frozen=True, slots=True)
class Strip:
    rects: Markup
    """One ``rect`` per run of up or down buckets, made of numbers and the two class
    names only: at 10,000 targets, a loop over the runs in the template was the slowest
    part of the page."""
    uptime: str
    """``99.93 %``; empty when never probed."""
    title: str


@dataclass(frozen=True, slots=True)
class Budget:
    """The error budget bar: what is left of the SLO's period budget."""

    width: float
    """Of 100 user units: the part left, 0 when overspent."""
    state: str
    text: str


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
    budget: Budget | None


_STATE_LABELS = {"none": "not probed"}


def render(snap: Snapshot, secrets: frozenset[str]) -> str:
    """The whole page. Pure: the same snapshot (and local zone) gives the same bytes."""
    document = redact_values(snap.document, secrets)
    now = snap.now
    targets = document["targets"]
    identity = [f"{k}={v}" for k, v in document["external_labels"].items()]
    if document["replica"]:
        identity.append(f"replica {document['replica']}")
    return _template().render(
        document=document,
        identity=" · ".join(identity),
        refresh=round(snap.refresh),
        refresh_text=duration(snap.refresh),
        updated=clock_time(now, now),
        zone=zone(now),
        hours=HOURS,
        down=sum(1 for t in targets if t["up"] is False),
        rows=[
            _row(entry, points, target_levels, now)
            for entry, points, target_levels in zip(
                targets, snap.histories, snap.levels, strict=True
            )
        ],
        alerts=[_alert(alert, now) for alert in document["alerts"]],
        silences=[_silence(s, now) for s in document["silences"] if s["active"]],
        inactive=sum(1 for s in document["silences"] if not s["active"]),
        spark_width=SPARK_WIDTH,
        latency_box=_box(SPARK_HEIGHT),
        strip_box=_box(STRIP_HEIGHT),
    )


def _box(height: int) -> Markup:
    """A sparkline's size: ``SPARK_WIDTH`` user units scaled to the width CSS gives it
    (its full size, less on a narrow screen), never in height."""
    return Markup(
        f'width="{SPARK_WIDTH}" height="{height}" viewBox="0 0 {SPARK_WIDTH} {height}" '
        'preserveAspectRatio="none"'
    )


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


def state_of(entry: dict[str, Any]) -> str:
    """The row's colour: its worst current verdict, or "none" before the first probe."""
    if entry["observation"] is None:
        return "none"
    if not entry["up"]:
        return "critical"
    return worst(Severity.parse(v["severity"]) for v in entry["verdicts"]).label


def _row(
    entry: dict[str, Any], points: Sequence[Point | None], levels: TargetLevels, now: float
) -> Row:
    state = state_of(entry)
    observation = entry["observation"]
    error = None
    if observation is not None and not observation["up"]:
        error = observation["error"] or "probe failed"
    url = entry.get("url")
    return Row(
        name=entry["name"],
        type=entry["type"],
        where=f" · {url}" if url else "",
        state=state,
        label=_STATE_LABELS.get(state, state),
        error=error,
        values=_values(entry, levels) if error is None and observation is not None else [],
        latency=latency_line(points),
        strip=up_strip(points, now),
        budget=budget_bar(observation),
    )


def budget_bar(observation: dict[str, Any] | None) -> Budget | None:
    """A target with an SLO: a bar of its error budget left, greener the more is left."""
    left = None if observation is None else observation["metrics"].get(BUDGET)
    if left is None:
        return None
    if left <= 0:
        return Budget(0.0, "critical", f"error budget spent ({measure(BUDGET, left)} left)")
    state = "ok" if left >= 50 else "warning" if left >= 25 else "critical"
    return Budget(min(left, 100.0), state, f"error budget {measure(BUDGET, left)} left")


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


# -- sparklines -----------------------------------------------------------


def latency_line(points: Sequence[Point | None]) -> Line:
    """The slowest reading per bucket as a line; gaps where nothing was measured."""
    values = [p.latency if p is not None else None for p in points]
    # A Point's latency is None or above 0, so filter(None, ...) keeps exactly the readings.
    top = max(filter(None, values), default=None)
    if top is None:
        return Line(Markup(""), f"no latency readings in the last {HOURS} h")
    return Line(_path(values, top), f"latency, slowest per 5 min; peak {seconds(top)}")


_AT = [f"{x} " for x in range(SLOTS)]
_TENTHS = [f"{tenths / 10:.1f}" for tenths in range(SPARK_HEIGHT * 10 + 1)]
"""Every y a path uses, spelt once: formatting a float per bucket costs more than all else."""


def _path(values: Sequence[float | None], top: float) -> Markup:
    # Leave a pixel at top and bottom so the stroke is not clipped.
    scale = (SPARK_HEIGHT - 2) / top
    bottom = SPARK_HEIGHT - 1
    # One comprehension ("" in a gap), then one string per stretch between gaps: at 10,000
    # targets of 288 buckets, the work per bucket is most of the page's render time.
    points = [
        "" if v is None else _AT[x] + _TENTHS[int((bottom - v * scale) * 10 + 0.5)]
        for x, v in enumerate(values)
    ]
    commands = []
    for measured, stretch in itertools.groupby(points, key=bool):
        if measured:
            drawn = list(stretch)
            # A lone bucket between gaps still shows, as a one-pixel stroke.
            commands.append(f"M{'L'.join(drawn)}{'h1' if len(drawn) == 1 else ''}")
    return Markup("".join(commands))


def up_strip(points: Sequence[Point | None], now: float) -> Strip:
    """Up/down per bucket as coloured runs. A bucket with any failed probe is down: a
    one-minute outage is a fifth of a bucket and must not vanish into green."""
    # Down runs are drawn last, so a down bucket's wider mark lies over its neighbours.
    up: list[str] = []
    down: list[str] = []
    last_down = -1
    x = 0
    kinds = [None if p is None else p.up >= 1.0 for p in points]
    for all_up, run in itertools.groupby(kinds):
        width = len(list(run))
        if all_up is not None:
            (up if all_up else down).append(
                f'<rect class="{"up" if all_up else "down"}" x="{x}" y="0" '
                f'width="{width}" height="{STRIP_HEIGHT}"/>'
            )
            if not all_up:
                last_down = x
        x += width
    rects = Markup("".join(up + down))
    fraction = uptime(points)
    if fraction is None:
        return Strip(rects, "", f"no probes in the last {HOURS} h")
    shown = _percent(fraction)
    title = f"up {shown} of the last {HOURS} h"
    if last_down >= 0:
        bucket = int(now // BUCKET) - len(points) + 1 + last_down
        title += f"; last down at {clock_time(bucket * BUCKET, now)}"
    return Strip(rects, shown, title)


def uptime(points: Sequence[Point | None]) -> float | None:
    """The mean up fraction of the buckets that were probed; None: never probed."""
    probed = [p.up for p in points if p is not None]
    return sum(probed) / len(probed) if probed else None


def _percent(fraction: float) -> str:
    # Rounded down: a page that says 100 % after an outage would hide it.
    if fraction >= 1.0:
        return "100 %"
    return f"{math.floor(fraction * 10000) / 100:.2f} %"
