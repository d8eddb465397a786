"""``GET /``: the status page, one self-contained HTML document rendered on the server.

No script, no stylesheet or font from elsewhere, no build step: an operator
opens it on a host without internet access and sees what is broken. It
refreshes itself about once per probe interval.

Built in two steps so the event loop is held only briefly: ``snapshot``
copies what the page shows (on the loop, where the engine lives), ``render``
turns that into HTML (in a thread: at 10,000 targets that takes a while).
Every string from the config or a probe goes through the same redaction as
``/api/status`` and then through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from vigild.daemon.history import BUCKET, SLOTS, History, Point
from vigild.model import Severity, worst
from vigild.redaction import printable, redact_values
from vigild.status import Board
from vigild.wording import duration

__all__ = ["Levels", "Snapshot", "TargetLevels", "refresh_seconds", "render", "snapshot"]

MIN_REFRESH = 5.0
"""A faster refresh would reload the page while an operator is still reading it."""
MAX_REFRESH = 300.0

SPARK_WIDTH = SLOTS
"""One pixel per bucket: no resampling on the server, crisp lines in the browser."""
SPARK_HEIGHT = 28
STRIP_HEIGHT = 10

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


# -- rendering ------------------------------------------------------------

_STYLE = """
:root { --ok: #2e7d32; --warning: #f59f00; --critical: #c62828; --unknown: #757575;
  --none: #b0b0b0; --ink: #1d2125; --muted: #5f6b76; --line: #e3e6e8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: #f7f8f9; }
header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap;
  padding: 14px 20px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 20px; }
main { padding: 8px 20px 24px; }
h2 { font-size: 15px; margin: 20px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff;
  border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-top: 1px solid var(--line);
  vertical-align: middle; }
th { font-weight: 600; color: var(--muted); font-size: 12px; background: #fbfbfc; }
.muted, small { color: var(--muted); }
.badge { display: inline-block; min-width: 74px; padding: 2px 8px; border-radius: 4px;
  color: #fff; font-weight: 600; font-size: 12px; text-align: center;
  text-transform: uppercase; background: var(--none); }
.state-ok .badge, .badge.state-ok { background: var(--ok); }
.state-warning .badge, .badge.state-warning { background: var(--warning); color: #1d2125; }
.state-critical .badge, .badge.state-critical { background: var(--critical); }
.state-unknown .badge, .badge.state-unknown { background: var(--unknown); }
tr.target { border-left: 5px solid var(--none); }
tr.target.state-ok { border-left-color: var(--ok); }
tr.target.state-warning { border-left-color: var(--warning); }
tr.target.state-critical { border-left-color: var(--critical); }
tr.target.state-unknown { border-left-color: var(--unknown); }
.name { font-weight: 600; }
.values { display: flex; flex-wrap: wrap; gap: 4px 14px; }
.value b { font-variant-numeric: tabular-nums; }
.sev-warning b { color: #b36b00; }
.sev-critical b, .error { color: var(--critical); }
.sev-unknown b { color: var(--unknown); }
.tag { display: inline-block; padding: 0 6px; margin-left: 4px; border-radius: 3px;
  font-size: 11px; background: #eceff1; color: var(--muted); }
svg.spark { display: block; background: #fbfbfc; }
svg.spark path { fill: none; stroke: #1565c0; stroke-width: 1.2; }
svg.strip .up { fill: var(--ok); }
svg.strip .partial { fill: var(--warning); }
svg.strip .down { fill: var(--critical); }
.empty { padding: 10px; color: var(--muted); background: #fff; border: 1px solid var(--line); }
"""

_STATE_LABELS = {"none": "not probed"}


def render(snap: Snapshot, secrets: frozenset[str]) -> str:
    """The whole page. Pure: the same snapshot gives the same bytes."""
    document = redact_values(snap.document, secrets)
    targets = document["targets"]
    worst_label = document["worst"]
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{round(snap.refresh)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # An empty icon: otherwise the browser asks for /favicon.ico and logs a 404.
        '<link rel="icon" href="data:,">',
        f"<title>vigild on {_e(document['instance'])}: {_e(worst_label.upper())}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<header><h1>vigild on <span id="instance">{_e(document["instance"])}</span></h1>',
        *_identity(document),
        f'<span class="badge state-{_e(worst_label)}" id="worst">{_e(worst_label)}</span>',
        f'<span class="muted">{len(targets)} targets · {_count_down(targets)} down · '
        f"updated {_e(document['generated_at'])} · refreshes every "
        f"{duration(snap.refresh)} · vigild {_e(document['version'])}</span></header><main>",
    ]
    parts.extend(_targets(targets, snap.histories, snap.levels))
    parts.extend(_alerts(document["alerts"]))
    parts.extend(_silences(document["silences"]))
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _identity(document: dict[str, Any]) -> list[str]:
    """The external labels and the replica: which of a fleet's pages this is."""
    shown = [f"{k}={v}" for k, v in document["external_labels"].items()]
    if document["replica"]:
        shown.append(f"replica {document['replica']}")
    if not shown:
        return []
    return [f'<span class="muted" id="identity">{_e(" · ".join(shown))}</span>']


def _e(value: object) -> str:
    return escape(printable(str(value)), quote=True)


def _count_down(targets: Iterable[dict[str, Any]]) -> int:
    return sum(1 for t in targets if t["up"] is False)


def state_of(entry: dict[str, Any]) -> str:
    """The row's colour: its worst current verdict, or "none" before the first probe."""
    if entry["observation"] is None:
        return "none"
    if not entry["up"]:
        return "critical"
    return worst(Severity.parse(v["severity"]) for v in entry["verdicts"]).label


def _targets(
    targets: Sequence[dict[str, Any]],
    histories: Sequence[list[Point | None]],
    levels: Sequence[TargetLevels],
) -> Iterable[str]:
    yield "<h2>Targets</h2>"
    if not targets:
        yield '<p class="empty">No targets configured.</p>'
        return
    hours = round(SLOTS * BUCKET / 3600)
    yield (
        '<table class="targets"><thead><tr><th>state</th><th>target</th>'
        f"<th>current values</th><th>latency, last {hours} h</th>"
        f"<th>up, last {hours} h</th></tr></thead><tbody>"
    )
    for entry, points, target_levels in zip(targets, histories, levels, strict=True):
        state = state_of(entry)
        label = _STATE_LABELS.get(state, state)
        yield (
            # The id is where a message's "status page" link lands (text.row_link).
            f'<tr class="target state-{state}" data-target="{_e(entry["name"])}" '
            f'id="target-{_e(entry["name"])}">'
            f'<td><span class="badge">{_e(label)}</span></td>'
            f'<td><div class="name">{_e(entry["name"])}</div>'
            f"<small>{_e(entry['type'])}{_e(_where(entry))}</small></td>"
            f"<td>{_values(entry, target_levels)}</td>"
            f"<td>{latency_sparkline(points)}</td><td>{up_strip(points)}</td></tr>"
        )
    yield "</tbody></table>"


def _where(entry: dict[str, Any]) -> str:
    url = entry.get("url")
    return f" · {url}" if url else ""


def _values(entry: dict[str, Any], levels: TargetLevels) -> str:
    observation = entry["observation"]
    if observation is None:
        return '<span class="muted">not probed yet</span>'
    if not observation["up"]:
        return f'<span class="error">down: {_e(observation["error"] or "probe failed")}</span>'
    absent = observation.get("no_data", {})
    shown = [
        f'<span class="value muted">{_e(v["metric"])} no data: {_e(absent[v["metric"]])}</span>'
        if v["metric"] in absent and v["value"] is None
        else f'<span class="value sev-{_e(v["severity"])}">{_e(v["metric"])} '
        f"<b>{_e(_number(v['value']))}</b>{_levels(levels.get(v['metric']))}</span>"
        for v in entry["verdicts"]
        if v["metric"] != "up"
    ]
    if not shown:
        return '<span class="muted">up</span>'
    return f'<div class="values">{"".join(shown)}</div>'


def _levels(levels: Levels | None) -> str:
    if levels is None:
        return ""
    warning, critical, direction = levels
    sign = "&gt;" if direction == "above" else "&lt;"
    said = []
    if warning is not None:
        said.append(f"warn {sign} {_e(_number(warning))}")
    if critical is not None:
        said.append(f"crit {sign} {_e(_number(critical))}")
    return f" <small>{' · '.join(said)}</small>" if said else ""


def _alerts(alerts: Sequence[dict[str, Any]]) -> Iterable[str]:
    yield "<h2>Open alerts</h2>"
    if not alerts:
        yield '<p class="empty">No open alerts.</p>'
        return
    yield (
        '<table class="alerts"><thead><tr><th>severity</th><th>target</th><th>metric</th>'
        "<th>value</th><th>open for</th><th></th></tr></thead><tbody>"
    )
    for alert in alerts:
        marks = []
        if alert["state"] != "firing":
            marks.append(f'<span class="tag">{_e(alert["state"])}</span>')
        if alert["silenced_by"]:
            marks.append(f'<span class="tag">silenced by {_e(alert["silenced_by"])}</span>')
        if alert["inhibited"]:
            marks.append(f'<span class="tag">held back: {_e(alert["inhibited_because"])}</span>')
        if alert["note"]:
            marks.append(f'<span class="muted">{_e(alert["note"])}</span>')
        if alert["runbook"]:
            marks.append(f'<a href="{_e(alert["runbook"])}">runbook</a>')
        value = _number(alert["value"])
        if alert["threshold"] is not None:
            value += f" (threshold {_number(alert['threshold'])})"
        opened = duration(alert["for_seconds"]) if alert["for_seconds"] is not None else "-"
        yield (
            f'<tr class="alert state-{_e(alert["severity"])}">'
            f'<td><span class="badge">{_e(alert["severity"])}</span></td>'
            f"<td>{_e(alert['target'])}</td><td>{_e(alert['metric'])}</td>"
            f"<td>{_e(value)}</td>"
            f'<td title="since {_e(alert["since"])}">{_e(opened)}</td>'
            f"<td>{' '.join(marks)}</td></tr>"
        )
    yield "</tbody></table>"


def _silences(silences: Sequence[dict[str, Any]]) -> Iterable[str]:
    active = [s for s in silences if s["active"]]
    yield "<h2>Active silences</h2>"
    later = len(silences) - len(active)
    note = f" {later} more not active now." if later else ""
    if not active:
        yield f'<p class="empty">No active silences.{_e(note)}</p>'
        return
    yield (
        '<table class="silences"><thead><tr><th>id</th><th>matches</th><th>ends</th>'
        "<th>comment</th><th>by</th></tr></thead><tbody>"
    )
    for silence in active:
        matchers = " ".join(
            f"{key}={value}" for key, value in silence["matchers"].items() if value is not None
        )
        ends = silence["ends"] or silence.get("schedule") or "-"
        yield (
            f"<tr><td>{_e(silence['id'])}</td><td>{_e(matchers)}</td><td>{_e(ends)}</td>"
            f"<td>{_e(silence['comment'] or '')}</td>"
            f"<td>{_e(silence['created_by'] or silence['source'])}</td></tr>"
        )
    yield "</tbody></table>"
    if note:
        yield f'<p class="muted">{_e(note.strip())}</p>'


# -- sparklines -----------------------------------------------------------


def latency_sparkline(points: Sequence[Point | None]) -> str:
    """The slowest reading per bucket as a line; gaps where nothing was measured."""
    values = [p.latency if p is not None else None for p in points]
    top = max((v for v in values if v is not None), default=None)
    if top is None:
        title = "no latency readings in the last 24 h"
        path = ""
    else:
        title = f"latency, slowest per 5 min; peak {_seconds(top)}"
        path = _path(values, top)
    return (
        f'<svg class="spark latency" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{path}</svg>"
    )


def _path(values: Sequence[float | None], top: float) -> str:
    # Leave a pixel at top and bottom so the stroke is not clipped.
    scale = (SPARK_HEIGHT - 2) / top
    commands = []
    pen_down = False
    for x, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        y = SPARK_HEIGHT - 1 - value * scale
        if pen_down:
            commands.append(f"L{x} {y:.1f}")
        else:
            # A lone bucket between gaps still shows, as a one-pixel stroke.
            commands.append(f"M{x} {y:.1f}h1" if _alone(values, x) else f"M{x} {y:.1f}")
        pen_down = True
    return f'<path d="{"".join(commands)}"/>'


def _alone(values: Sequence[float | None], x: int) -> bool:
    return x + 1 >= len(values) or values[x + 1] is None


def up_strip(points: Sequence[Point | None]) -> str:
    """Up/down per bucket as coloured runs: all up, partly down, all down, or no data."""
    rects = []
    run_start = 0
    run_kind: str | None = None
    for x, point in enumerate([*points, None]):
        kind = None if point is None else _up_kind(point.up)
        if kind != run_kind or x == len(points):
            if run_kind is not None:
                rects.append(
                    f'<rect class="{run_kind}" x="{run_start}" y="0" '
                    f'width="{x - run_start}" height="{STRIP_HEIGHT}"/>'
                )
            run_start, run_kind = x, kind
    probed = [p.up for p in points if p is not None]
    if probed:
        title = f"up {100 * sum(probed) / len(probed):.1f} % of the last 24 h"
    else:
        title = "no probes in the last 24 h"
    return (
        f'<svg class="spark strip" width="{SPARK_WIDTH}" height="{STRIP_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {STRIP_HEIGHT}" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{''.join(rects)}</svg>"
    )


def _up_kind(fraction: float) -> str:
    if fraction >= 1.0:
        return "up"
    return "down" if fraction <= 0.0 else "partial"


# -- numbers --------------------------------------------------------------


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
