"""What the Engine API's answers say about a container: ``docker stats``'s CPU and
memory figures, its health, and why it is down, in the words an operator reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vigild.redaction import shorten

__all__ = [
    "HEALTH_LEVELS",
    "MISSING",
    "NO_DATA",
    "count",
    "cpu_percent",
    "health_of",
    "listed_name",
    "mapping",
    "memory_percent",
    "stopped_error",
    "unhealthy_error",
]

HEALTH_LEVELS = {"healthy": 0.0, "starting": 1.0, "unhealthy": 2.0}
"""``container_health``; Docker's "none" (no healthcheck) and an absent Health: no value."""

# How a computed figure can be without a value.
NO_DATA = "no_data"
"""Nothing to compute yet, for a good reason (first sample, no time passed, no limit)."""
MISSING = "missing"
"""The engine's answer lacks what the figure needs."""


def cpu_percent(
    stats: Mapping[str, Any], previous: tuple[float, float] | None
) -> tuple[float | None, str, tuple[float, float] | None]:
    """``docker stats``'s CPU %: Δtotal_usage / Δsystem_cpu_usage * online CPUs * 100.

    The earlier sample is ``precpu_stats`` when the engine filled it, else
    ``previous`` (the caller's own last sample). Returns (percent or None, why
    None: ``NO_DATA`` or ``MISSING``, this sample for next time).
    """
    cpu_stats = mapping(stats.get("cpu_stats"))
    usage = mapping(cpu_stats.get("cpu_usage"))
    total = count(usage.get("total_usage"))
    system = count(cpu_stats.get("system_cpu_usage"))
    if total is None or system is None or system == 0:
        return None, MISSING, None
    sample = (total, system)
    cpus = count(cpu_stats.get("online_cpus")) or 0.0
    if not cpus:
        # Engines before API 1.27 give no online_cpus, only one counter per CPU.
        per_cpu = usage.get("percpu_usage")
        cpus = float(len(per_cpu)) if isinstance(per_cpu, list) else 0.0
    if not cpus:
        return None, MISSING, sample
    pre = mapping(stats.get("precpu_stats"))
    pre_system = count(pre.get("system_cpu_usage"))
    pre_total = count(mapping(pre.get("cpu_usage")).get("total_usage"))
    before = (pre_total, pre_system) if pre_system and pre_total is not None else previous
    if before is None:
        return None, NO_DATA, sample
    total_delta, system_delta = total - before[0], system - before[1]
    if system_delta <= 0 or total_delta < 0:
        # No time passed, or the counters started again (the container restarted).
        return None, NO_DATA, sample
    return round(total_delta / system_delta * cpus * 100.0, 2), "", sample


def memory_percent(stats: Mapping[str, Any]) -> tuple[float | None, str]:
    """``docker stats``'s MEM %: usage less the page cache it may drop, over the limit.

    The cache is ``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2,
    subtracted only when smaller than usage; Podman gives no ``stats``: raw usage.
    """
    memory = mapping(stats.get("memory_stats"))
    usage = count(memory.get("usage"))
    if usage is None:
        return None, MISSING
    limit = count(memory.get("limit"))
    if not limit:
        return None, NO_DATA  # Docker's own words: 0 only when there is nothing to read
    detail = mapping(memory.get("stats"))
    used = usage
    cache = count(detail.get("total_inactive_file"))
    if cache is not None and cache < usage:
        used = usage - cache
    else:
        cache = count(detail.get("inactive_file"))
        if cache is not None and cache < usage:
            used = usage - cache
    return round(used / limit * 100.0, 2), ""


# ---------------------------------------------------------------------------
# Reading the engine's answers


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def count(value: Any) -> float | None:
    """A counter as the engine writes it (a non-negative number), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def listed_name(item: Mapping[str, Any]) -> str | None:
    names = item.get("Names")
    if isinstance(names, list) and names and isinstance(names[0], str):
        name = names[0].lstrip("/")
        return name or None
    return None


def health_of(state: Mapping[str, Any]) -> str | None:
    health = state.get("Health")
    status = health.get("Status") if isinstance(health, dict) else None
    return status if isinstance(status, str) and status in HEALTH_LEVELS else None


def stopped_error(status: Any, state: Mapping[str, Any]) -> str:
    word = status if isinstance(status, str) and status else "not running"
    if word in {"exited", "stopped", "dead"}:
        code = state.get("ExitCode")
        details = [f"code {code}"] if isinstance(code, int) and not isinstance(code, bool) else []
        if state.get("OOMKilled") is True:
            details.append("out of memory")
        if details:
            return f"container is {word} ({', '.join(details)})"
    return f"container is {word}"


def unhealthy_error(state: Mapping[str, Any], secrets: frozenset[str]) -> str:
    """ "container is unhealthy", with the last check's first line when it said something."""
    health = mapping(state.get("Health"))
    log = health.get("Log")
    last = log[-1] if isinstance(log, list) and log else None
    output = mapping(last).get("Output")
    text = (
        output.strip().splitlines()[0].strip() if isinstance(output, str) and output.strip() else ""
    )
    if not text:
        return "container is unhealthy"
    return f"container is unhealthy: {shorten(text, 120, secrets)}"
