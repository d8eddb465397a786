"""The sparklines of the status page and the 7-day view: latency as an SVG path, up and
down as coloured runs, and the uptime under them, from five-minute ``Points``; and the
error budget bar of a target with an SLO."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from vigild.daemon.history import BUCKET, SLOTS, WEEK, Points
from vigild.slo import BUDGET
from vigild.wording import clock_time, measure, seconds

__all__ = [
    "HOURS",
    "SPARK_HEIGHT",
    "SPARK_WIDTH",
    "STRIP_HEIGHT",
    "WEEK_SLOTS",
    "Budget",
    "Line",
    "Strip",
    "box",
    "budget_bar",
    "fraction",
    "latency_line",
    "up_strip",
    "uptime",
]

SPARK_WIDTH = SLOTS
"""One pixel per bucket at full size: no resampling on the server."""
SPARK_HEIGHT = 28
STRIP_HEIGHT = 10
HOURS = round(SLOTS * BUCKET / 3600)
WEEK_SLOTS = round(WEEK / BUCKET)
"""The 7-day view's buckets: the same five minutes, drawn as wide as the screen allows."""


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


def box(height: int, width: int) -> Markup:
    """A sparkline's size: one user unit per bucket, scaled to the width CSS gives it
    (its full size, less on a narrow screen), never in height."""
    return Markup(
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'preserveAspectRatio="none"'
    )


def fraction(up: float, probes: float) -> str:
    return percent(up / probes) if probes else ""


def latency_line(points: Points, span: str = f"{HOURS} h") -> Line:
    """The slowest reading per bucket as a line; gaps where nothing was measured."""
    top = max(points.latency)
    if top <= 0:
        return Line(Markup(""), f"no latency readings in the last {span}")
    return Line(_path(points.latency, top), f"latency, slowest per 5 min; peak {seconds(top)}")


_AT = [f"{x} " for x in range(WEEK_SLOTS)]
_TENTHS = [f"{tenths / 10:.1f}" for tenths in range(SPARK_HEIGHT * 10 + 1)]
"""Every y a path uses, spelt once: formatting a float per bucket costs more than all else."""


def _path(values: Sequence[float], top: float) -> Markup:
    # Leave a pixel at top and bottom so the stroke is not clipped.
    scale = (SPARK_HEIGHT - 2) / top
    bottom = SPARK_HEIGHT - 1
    # One comprehension ("" in a gap: no reading is 0), then one string per stretch
    # between gaps: at 10,000 targets of 288 buckets, the work per bucket is most of the
    # page's render time.
    points = [
        "" if v <= 0 else _AT[x] + _TENTHS[int((bottom - v * scale) * 10 + 0.5)]
        for x, v in enumerate(values)
    ]
    commands = []
    for measured, stretch in itertools.groupby(points, key=bool):
        if measured:
            drawn = list(stretch)
            # A lone bucket between gaps still shows, as a one-pixel stroke.
            commands.append(f"M{'L'.join(drawn)}{'h1' if len(drawn) == 1 else ''}")
    return Markup("".join(commands))


def up_strip(points: Points, now: float, span: str = f"{HOURS} h") -> Strip:
    """Up/down per bucket as coloured runs. A bucket with any failed probe is down: a
    one-minute outage is a fifth of a bucket and must not vanish into green."""
    # Down runs are drawn last, so a down bucket's wider mark lies over its neighbours.
    up: list[str] = []
    down: list[str] = []
    last_down = -1
    x = 0
    kinds = [None if n == 0 else u >= n for n, u in zip(points.probes, points.up, strict=True)]
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
        return Strip(rects, "", f"no probes in the last {span}")
    shown = percent(fraction)
    title = f"up {shown} of the last {span}"
    if last_down >= 0:
        bucket = int(now // BUCKET) - len(kinds) + 1 + last_down
        title += f"; last down at {clock_time(bucket * BUCKET, now)}"
    return Strip(rects, shown, title)


def uptime(points: Points) -> float | None:
    """The fraction of probes that found the target up; None: never probed."""
    probes = sum(points.probes)
    return sum(points.up) / probes if probes else None


def percent(fraction: float) -> str:
    # Rounded down: a page that says 100 % after an outage would hide it.
    if fraction >= 1.0:
        return "100 %"
    return f"{math.floor(fraction * 10000) / 100:.2f} %"


@dataclass(frozen=True, slots=True)
class Budget:
    """The error budget bar: what is left of the SLO's period budget."""

    width: float
    """Of 100 user units: the part left, 0 when overspent."""
    state: str
    text: str


def budget_bar(observation: dict[str, Any] | None) -> Budget | None:
    """A target with an SLO: a bar of its error budget left, greener the more is left."""
    left = None if observation is None else observation["metrics"].get(BUDGET)
    if left is None:
        return None
    if left <= 0:
        return Budget(0.0, "critical", f"error budget spent ({measure(BUDGET, left)} left)")
    state = "ok" if left >= 50 else "warning" if left >= 25 else "critical"
    return Budget(min(left, 100.0), state, f"error budget {measure(BUDGET, left)} left")
