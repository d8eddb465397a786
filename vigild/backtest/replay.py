"""``vigild backtest``: what a config would have sent, replayed from the metrics history.

The stored history is turned back into observations (per target, per time its
probe ran) and run through the daemon's own code: ``thresholds.evaluate``, the
``Engine`` and the pipeline's inhibition, silence and routing stages, with the
readings' own times as the clock. The record stage is a ``Rehearsal``: nothing is
written, nothing is sent, and the state file is never opened (its lock is the
running daemon's). The history file is read on a read-only connection.

What a stored value means when it is turned back into a reading:

- a time with an ``up`` value is one probe; a time without one is no probe, so a
  gap in the history (vigild stopped, a cron run skipped) is no reading at all,
  never a failed one: an alert's clocks wait across it as the daemon's would;
- a thresholded metric missing at a probe that found the target up is absent (no
  data: it resolves after ``recover_for``), since the history keeps values only;
- beyond raw retention a five-minute or hourly bucket is one reading at its start:
  ``up`` failed if any probe in it failed, every other metric at its worst value
  for its rule's direction. So a coarse stretch errs towards alerting, and its
  notifications say which tier they came from.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigild.alerting import pipeline
from vigild.alerting.engine import Engine
from vigild.alerting.policy import no_silences
from vigild.alerting.silences import Silences
from vigild.alerting.stages.route import Route
from vigild.assembly import Config
from vigild.daemon.engine_settings import configured_silences, engine_settings
from vigild.model import Observation, Severity
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import FIVE_MINUTE, HOURLY, RAW, Bucket, Tier
from vigild.thresholds import Rule, base_metric, evaluate

__all__ = ["ANY_NOTIFIER", "Outcome", "Sent", "Stretch", "backtest", "stretches"]

ANY_NOTIFIER = "*"
"""The route a config without notifiers is replayed through: the defaults of one."""

_WINDOW = {RAW.name: 3600.0, FIVE_MINUTE.name: 86400.0, HOURLY.name: 10 * 86400.0}
"""Seconds of history read at once, per tier: bounds what is held in memory."""

_LISTED = frozenset({"firing", "resolved", "escalated", "deescalated", "flapping"})
"""What a notification list shows; a ``repeat`` of an open alert is only counted."""


@dataclass(frozen=True, slots=True)
class Stretch:
    """Part of the replayed span and the tier its readings came from."""

    tier: Tier
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier.name, "from": self.start, "to": self.end}


@dataclass(frozen=True, slots=True)
class Sent:
    """One notification the config would have sent, to ``notifiers``."""

    at: float
    target: str
    metric: str
    severity: str
    kind: str
    notifiers: tuple[str, ...]
    tier: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "target": self.target,
            "metric": self.metric,
            "severity": self.severity,
            "kind": self.kind,
            "notifiers": list(self.notifiers),
            "tier": self.tier,
        }

    @property
    def page(self) -> bool:
        """Wakes a person: an alert that opens or rises at critical."""
        return self.kind in {"firing", "escalated"} and self.severity == "critical"

    def line(self) -> str:
        return f"{self.target} {self.metric} {self.severity} {self.kind}"


@dataclass(slots=True)
class Outcome:
    """What one config would have sent over ``start`` .. ``end``."""

    config: Path
    start: float
    end: float
    stretches: list[Stretch]
    sent: list[Sent] = field(default_factory=list)
    repeats: int = 0
    first: float | None = None
    """The first reading replayed: "per day" counts from there, not from a ``start``
    the history does not reach back to."""

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        targets: dict[str, dict[str, int]] = {}
        pages: set[tuple[float, str, str]] = set()
        opened: dict[tuple[str, str], float] = {}
        spans: list[tuple[float, float | None, str, str]] = []
        for sent in self.sent:
            by_kind[sent.kind] = by_kind.get(sent.kind, 0) + 1
            counts = targets.setdefault(sent.target, {"notifications": 0, "pages": 0})
            counts["notifications"] += 1
            key = (sent.target, sent.metric)
            if sent.page and (sent.at, *key) not in pages:
                pages.add((sent.at, *key))
                counts["pages"] += 1
            if sent.kind == "resolved":
                since = opened.pop(key, None)
                if since is not None:
                    spans.append((since, sent.at, *key))
            else:
                opened.setdefault(key, sent.at)
        spans.extend((since, None, *key) for key, since in opened.items())
        # Less than a day of history is one day: an hour's page is not 24 a day.
        days = max((self.end - (self.first or self.start)) / 86400, 1.0)
        longest = None
        if spans:
            since, until, target, metric = max(spans, key=lambda s: (s[1] or self.end) - s[0])
            longest = {
                "target": target,
                "metric": metric,
                "from": since,
                "to": until,
                "seconds": (until or self.end) - since,
            }
        return {
            "notifications": len(self.sent),
            "by_kind": by_kind,
            "pages": len(pages),
            "pages_per_day": round(len(pages) / days, 2),
            "repeats": self.repeats,
            "longest_open_alert": longest,
            "open_at_end": [
                {"target": target, "metric": metric, "since": since}
                for (target, metric), since in opened.items()
            ],
            "targets": targets,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start,
            "to": self.end,
            "config": str(self.config),
            "tiers": [s.to_json() for s in self.stretches],
            "notifications": [s.to_json() for s in self.sent],
            "summary": self.summary(),
        }


def stretches(reader: HistoryReader, start: float, end: float, now: float) -> list[Stretch]:
    """``start`` .. ``end`` cut where the history's finest tier changes."""
    # On the coarser tier's bucket edges, so no bucket holds readings also replayed raw
    # (a tier is kept a block longer than its retention: the edge's values are there).
    raw_from = _floor(reader.kept_from(RAW, now), FIVE_MINUTE.step)
    five_from = min(_floor(reader.kept_from(FIVE_MINUTE, now), HOURLY.step), raw_from)
    found = []
    for tier, since, until in (
        (HOURLY, start, five_from),
        (FIVE_MINUTE, five_from, raw_from),
        (RAW, raw_from, end),
    ):
        low, high = max(since, start), min(until, end)
        if low < high:
            found.append(Stretch(tier, low, high))
    return found


def _floor(seconds: float, step_ms: int) -> float:
    step = step_ms / 1000
    return seconds - seconds % step


def backtest(
    config: Config,
    reader: HistoryReader,
    start: float,
    end: float,
    *,
    now: float,
    target: str | None = None,
) -> Outcome:
    """Replay the history from ``start`` to ``end`` under ``config``.

    ``target`` (a glob, matching an observed name or the target it came from)
    narrows what is listed; what can hold its alerts back (the targets it depends
    on, the connectivity check) is replayed with it.
    """
    settings = engine_settings(
        config, Silences(no_silences().store, configured=configured_silences(config, start))
    )
    if not settings["routes"]:
        settings["routes"] = [
            Route(
                ANY_NOTIFIER,
                min_rank=Severity.WARNING.routing_rank,
                send_resolved=True,
                repeat_interval=config.alerting.repeat_interval,
            )
        ]
    engine = Engine((), **settings)
    outcome = Outcome(config.path, start, end, stretches(reader, start, end, now))
    first = config.daemon.connectivity_check

    def listed(observed: str) -> bool:
        owner = config.owner_of(observed) or observed
        return target is None or any(fnmatch.fnmatchcase(n, target) for n in (observed, owner))

    series = _series(config, reader)
    if target is not None:
        needed = _inhibitors(config, {config.owner_of(o) or o for o in series if listed(o)})
        series = {o: m for o, m in series.items() if config.owner_of(o) in needed}

    for stretch in outcome.stretches:
        for at, observations in _readings(config, reader, series, stretch, now):
            if outcome.first is None:
                outcome.first = at
            # As a cycle does: the connectivity check first, its verdict decides the rest.
            for observation in sorted(observations, key=lambda o: o.target != first):
                rules = config.rules[config.owner_of(observation.target) or ""]
                engine.observe(observation.target, evaluate(observation, rules), at)
            by_event: dict[tuple[str, str, str, str], list[str]] = {}
            for notification in pipeline.rehearse(engine, at):
                for event in notification.events:
                    if not listed(event.target):
                        continue
                    if event.kind not in _LISTED:
                        outcome.repeats += event.kind == "repeat"
                        continue
                    key = (event.target, event.metric, event.severity.label, event.kind)
                    by_event.setdefault(key, []).append(notification.notifier)
            outcome.sent.extend(
                Sent(at, *key, tuple(sorted(set(names))), stretch.tier.name)
                for key, names in by_event.items()
            )
    return outcome


def _rule(rules: Mapping[str, Rule], metric: str) -> Rule | None:
    # As ``evaluate`` looks them up: a rule of its own, then the rule of its base name.
    return rules.get(metric) or rules.get(base_metric(metric))


def _series(config: Config, reader: HistoryReader) -> dict[str, list[str]]:
    """Per observed target the config watches, ``up`` and the metrics it thresholds."""
    wanted: dict[str, list[str]] = {}
    for observed, metric in reader.series():
        owner = config.owner_of(observed)
        if owner is None:
            continue
        if metric == "up" or _rule(config.rules[owner], metric) is not None:
            wanted.setdefault(observed, []).append(metric)
    return wanted


def _inhibitors(config: Config, owners: set[str]) -> set[str]:
    """``owners`` and every target whose outage can hold their alerts back."""
    depends = {t.name: t.depends_on for t in config.targets}
    found, todo = set(), [*owners, config.daemon.connectivity_check]
    while todo:
        name = todo.pop()
        if name is not None and name not in found:
            found.add(name)
            todo.extend(depends.get(name, ()))
    return found


def _readings(
    config: Config,
    reader: HistoryReader,
    series: Mapping[str, Sequence[str]],
    stretch: Stretch,
    now: float,
) -> Iterator[tuple[float, list[Observation]]]:
    """The observations of ``stretch``, grouped by time, oldest first."""
    window = _WINDOW[stretch.tier.name]
    low = stretch.start
    while low < stretch.end:
        high = min(low + window, stretch.end)
        found: dict[int, list[Observation]] = {}
        for observed, metrics in series.items():
            rules = config.rules[config.owner_of(observed) or ""]
            # What ``evaluate`` may call UNKNOWN when it is not there: the history cannot
            # tell that from no data, so it is absent. A default rule of a metric never
            # held gives no verdict either way: left out, it costs nothing.
            quiet = {m if m in rules else base_metric(m) for m in metrics}
            quiet |= {key for key, rule in rules.items() if rule.explicit}
            quiet.discard("up")
            samples: dict[int, dict[str, float]] = {}
            for metric in metrics:
                values = reader.values(observed, metric, low, high, now=now)
                if values.tier is RAW:
                    pairs: Iterator[tuple[int, float]] = (
                        (round(t * 1000), v) for t, v in values.points
                    )
                else:
                    rule = _rule(rules, metric)
                    pairs = ((b.start, _reading(b, metric, rule)) for b in values.buckets)
                for t, value in pairs:
                    samples.setdefault(t, {})[metric] = value
            for t, metrics_at in samples.items():
                up = metrics_at.get("up")
                if up is None:
                    continue  # values with no probe result behind them are no reading
                judged = {m if m in rules else base_metric(m) for m in metrics_at}
                found.setdefault(t, []).append(
                    Observation(
                        observed,
                        t / 1000,
                        up=up == 1.0,
                        metrics=metrics_at,
                        no_data=frozenset(quiet - judged),
                    )
                )
        for t in sorted(found):
            yield t / 1000, found[t]
        low = high


def _reading(bucket: Bucket, metric: str, rule: Rule | None) -> float:
    """A coarse bucket as one reading: down if any probe in it was, else the worst value."""
    if metric == "up":  # its sum is the probes that found the target up
        return 1.0 if bucket.sum >= bucket.count else 0.0
    worst = bucket.max if rule is None or rule.direction == "above" else bucket.min
    return worst if not math.isnan(worst) else bucket.last
