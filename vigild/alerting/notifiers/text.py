"""What a human reads: a notification's title and markdown body, and one-line summaries.

Pure functions, no I/O and no clock: "how long" is measured against the
notification's own ``created`` time, so the same message always reads the same
(and the outbox can resend it unchanged). The markdown is the subset Discord,
Slack and apprise's markdown-to-HTML all render: bold, code spans and
``<url>`` links.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal

from vigild.model import FLAP_WINDOW, AlertEvent, Notification, Severity
from vigild.wording import duration

__all__ = ["body", "duration", "number", "summary", "timestamp", "title"]

_TITLE_TARGETS = 3


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


def timestamp(seconds: float) -> str:
    """Unix seconds as ``2024-05-01 12:03:04 UTC``: one zone for every reader."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def title(notification: Notification, instance: str = "") -> str:
    """``[CRITICAL] covabot: up on unraid``, ``[WARNING] 3 alerts on unraid: covabot, host``,
    ``[RESOLVED] ...``: a fleet's messages say which host they come from (``instance``)."""
    on = f" on {instance}" if instance else ""
    events = notification.events
    if not events:
        return f"[vigild] no alerts{on}"
    if notification.is_test:
        return f"[TEST] test message from vigild{on}"
    tag = "RESOLVED" if notification.status == "resolved" else notification.severity.name
    if all(e.kind == "action" for e in events):
        tag = "ACTION"
    if len(events) == 1:
        return f"[{tag}] {events[0].target}: {events[0].metric}{on}"
    targets = list(dict.fromkeys(e.target for e in events))
    shown = ", ".join(targets[:_TITLE_TARGETS])
    if len(targets) > _TITLE_TARGETS:
        shown += f" and {len(targets) - _TITLE_TARGETS} more"
    where = f"{on}:" if on else " on"
    return f"[{tag}] {len(events)} alerts{where} {shown}"


def body(notification: Notification) -> str:
    """One markdown line per alert, in the order they changed."""
    if not notification.events:
        return "No alerts."
    now = notification.created
    return "\n".join(_line(event, now) for event in notification.events)


def summary(event: AlertEvent, now: float) -> str:
    """One plain-text line for one alert: ``CRITICAL covabot cpu_percent = 91.5 (...)``.

    No timestamps: receivers show ``startsAt``/``endsAt`` themselves.
    """
    if event.kind == "test":
        return "test message from vigild"
    if event.kind == "action":
        return f"{event.severity.name} {event.target} {event.metric}: {event.note or 'action'}"
    tag = "RESOLVED" if event.kind == "resolved" else event.severity.name
    return f"{tag} {event.target} {event.metric}{_reading(event)}: {_phrase(event, now)}"


def _line(event: AlertEvent, now: float) -> str:
    if event.kind == "test":
        return "This is a test message from vigild: if you can read it, this notifier delivers."
    if event.kind == "action":
        # The note may end in a fenced block of output: it goes last, on lines of its own.
        head = f"- **{event.severity.name}** `{event.target}` `{event.metric}`"
        return f"{head} · since {timestamp(event.since)}: {event.note or 'action'}"
    tag = "RESOLVED" if event.kind == "resolved" else event.severity.name
    parts = [
        f"- **{tag}** `{event.target}` `{event.metric}`{_reading(event)}: {_phrase(event, now)}",
        _when(event, now),
    ]
    if event.runbook:
        parts.append(f"runbook: <{event.runbook}>")
    return " · ".join(parts)


def _reading(event: AlertEvent) -> str:
    value = "no value" if event.value is None else number(event.value)
    text = f" = {value}"
    if event.threshold is not None:
        text += f" (threshold {number(event.threshold)})"
    return text


def _phrase(event: AlertEvent, now: float) -> str:
    previous = event.previous.name if event.previous is not None else "?"
    match event.kind:
        case "escalated":
            return f"escalated {previous} → {event.severity.name}"
        case "deescalated":
            return f"de-escalated {previous} → {event.severity.name}"
        case "resolved":
            end = event.ended if event.ended is not None else now
            # The highest level reached is what the reader wants to know was over.
            was = "" if event.severity is Severity.OK else f" (was {event.severity.name})"
            return f"resolved after {duration(end - event.since)}{was}"
        case "repeat":
            return "still firing" + _note(event)
        case "flapping":
            return f"flapping: notifications paused until stable for {duration(FLAP_WINDOW)}"
        case "test":
            return "test message from vigild"
        case _:
            return "firing" + _note(event)


def _note(event: AlertEvent) -> str:
    return f" ({event.note})" if event.note else ""


def _when(event: AlertEvent, now: float) -> str:
    if event.kind == "resolved":
        end = event.ended if event.ended is not None else now
        start, stop = timestamp(event.since), timestamp(end)
        if start[:10] == stop[:10]:  # same day: the date once is enough
            start = start.removesuffix(" UTC")
            stop = stop[11:]
        return f"{start} → {stop}"
    return f"since {timestamp(event.since)} ({duration(now - event.since)})"
