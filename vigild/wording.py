"""How vigild spells what it shows: ages and spans for people, OS errors in their own
words, and label values as the Prometheus exposition format writes them.

A leaf: probes, alerting and the daemon all import it, so it imports nothing of vigild.
"""

from __future__ import annotations

import os

__all__ = ["duration", "label_value", "os_text"]


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
