"""The values that flow one way through vigild.

probe → ``Observation`` → thresholds → ``Verdict`` → engine → ``Notification``.
Each stage only reads the value the previous one produced, so every stage can
be tested on its own with plain values.
"""

from __future__ import annotations

import enum
import hashlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "FLAP_WINDOW",
    "AlertEvent",
    "EventKind",
    "Identity",
    "Notification",
    "Observation",
    "Severity",
    "fingerprint",
    "rfc3339",
]


FLAP_WINDOW = 3600.0
"""Fires counted for flap detection, and how long a flapping alert must be stable."""


class Severity(enum.IntEnum):
    """A verdict's or an alert's level; the values are those of ``vigild_alert_severity``."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def urgency(self) -> int:
        """Rank for "how bad": CRITICAL > UNKNOWN > WARNING > OK (the ``--once`` exit rank)."""
        return _URGENCY[self]

    @property
    def routing_rank(self) -> int:
        """Rank compared with a notifier's ``min_severity``: UNKNOWN counts as a warning."""
        return 1 if self is Severity.UNKNOWN else int(self)

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


_URGENCY = {Severity.OK: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.CRITICAL: 3}


def worst(severities: Any) -> Severity:
    """The most urgent of ``severities`` (OK for none)."""
    return max(severities, key=lambda s: s.urgency, default=Severity.OK)


def rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC with millisecond precision, trailing zeros trimmed."""
    moment = datetime.fromtimestamp(seconds, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        stamp += f".{millis:03d}".rstrip("0")
    return stamp + "Z"


def fingerprint(
    instance: str, target: str, metric: str, external_labels: Mapping[str, str] | None = None
) -> str:
    """An alert's identity: the same across escalation and restarts, distinct per host.

    The replica is not part of it, so the two vigilds of an HA pair name one alert alike.
    """
    pairs = sorted((external_labels or {}).items())
    parts = [instance, target, metric, *(f"{k}={v}" for k, v in pairs)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Identity:
    """Which vigild an alert comes from: ``[daemon] instance`` and ``external_labels``."""

    instance: str
    external_labels: tuple[tuple[str, str], ...] = ()
    """Sorted by name."""

    @classmethod
    def of(cls, instance: str, external_labels: Mapping[str, str]) -> Identity:
        return cls(instance, tuple(sorted(external_labels.items())))

    @classmethod
    def local(cls) -> Identity:
        """The default: the machine's host name, no external labels."""
        return cls(socket.gethostname())

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """What every alert from this vigild carries: ``instance`` and the external labels."""
        return (("instance", self.instance), *self.external_labels)

    def fingerprint(self, target: str, metric: str) -> str:
        return fingerprint(self.instance, target, metric, dict(self.external_labels))


@dataclass(slots=True)
class Observation:
    """What one probe of one target saw. Probes fill it; they never judge it.

    ``metrics`` always holds ``up`` (1.0 or 0.0). ``missing`` names metrics the
    probe looked for and could not find on a reachable target (a JSON body
    without a status field): thresholds turn those into UNKNOWN verdicts.
    ``target`` is the configured target's name, or ``name/container`` for a
    target that expands into one observation per container.
    """

    target: str
    time: float
    up: bool
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    no_data: frozenset[str] = frozenset()
    """Metrics with no value this time for a good reason (a rate's first scrape, no
    requests in the interval): absent, never UNKNOWN, even where a threshold names them."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Why a metric of ``missing`` or ``no_data`` has no value, in words, where the probe
    knows."""
    duration: float = 0.0
    retired: str | None = None
    """Set when what was observed is gone for good (a label-selected container
    removed long enough ago): its alerts resolve with this note, and it is no longer
    shown. Such an observation is not evaluated."""

    def __post_init__(self) -> None:
        self.metrics["up"] = 1.0 if self.up else 0.0


EventKind = Literal[
    "firing", "escalated", "deescalated", "resolved", "repeat", "flapping", "test", "action"
]
"""``action``: what an action did about the alert (``note`` says it); the alert is unchanged."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert's line in a notification: what changed, and everything a reader needs."""

    fingerprint: str
    target: str
    metric: str
    kind: EventKind
    severity: Severity
    """Current severity; for a resolved alert, the highest it reached."""
    previous: Severity | None
    value: float | None
    threshold: float | None
    since: float
    """When the alert opened (unix seconds)."""
    ended: float | None = None
    runbook: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    """The target's own labels."""
    note: str | None = None
    """Why, in the probe's words (``connection refused``), when there is more than a number."""
    origin: tuple[tuple[str, str], ...] = ()
    """The labels naming the vigild the alert comes from (``Identity.labels``), as the
    alert was first announced with them: empty for an alert a vigild from before fleet
    identity announced, which keeps its labels and fingerprint until it resolves."""
    address: str | None = None
    """Where the target is (its URL, ``host:port``, container), redacted: a reader's
    first place to look."""

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "resolved" if self.kind == "resolved" else "firing"

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "target": self.target,
            "metric": self.metric,
            "kind": self.kind,
            "severity": self.severity.label,
            "previous": self.previous.label if self.previous is not None else None,
            "value": self.value,
            "threshold": self.threshold,
            "since": self.since,
            "ended": self.ended,
            "runbook": self.runbook,
            "labels": dict(self.labels),
            "note": self.note,
            "origin": dict(self.origin),
            "address": self.address,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertEvent:
        previous = data.get("previous")
        return cls(
            fingerprint=data["fingerprint"],
            target=data["target"],
            metric=data["metric"],
            kind=data["kind"],
            severity=Severity.parse(data["severity"]),
            previous=Severity.parse(previous) if previous else None,
            value=data.get("value"),
            threshold=data.get("threshold"),
            since=data["since"],
            ended=data.get("ended"),
            runbook=data.get("runbook"),
            labels=tuple(sorted((data.get("labels") or {}).items())),
            note=data.get("note"),
            # In its order: instance first, as Identity.labels has it.
            origin=tuple((data.get("origin") or {}).items()),
            # Absent from an outbox row written before messages named the address.
            address=data.get("address"),
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one notifier: the alerts of one group, in the order they changed."""

    notifier: str
    created: float
    events: tuple[AlertEvent, ...]

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """``firing`` while any alert in the message still fires."""
        return "firing" if any(e.status == "firing" for e in self.events) else "resolved"

    @property
    def severity(self) -> Severity:
        firing = [e.severity for e in self.events if e.status == "firing"]
        return worst(firing) if firing else Severity.OK

    @property
    def is_test(self) -> bool:
        return all(e.kind == "test" for e in self.events)

    def to_json(self) -> dict[str, Any]:
        return {
            "notifier": self.notifier,
            "created": self.created,
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(
            notifier=data["notifier"],
            created=data["created"],
            events=tuple(AlertEvent.from_json(e) for e in data["events"]),
        )
