"""How vigild spells what it shows: ages and spans for people, values with their units,
times of day in the local zone, OS errors in their own words, and label values as the
Prometheus exposition format writes them.

A leaf: probes, alerting and the daemon all import it, so it imports nothing of vigild.
"""

from __future__ import annotations

import math
import os
import time

__all__ = [
    "clock_time",
    "counted",
    "duration",
    "label_value",
    "measure",
    "number",
    "os_text",
    "seconds",
    "timestamp",
    "zone",
]


def counted(count: int, noun: str) -> str:
    """``1 target``, ``2 targets``, ``0 problems``: a count with its noun (regular plurals)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def timestamp(seconds: float) -> str:
    """Unix seconds as ``2024-05-01 12:03:04 UTC``: one zone for every reader."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def duration(seconds: float) -> str:
    """``45s``, ``1m27s``, ``12m``, ``1h5m``, ``2d3h``: the two largest units, rounded down.

    Two units, not one: an outage of 1m27s read as "1m" hides a third of it. The
    spelling is the one config durations are written in.
    """
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def os_text(error: OSError, *, errno_found: int | None = None) -> str:
    """The errno's own words ("connection reset by peer"), not asyncio's "Connect call
    failed" or a message that repeats the host and port.

    ``errno_found`` stands in for an error that carries no errno of its own but whose
    text names one (asyncio's "Multiple exceptions: [Errno 111] ...").
    """
    code = error.errno if error.errno is not None else errno_found
    if code is not None and code > 0:
        return os.strerror(code).lower()
    return error.strerror or str(error) or type(error).__name__


def label_value(value: str) -> str:
    """``value`` escaped for a label value in the exposition format (``\\\\``, ``\\"``,
    ``\\n``); the quotes around it are the caller's."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    """At most three significant digits and never an exponent: ``0.0123``, ``12.3``,
    ``1500``. A reading shown to a person does not need more."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def seconds(value: float) -> str:
    """``9.81 ms`` below a second, ``1.5 s`` from one on."""
    # 0.9995 s would round to "1000 ms"; it reads as "1 s".
    if abs(value) < 0.9995:
        return f"{number(value * 1000)} ms"
    return f"{number(value)} s"


def measure(metric: str, value: float) -> str:
    """``value`` with the unit its metric's name gives (``latency_seconds``,
    ``disk_percent:/var``, ``cert_expiry_days``); a count or a code as a plain number."""
    base = metric.partition(":")[0]
    if base.endswith("_seconds"):
        return seconds(value)
    if base.endswith("_percent"):
        return f"{number(value)} %"
    if base.endswith("_days"):
        return f"{number(value)} {'day' if value == 1 else 'days'}"
    if base.endswith("_hours"):
        return f"{number(value)} h"
    return number(value)


def clock_time(ts: float, now: float) -> str:
    """``14:03 CET`` on the day of ``now``, ``14 Jan 14:03 CET`` on another: the
    local zone of the host vigild runs on, as its operator reads a wall clock."""
    local = time.localtime(ts)
    same_day = local[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M %Z" if same_day else "%d %b %H:%M %Z", local)


def zone(ts: float) -> str:
    """The local zone at ``ts`` by name and offset: ``CET (UTC+01:00)``."""
    local = time.localtime(ts)
    offset = time.strftime("%z", local)
    return f"{local.tm_zone} (UTC{offset[:3]}:{offset[3:]})"
