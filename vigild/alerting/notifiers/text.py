"""What a human reads: one renderer for every backend and for ``vigild --once``.

The title says what is wrong in words and units (``db is DOWN: connection
refused``, ``api latency 12.3 s > 10 s (critical) on unraid``); the body adds
where (the instance, the target's redacted address), since when, the runbook and
a link to the target's row on the status page.

Pure functions, no I/O and no clock: "how long" is measured against the
notification's own ``created`` time, so the same message always reads the same
(and the outbox can resend it unchanged). The markdown is the subset Discord,
Slack, Telegram and apprise's markdown-to-HTML all render: bold, code spans and
``<url>`` links; the plain form is the same lines without the marks.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from urllib.parse import quote

from vigild.model import FLAP_WINDOW, AlertEvent, Notification, Severity
from vigild.wording import duration, timestamp

__all__ = [
    "body",
    "details",
    "duration",
    "headline",
    "metric_words",
    "number",
    "reading",
    "row_link",
    "subject",
    "summary",
    "timestamp",
    "title",
]

_TITLE_TARGETS = 3

_SUBJECTS = {
    "up": "",
    "latency_seconds": "latency",
    "latency_p95_seconds": "p95 latency",
    "latency_p99_seconds": "p99 latency",
    "error_rate_percent": "error rate",
    "cpu_percent": "CPU",
    "memory_percent": "memory",
    "swap_percent": "swap",
    "disk_percent": "disk",
    "inode_percent": "inodes",
    "load1": "load per core",
    "cert_expiry_days": "certificate expires in",
    "restarts": "restarts",
    "recent_restarts": "recent restarts",
    "status_code": "status",
    "health_status": "health",
    "container_health": "container health",
}
"""A metric's base name as a reader says it; a qualifier (``disk_percent:/``) follows."""

_HEALTH = {0: "healthy", 1: "degraded", 2: "unhealthy"}
_CONTAINER_HEALTH = {0: "healthy", 1: "starting", 2: "unhealthy"}


def number(value: float) -> str:
    """A reading as a short plain number: ``0.25``, ``5``, ``91.5``, ``1234570``.

    Six significant digits like ``:g``, but never in exponent form, so the text
    is both readable and parseable as a number by any receiver.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    short = f"{value:.6g}"
    if "e" in short:
        short = format(Decimal(short), "f")
    return "0" if short == "-0" else short


def _short(value: float) -> str:
    """Three significant digits for a person (``12.3``, ``9.81``), whole numbers from 100."""
    if not math.isfinite(value) or abs(value) >= 100:
        return number(round(value) if math.isfinite(value) else value)
    return number(float(f"{value:.3g}"))


def metric_words(metric: str) -> str:
    """``latency``, ``disk /``, ``queue depth``; empty for ``up``: a metric as people say it."""
    base, _, qualifier = metric.partition(":")
    words = _SUBJECTS.get(base, base.replace("_", " "))
    if qualifier:
        return f"{words} {qualifier}" if words else qualifier
    return words


def subject(target: str, metric: str) -> str:
    """``api latency``, ``host disk /``, ``db``: the target and its metric in words."""
    words = metric_words(metric)
    return f"{target} {words}" if words else target


def reading(metric: str, value: float | None) -> str:
    """A value with its unit, by metric: ``9.81 ms``, ``12.3 s``, ``96 %``, ``5 days``,
    ``degraded``, ``HTTP 503``; plain numbers for counts."""
    if value is None:
        return "no value"
    base = metric.partition(":")[0]
    if not math.isfinite(value):
        return number(value)
    match base:
        case "up":
            return "up" if value else "down"
        case "running":
            return "running" if value else "not running"
        case "health_status":
            return _HEALTH.get(int(value), number(value))
        case "container_health":
            return _CONTAINER_HEALTH.get(int(value), number(value))
        case "status_code":
            return f"HTTP {value:.0f}"
    if base.endswith("_seconds"):
        if abs(value) < 1:
            return f"{_short(value * 1000)} ms"
        if abs(value) < 120:
            return f"{_short(value)} s"
        return duration(value)
    if base.endswith("_percent"):
        return f"{_short(value)} %"
    if base.endswith("_days"):
        return f"{_short(value)} day" + ("" if value == 1 else "s")
    if base.endswith("_hours"):
        return f"{_short(value)} h"
    if base.endswith("_bytes"):
        return _bytes(value)
    return _short(value)


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{_short(value)} {unit}"
        value /= 1024
    return f"{_short(value)} TiB"


def _words_only(metric: str) -> bool:
    """Metrics whose values are words: a comparison with their line says nothing."""
    return metric.partition(":")[0] in ("up", "running", "health_status", "container_health")


def _comparison(event: AlertEvent) -> str:
    """``12.3 s > 10 s``: the value and the line it crossed, on the side it crossed."""
    value = reading(event.metric, event.value)
    if event.value is None or event.threshold is None or _words_only(event.metric):
        return value
    side = "<" if event.value < event.threshold else ">"
    return f"{value} {side} {reading(event.metric, event.threshold)}"


def _state(event: AlertEvent) -> tuple[str, str | None]:
    """Where the alert stands in words, and why where a number does not say it:
    (``db is DOWN``, ``connection refused``), (``api latency 12.3 s > 10 s``, None)."""
    base = event.metric.partition(":")[0]
    if base == "up":
        return f"{event.target} is DOWN", event.note
    if event.severity is Severity.UNKNOWN:
        why = event.note or "the probe did not report it"
        return f"{subject(event.target, event.metric)} is UNKNOWN", why
    if base in ("health_status", "running"):
        return f"{event.target} is {reading(event.metric, event.value)}", event.note
    if base == "container_health":
        return f"{event.target} container is {reading(event.metric, event.value)}", event.note
    if base == "status_code":
        return f"{event.target} answered {reading(event.metric, event.value)}", event.note
    return f"{subject(event.target, event.metric)} {_comparison(event)}", event.note


def _level(event: AlertEvent) -> str:
    """`` (critical)``, `` (critical, up from warning)``; nothing where the words say it."""
    if event.metric.partition(":")[0] == "up" or event.severity is Severity.UNKNOWN:
        return ""
    level = event.severity.label
    previous = event.previous.label if event.previous is not None else ""
    if event.kind == "escalated":
        return f" ({level}, up from {previous})"
    if event.kind == "deescalated":
        return f" ({level}, down from {previous})"
    return f" ({level})"


def _recovered(event: AlertEvent) -> str:
    """What a resolved alert came back to: ``db is up again``, ``api latency back to 120 ms``."""
    base = event.metric.partition(":")[0]
    if base == "up":
        return f"{event.target} is up again"
    if event.severity is Severity.UNKNOWN:
        return f"{subject(event.target, event.metric)} is reported again"
    if base in ("health_status", "running", "container_health") and event.value is not None:
        return f"{event.target} is {reading(event.metric, event.value)} again"
    if event.value is None:
        return f"{subject(event.target, event.metric)} has no data any more"
    return f"{subject(event.target, event.metric)} back to {reading(event.metric, event.value)}"


def _lasted(event: AlertEvent, now: float) -> float:
    end = event.ended if event.ended is not None else now
    return end - event.since


def headline(event: AlertEvent, now: float, instance: str = "") -> str:
    """One alert in words, the way a title or a summary line shows it; ``instance``
    (the host) goes before the reason: ``db is DOWN on unraid: connection refused``."""
    on = _on(instance)
    match event.kind:
        case "test":
            return f"TEST message from vigild{on}: this notifier delivers"
        case "action":
            first = (event.note or "an action ran").splitlines()[0]
            return f"ACTION for {subject(event.target, event.metric)}{on}: {first}"
        case "resolved":
            return f"RESOLVED {_recovered(event)} after {duration(_lasted(event, now))}{on}"
        case "flapping":
            return (
                f"FLAPPING {subject(event.target, event.metric)}{on} keeps firing and "
                f"resolving: quiet until stable for {duration(FLAP_WINDOW)}"
            )
    state, why = _state(event)
    level = _level(event)
    if event.kind == "repeat":
        level += f" for {duration(now - event.since)}"
    # A note's first line is the reason; the lines after it are for ``details``.
    reason = why.partition("\n")[0] if why else ""
    return f"{state}{level}{on}" + (f": {reason}" if reason else "")


def _instance(event: AlertEvent, fallback: str) -> str:
    return dict(event.origin).get("instance") or fallback


def title(notification: Notification, instance: str = "") -> str:
    """``db is DOWN on unraid: connection refused``; for several alerts
    ``3 alerts on unraid (2 critical, 1 resolved): db, api, host``.

    The host comes from the alerts themselves (``instance``, as announced), so a
    fleet's messages say where they come from; ``instance`` is for messages without one.
    """
    events = notification.events
    if not events:
        return f"vigild: no alerts{_on(instance)}"
    host = _instance(events[0], instance)
    if len(events) == 1:
        return headline(events[0], notification.created, host)
    on = _on(host)
    counts = Counter(_tag(e) for e in events)
    tally = ", ".join(f"{n} {tag}" for tag, n in counts.items())
    targets = list(dict.fromkeys(e.target for e in events))
    shown = ", ".join(targets[:_TITLE_TARGETS])
    if len(targets) > _TITLE_TARGETS:
        shown += f" and {len(targets) - _TITLE_TARGETS} more"
    return f"{len(events)} alerts{on} ({tally}): {shown}"


def _on(instance: str) -> str:
    return f" on {instance}" if instance else ""


def _tag(event: AlertEvent) -> str:
    match event.kind:
        case "resolved" | "flapping" | "action" | "test":
            return event.kind
        case "escalated" | "deescalated":
            return f"{event.kind} to {event.severity.label}"
        case _:
            return event.severity.label


def row_link(page_url: str, target: str) -> str:
    """The target's row on the status page at ``page_url`` (``[daemon] external_url``):
    ``?target=`` opens the page that lists it when there are more targets than a page."""
    name = quote(target, safe="")
    return f"{page_url.rstrip('/')}/?target={name}#target-{name}"


def details(
    event: AlertEvent,
    now: float,
    *,
    address: str | None = None,
    page_url: str | None = None,
    markdown: bool = False,
    ages: bool = True,
) -> list[str]:
    """The lines under an alert's headline: where, since when, what to read, where to look.

    ``ages`` adds how long ago it started: right for a message read as it arrives, wrong
    for a receiver that shows an alert's annotations again later (Alertmanager).
    """
    if event.kind == "test":
        return ["If you can read this, this notifier delivers."]
    code = _code if markdown else _plain
    link = _link if markdown else _plain
    where = f"target {code(event.target)}"
    address = address if address is not None else event.address
    if address:
        where += f" · {link(address) if '://' in address else code(address)}"
    instance = _instance(event, "")
    if instance:
        where += f" on {code(instance)}"
    lines = [where]
    if event.kind == "resolved":
        end = event.ended if event.ended is not None else now
        start, stop = timestamp(event.since), timestamp(end)
        if start[:10] == stop[:10]:  # same day: the date once is enough
            start, stop = start.removesuffix(" UTC"), stop[11:]
        was = "" if event.severity is Severity.OK else f", was {event.severity.label}"
        lines.append(f"from {start} to {stop} ({duration(end - event.since)}{was})")
    else:
        age = f" ({duration(now - event.since)} ago)" if ages else ""
        lines.append(f"since {timestamp(event.since)}{age}")
    if event.note and "\n" in event.note:
        # The rest of the note keeps its own lines: an action's output, a push job's
        # due time, last success and last output.
        lines.append(event.note.partition("\n")[2])
    if event.runbook:
        lines.append(f"runbook: {link(event.runbook)}")
    if page_url:
        lines.append(f"status page: {link(row_link(page_url, event.target))}")
    return lines


def _plain(text: str) -> str:
    return text


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _link(url: str) -> str:
    return f"<{url}>"


def body(notification: Notification, *, page_url: str | None = None, markdown: bool = True) -> str:
    """The message under the title: one block per alert, in the order they changed.

    A single alert's headline is the title already; several each start with theirs.
    """
    events = notification.events
    if not events:
        return "No alerts."
    now = notification.created
    if len(events) == 1:
        return "\n".join(details(events[0], now, page_url=page_url, markdown=markdown))
    blocks = []
    for event in events:
        head = headline(event, now)
        lines = [f"**{head}**" if markdown else head]
        lines += details(event, now, page_url=page_url, markdown=markdown)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary(event: AlertEvent, now: float, instance: str = "") -> str:
    """One line for one alert (a webhook's ``summary``, PagerDuty's): its headline and host.

    No timestamps: receivers show ``startsAt``/``endsAt`` themselves.
    """
    return headline(event, now, _instance(event, instance))
