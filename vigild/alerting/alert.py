"""An alert: one target and metric, its state-machine clocks, and what each notifier was told.

The engine moves it; the stages read it; the state file keeps it as JSON (``to_json`` and
``from_row``, the codec of the ``alerts`` table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vigild.model import FLAP_WINDOW, Severity
from vigild.storage.alerts import AlertRow

__all__ = ["Alert", "parse_severity", "severity_label"]


@dataclass(slots=True)
class Alert:
    """One target + metric. Its severity moves; its identity does not."""

    target: str
    metric: str
    fingerprint: str
    severity: Severity | None = None
    """The open severity, None while not firing."""
    peak: Severity | None = None
    started: float | None = None
    ended: float | None = None
    severity_since: float | None = None
    value: float | None = None
    threshold: float | None = None
    runbook: str | None = None
    note: str | None = None
    closed_by: str | None = None
    """Why it resolved without a reading that says so (``container removed``); its
    resolved message tells it. Cleared when it opens again."""
    breach: dict[str, float] = field(default_factory=dict)
    """Level ("warning", "critical", "unknown") → first reading of the current breach."""
    good_since: float | None = None
    """First reading of the current run on the good side of the warning line."""
    calm_since: float | None = None
    """First reading of the current run below the critical line (for de-escalation)."""
    fired: list[float] = field(default_factory=list)
    flapping: bool = False
    changed: float | None = None
    told: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Notifier → (what it was last told: a severity label or "flapping", when)."""
    origin: tuple[tuple[str, str], ...] = ()
    """``Identity.labels`` the alert is announced with (``AlertEvent.origin``)."""
    replaced: str | None = None
    """The fingerprint this alert was stored under before it took a new identity."""

    @property
    def pending(self) -> bool:
        return self.severity is None and bool(self.breach)

    @property
    def visible(self) -> bool:
        """Open as far as operators are concerned (a flapping alert stays open, quietly)."""
        return self.severity is not None or self.flapping

    def idle(self, now: float) -> bool:
        """Nothing left worth remembering: no open state, no clock, no recent fire."""
        return not (
            self.visible
            or self.breach
            or self.told
            or any(t > now - FLAP_WINDOW for t in self.fired)
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "severity": severity_label(self.severity),
                "peak": severity_label(self.peak),
                "started": self.started,
                "ended": self.ended,
                "severity_since": self.severity_since,
                "value": self.value,
                "threshold": self.threshold,
                "runbook": self.runbook,
                "note": self.note,
                "breach": self.breach,
                "good_since": self.good_since,
                "calm_since": self.calm_since,
                "fired": self.fired,
                "flapping": self.flapping,
                "changed": self.changed,
                "told": {k: list(v) for k, v in self.told.items()},
                "origin": [list(pair) for pair in self.origin],
            }
        )

    @classmethod
    def from_row(cls, row: AlertRow) -> Alert:
        data: dict[str, Any] = json.loads(row.state)
        return cls(
            target=row.target,
            metric=row.metric,
            fingerprint=row.fingerprint,
            severity=parse_severity(data.get("severity")),
            peak=parse_severity(data.get("peak")),
            started=data.get("started"),
            ended=data.get("ended"),
            severity_since=data.get("severity_since"),
            value=data.get("value"),
            threshold=data.get("threshold"),
            runbook=data.get("runbook"),
            note=data.get("note"),
            breach=dict(data.get("breach") or {}),
            good_since=data.get("good_since"),
            calm_since=data.get("calm_since"),
            fired=list(data.get("fired") or []),
            flapping=bool(data.get("flapping")),
            changed=data.get("changed"),
            told={k: (v[0], float(v[1])) for k, v in (data.get("told") or {}).items()},
            # Absent from a state file written before fleet identity: no labels then.
            origin=tuple((str(k), str(v)) for k, v in data.get("origin") or ()),
        )


def severity_label(severity: Severity | None) -> str | None:
    return severity.label if severity is not None else None


def parse_severity(label: str | None) -> Severity | None:
    return Severity.parse(label) if label else None
