"""SLO windows and forecasts warmed from the history file at start, so a restart (or a
cron run) does not begin their windows again from nothing."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog

from vigild.config_sections import HistoryConfig
from vigild.daemon.recorder import retention
from vigild.derived import Derived
from vigild.slo import (
    ERRORS_INCREASE,
    LATENCY_GOOD_INCREASE,
    LATENCY_TOTAL_INCREASE,
    REQUESTS_INCREASE,
)
from vigild.storage.history_reader import HistoryReader

__all__ = ["warm"]

log = structlog.get_logger("vigild")


def warm(
    derived: Sequence[Derived],
    config: HistoryConfig,
    state_path: Path,
    now: float,
    *,
    budget: float = math.inf,
) -> None:
    """Feed each target's stored values of its windows into ``derived``; a history that
    cannot be read, or targets left when ``budget`` seconds are spent, start empty
    (logged), which never stops a start."""
    path = config.file(state_path)
    deadline = time.monotonic() + budget
    if path.exists():
        try:
            with HistoryReader(path, retention(config)) as reader:
                for done, item in enumerate(derived):
                    if time.monotonic() > deadline:
                        log.warning(
                            "slo windows and forecasts of some targets start empty: "
                            "warming them from the history took too long",
                            targets=len(derived) - done,
                            budget=budget,
                        )
                        break
                    _warm(reader, item, now)
        except sqlite3.DatabaseError as exc:
            log.warning("slo windows and forecasts start empty: history unreadable", error=str(exc))
    # One line for all targets: at 10,000 of them, one a target would flood the log.
    partial = {item.target.name: metrics for item in derived if (metrics := item.partial(now))}
    if partial:
        first = sorted(partial)[:3]
        log.info(
            "slo windows longer than the history held are partial: computed over what exists",
            targets=len(partial),
            example=f"{first[0]}: {', '.join(partial[first[0]])}",
            first=first,
        )


def _sums(
    reader: HistoryReader, target: str, metric: str, start: float, now: float
) -> Iterator[tuple[float, float, float]]:
    """(time, sum, count) of ``metric`` since ``start``: raw values where the raw tier
    still holds them, the five-minute or hourly buckets before that (each at its middle:
    the windows' own buckets are no finer there)."""
    raw_from = max(start, now - reader.retention.raw)
    spans = [(start, raw_from), (raw_from, now)] if start < raw_from else [(start, now)]
    for begin, end in spans:
        found = reader.values(target, metric, begin, end, now=now)
        for at, value in found.points:
            yield at, value, 1.0
        middle = found.tier.step / 2
        for bucket in found.buckets:
            yield (bucket.start + middle) / 1000, bucket.sum, bucket.count


def _warm(reader: HistoryReader, derived: Derived, now: float) -> None:
    target = derived.target
    name = target.name
    for objective in derived.objectives:
        slo = objective.budget.spec
        start = now - max(slo.period, *slo.windows)
        if objective.events == "probes":
            for at, ups, probes in _sums(reader, name, "up", start, now):
                objective.count(at, probes, probes - ups, now=now)
            continue
        if objective.events == "requests":
            all_of, bad_of, sign = REQUESTS_INCREASE, ERRORS_INCREASE, 1.0
        else:  # every request is bad but those within `le`: bad = total - good
            all_of, bad_of, sign = LATENCY_TOTAL_INCREASE, LATENCY_GOOD_INCREASE, -1.0
        for at, events, _ in _sums(reader, name, all_of, start, now):
            objective.count(at, events, events if sign < 0 else 0.0, now=now)
        for at, events, _ in _sums(reader, name, bad_of, start, now):
            objective.count(at, 0.0, sign * events, now=now)
    spec = target.forecast
    if spec is not None:
        for at, total, count in _sums(reader, name, spec.metric, now - spec.window, now):
            derived.point(name, at, total / count)
