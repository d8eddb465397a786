"""The alert state machine: it owns time.

Readings (verdicts) move each alert through pending → firing → resolved,
with a separate ``for`` clock per level, ``recover_for`` for the way back,
flap detection and inhibition by a failed probe. Notifications are not
events the state machine emits but the difference between what each notifier
was last told and what the alert is now: that makes repeats, restarts,
min_severity routing and flapping all the same one comparison, and it is why
an alert can never be announced twice at one severity.

State lives in memory and is written to the store at ``flush``, together with
the notifications of that flush, in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from vigild.alerting.silences import Silence, Silences
from vigild.alerting.store import AlertRow, Store
from vigild.model import FLAP_WINDOW, AlertEvent, EventKind, Identity, Notification, Severity
from vigild.thresholds import Verdict

__all__ = ["Alert", "Engine", "Route"]

log = structlog.get_logger("vigild.engine")

FLAPPING = "flapping"


@dataclass(frozen=True, slots=True)
class Route:
    """What the engine needs to know about one notifier."""

    name: str
    min_rank: int
    send_resolved: bool
    repeat_interval: float
    keepalive: bool = False
    """Repeat every open alert each ``repeat_interval``, flapping ones too."""


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
                "severity": _label(self.severity),
                "peak": _label(self.peak),
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
            severity=_severity(data.get("severity")),
            peak=_severity(data.get("peak")),
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


def _label(severity: Severity | None) -> str | None:
    return severity.label if severity is not None else None


def _severity(label: str | None) -> Severity | None:
    return Severity.parse(label) if label else None


def _severity_told(told: str) -> Severity | None:
    return None if told == FLAPPING else _severity(told)


_LEVELS = {
    Severity.OK: (),
    Severity.WARNING: ("warning",),
    Severity.CRITICAL: ("warning", "critical"),
    Severity.UNKNOWN: ("unknown",),
}
"""The breach clocks a reading keeps running: a critical reading is a warning breach too."""


Labels = Callable[[str], tuple[tuple[str, str], ...]]


def _no_labels(target: str) -> tuple[tuple[str, str], ...]:
    return ()


def _unchanged(text: str) -> str:
    return text


class Engine:
    def __init__(
        self,
        store: Store,
        routes: Iterable[Route],
        *,
        flap_limit: int,
        labels: Labels = _no_labels,
        redact: Callable[[str], str] = _unchanged,
        identity: Identity | None = None,
    ) -> None:
        self._store = store
        self.identity = identity or Identity.local()
        self.configure(routes, flap_limit=flap_limit, labels=labels, redact=redact)
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._touched: dict[tuple[str, str], Alert] = {}
        for row in store.load_alerts():
            alert = Alert.from_row(row)
            self._alerts[(alert.target, alert.metric)] = alert

    def configure(
        self,
        routes: Iterable[Route],
        *,
        flap_limit: int,
        labels: Labels,
        redact: Callable[[str], str],
        silences: Silences | None = None,
        dependencies: Mapping[str, Sequence[str]] | None = None,
        connectivity: str | None = None,
        max_per_message: int = 50,
        identity: Identity | None = None,
    ) -> None:
        """Take a (reloaded) config's notifiers and settings; alert state stays.

        A new ``identity`` names the alerts that open from now on; an open alert keeps
        the one it was announced with until it resolves (a receiver knows it by that).
        """
        self.identity = identity or self.identity
        self.routes = tuple(routes)
        self.flap_limit = flap_limit
        self._labels = labels
        self._redact = redact
        self.silences = silences if silences is not None else Silences(_NoSilenceStore())
        self._dependencies = dependencies or {}
        self.connectivity = connectivity
        self.max_per_message = max_per_message

    # -- reading ----------------------------------------------------------

    def observe(self, target: str, verdicts: Iterable[Verdict], now: float) -> bool:
        """Step the target's alerts with one reading each; True if any open severity moved."""
        moved = False
        for verdict in verdicts:
            key = (target, verdict.metric)
            alert = self._alerts.get(key)
            if alert is None:
                if verdict.severity is Severity.OK:
                    continue  # the common case: nothing to remember
                identity = self.identity
                alert = Alert(
                    target,
                    verdict.metric,
                    identity.fingerprint(target, verdict.metric),
                    origin=identity.labels,
                )
                self._alerts[key] = alert
            moved |= self._step(alert, verdict, now)
            self._touched[key] = alert
        return moved

    def _step(self, alert: Alert, verdict: Verdict, now: float) -> bool:
        reading = verdict.severity
        rule = verdict.rule
        levels = _LEVELS[reading]
        for level in ("warning", "critical", "unknown"):
            if level in levels:
                alert.breach.setdefault(level, now)
            else:
                alert.breach.pop(level, None)
        if reading is Severity.OK:
            alert.good_since = alert.good_since if alert.good_since is not None else now
        else:
            alert.good_since = None
        if reading is Severity.CRITICAL:
            alert.calm_since = None
        elif alert.calm_since is None:
            alert.calm_since = now
        alert.value = verdict.value
        alert.runbook = rule.runbook
        alert.note = self._redact(verdict.note) if verdict.note else None

        def held(level: str) -> bool:
            since = alert.breach.get(level)
            return since is not None and now >= since + rule.for_

        def recovered(since: float | None) -> bool:
            return since is not None and now >= since + rule.recover_for

        current = alert.severity
        wanted: Severity | None = current
        if held("critical"):
            wanted = Severity.CRITICAL
        elif held("warning"):
            calm = current is not Severity.CRITICAL or recovered(alert.calm_since)
            wanted = Severity.WARNING if calm else Severity.CRITICAL
        elif held("unknown"):
            wanted = Severity.UNKNOWN
        elif current is not None and reading is Severity.OK and recovered(alert.good_since):
            wanted = None
        elif current is Severity.CRITICAL and recovered(alert.calm_since):
            wanted = Severity.WARNING
        alert.threshold = rule.line(wanted or reading)

        if alert.flapping and alert.changed is not None and now - alert.changed >= FLAP_WINDOW:
            alert.flapping = False
            alert.fired.clear()
            log.info("alert stable again", target=alert.target, metric=alert.metric)
        if wanted == current:
            return False
        self._move(alert, wanted, now)
        return True

    def _move(self, alert: Alert, wanted: Severity | None, now: float) -> None:
        previous = alert.severity
        alert.severity = wanted
        alert.severity_since = now
        alert.changed = now
        if wanted is None:
            alert.ended = now
        elif previous is None:
            if not alert.told:  # no notifier knows it: it may take the current identity
                self._renew(alert)
            alert.started, alert.ended, alert.peak = now, None, wanted
            alert.fired = [t for t in alert.fired if t > now - FLAP_WINDOW] + [now]
            if len(alert.fired) > self.flap_limit and not alert.flapping:
                alert.flapping = True
                log.warning(
                    "alert flapping",
                    target=alert.target,
                    metric=alert.metric,
                    fires_in_last_hour=len(alert.fired),
                )
        if wanted is not None and (alert.peak is None or wanted.urgency > alert.peak.urgency):
            alert.peak = wanted
        log.info(
            "alert transition",
            target=alert.target,
            metric=alert.metric,
            severity=_label(wanted) or "resolved",
            previous=_label(previous),
            value=alert.value,
            threshold=alert.threshold,
            flapping=alert.flapping,
        )

    def _renew(self, alert: Alert) -> None:
        fingerprint = self.identity.fingerprint(alert.target, alert.metric)
        if fingerprint != alert.fingerprint:
            alert.replaced = alert.replaced or alert.fingerprint
            alert.fingerprint = fingerprint
        alert.origin = self.identity.labels

    # -- notifying --------------------------------------------------------

    def down_targets(self) -> set[str]:
        """Targets whose ``up`` alert is open; a target that expands (containers by
        label) counts as down when any of its parts is."""
        down = set()
        for (target, metric), alert in self._alerts.items():
            if metric == "up" and alert.severity is not None:
                down.add(target)
                part = target
                while "/" in part:
                    part = part.rpartition("/")[0]
                    down.add(part)
        return down

    def held_back(self, alert: Alert, down: set[str]) -> str | None:
        """Why this alert must not be told now, if it must not: the readings behind it
        say more about something else that is down (``down`` from ``down_targets``)."""
        if not down:
            return None
        if self.connectivity in down and alert.target != self.connectivity:
            return "vigild lost its network"
        if alert.metric != "up" and alert.target in down:
            return "target down"
        owner = alert.target if alert.target in self._dependencies else alert.target.split("/")[0]
        for dependency in self._dependencies.get(owner, ()):
            if dependency in down:
                return f"depends on {dependency}, which is down"
        return None

    def silenced(self, alert: Alert, now: float) -> Silence | None:
        severity = (alert.severity or alert.peak or Severity.WARNING).label
        return self.silences.covering(alert.target, alert.metric, severity, now)

    def flush(self, now: float) -> list[Notification]:
        """Persist what changed and queue the notifications it causes, in one transaction."""
        if not self._touched:
            return []
        events: dict[str, list[AlertEvent]] = {route.name: [] for route in self.routes}
        told_updates: list[tuple[Alert, str, tuple[str, float] | None]] = []
        down = self.down_targets()
        for alert in self._touched.values():
            if self.held_back(alert, down) is not None or self.silenced(alert, now) is not None:
                continue  # told nothing now; told what it missed once released
            for route in self.routes:
                event, told = self._difference(alert, route, now)
                if told is not _UNCHANGED:
                    told_updates.append((alert, route.name, told))  # type: ignore[arg-type]
                if event is not None:
                    events[route.name].append(event)
        route_names = {route.name for route in self.routes}
        size = self.max_per_message
        notifications = [
            Notification(name, now, tuple(items[start : start + size]))
            for name, items in events.items()
            for start in range(0, len(items), size)
        ]
        upserts: list[AlertRow] = []
        deletes: list[str] = []
        previously = [(alert, name, alert.told.get(name)) for alert, name, _ in told_updates]
        for alert, name, told in told_updates:
            _apply_told(alert, name, told)
        try:
            for alert in self._touched.values():
                for stale in alert.told.keys() - route_names:
                    del alert.told[stale]
                if alert.replaced is not None:
                    deletes.append(alert.replaced)
                if alert.idle(now):
                    deletes.append(alert.fingerprint)
                else:
                    upserts.append(
                        AlertRow(alert.fingerprint, alert.target, alert.metric, alert.to_json())
                    )
            self._store.commit(
                upserts,
                deletes,
                [(n.notifier, n.created, json.dumps(n.to_json())) for n in notifications],
            )
        except Exception:
            # Nothing was recorded: forget what we told, so the next flush says it again.
            for alert, name, told in previously:
                _apply_told(alert, name, told)
            raise
        for alert in self._touched.values():
            alert.replaced = None
            if alert.fingerprint in deletes:
                self._alerts.pop((alert.target, alert.metric), None)
        self._touched.clear()
        for notification in notifications:
            for event in notification.events:
                log.info(
                    "notification queued",
                    notifier=notification.notifier,
                    target=event.target,
                    metric=event.metric,
                    severity=event.severity.label,
                    kind=event.kind,
                )
        return notifications

    def _difference(
        self, alert: Alert, route: Route, now: float
    ) -> tuple[AlertEvent | None, object]:
        """The event this notifier is owed, and what it will then have been told."""
        told = alert.told.get(route.name)
        want = self._view(alert, route)
        if want is None:
            if told is None:
                return None, _UNCHANGED
            if not route.send_resolved:
                return None, None
            # ``previous`` names the level the notifier last heard: the one that ends.
            return self._event(alert, "resolved", _severity_told(told[0])), None
        if told is not None and told[0] == want:
            # A flapping alert is quiet, except to a receiver that forgets what it is
            # not told again (Alertmanager would resolve it by itself).
            quiet = want == FLAPPING and not route.keepalive
            if not quiet and now - told[1] >= route.repeat_interval:
                return self._event(alert, "repeat", alert.severity), (want, now)
            return None, _UNCHANGED
        kind: EventKind
        previous = _severity_told(told[0]) if told else None
        if want == FLAPPING:
            kind = "flapping"
        elif previous is None or alert.severity is None:
            kind = "firing"
        else:
            kind = "escalated" if alert.severity.urgency > previous.urgency else "deescalated"
        return self._event(alert, kind, previous), (want, now)

    @staticmethod
    def _view(alert: Alert, route: Route) -> str | None:
        """What this notifier should currently believe about the alert."""
        if alert.flapping:
            peak = alert.peak or Severity.WARNING
            return FLAPPING if peak.routing_rank >= route.min_rank else None
        if alert.severity is None or alert.severity.routing_rank < route.min_rank:
            return None
        return alert.severity.label

    def _event(self, alert: Alert, kind: EventKind, previous: Severity | None) -> AlertEvent:
        severity = alert.severity if kind != "resolved" else alert.peak
        return AlertEvent(
            fingerprint=alert.fingerprint,
            target=alert.target,
            metric=alert.metric,
            kind=kind,
            severity=severity or alert.peak or Severity.WARNING,
            previous=previous,
            value=alert.value,
            threshold=alert.threshold,
            since=alert.started or 0.0,
            ended=alert.ended if kind == "resolved" else None,
            runbook=alert.runbook,
            labels=self._labels(alert.target),
            note=self._note(alert) if kind != "resolved" else None,
            origin=alert.origin,
        )

    def _note(self, alert: Alert) -> str | None:
        if alert.target == self.connectivity and alert.metric == "up":
            cause = f" ({alert.note})" if alert.note else ""
            return f"vigild lost its network{cause}: other alerts are held back until it is back"
        return alert.note

    # -- reading the state ------------------------------------------------

    def alerts(self) -> Iterator[Alert]:
        return iter(self._alerts.values())

    def severity_of(self, target: str, metric: str) -> Severity:
        alert = self._alerts.get((target, metric))
        if alert is None or alert.severity is None:
            return Severity.OK
        return alert.severity

    def retain(self, keep: Callable[[str, str], bool], now: float) -> None:
        """Close the alerts of targets and metrics a reloaded config no longer watches."""
        for key, alert in list(self._alerts.items()):
            if keep(alert.target, alert.metric):
                continue
            alert.breach.clear()
            alert.flapping = False
            if alert.severity is not None:
                self._move(alert, None, now)
            self._touched[key] = alert


_UNCHANGED = object()


class _NoSilenceStore:
    """For an engine built without silences (tests, tools): nothing to keep."""

    def save_silence(self, silence_id: str, row: dict[str, Any]) -> None:
        raise RuntimeError("this engine keeps no silences")

    def delete_silence(self, silence_id: str) -> None:
        raise RuntimeError("this engine keeps no silences")


def _apply_told(alert: Alert, notifier: str, told: tuple[str, float] | None) -> None:
    if told is None:
        alert.told.pop(notifier, None)
    else:
        alert.told[notifier] = told
