"""Routing: what each notifier is owed.

A notification is not an event the state machine emits but the difference between
what a notifier was last told and what the alert is now: that makes repeats,
restarts, ``min_severity`` and flapping all the same one comparison, and it is why
an alert can never be announced twice at one severity. A report (an action's
outcome) changes no alert: it goes to every notifier whose ``min_severity`` its
severity reaches, as a firing alert of that severity would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vigild.alerting.alert import Alert, parse_severity
from vigild.alerting.stages.base import Batch
from vigild.model import AlertEvent, EventKind, Severity

__all__ = ["FLAPPING", "Addresses", "Labels", "Route", "Router", "no_address"]

FLAPPING = "flapping"

Labels = Callable[[str], tuple[tuple[str, str], ...]]
Addresses = Callable[[str], str | None]
"""A target's address as a message shows it (redacted), or None."""


@dataclass(frozen=True, slots=True)
class Route:
    """What routing needs to know about one notifier."""

    name: str
    min_rank: int
    send_resolved: bool
    repeat_interval: float
    keepalive: bool = False
    """Repeat every open alert each ``repeat_interval``, flapping ones too."""


def no_labels(target: str) -> tuple[tuple[str, str], ...]:
    return ()


def no_address(target: str) -> str | None:
    return None


_UNCHANGED = object()


class Router:
    def __init__(
        self,
        routes: Iterable[Route],
        *,
        labels: Labels = no_labels,
        connectivity: str | None = None,
        addresses: Addresses = no_address,
    ) -> None:
        self._routes = tuple(routes)
        self._labels = labels
        self._addresses = addresses
        self._connectivity = connectivity

    def __call__(self, batch: Batch) -> Batch:
        """Fill ``events`` (every notifier has its list) and ``told``; changes no alert."""
        events: dict[str, list[AlertEvent]] = {route.name: [] for route in self._routes}
        for alert in batch.alerts:
            for route in self._routes:
                event, told = self._difference(alert, route, batch.now)
                if told is not _UNCHANGED:
                    batch.told.append((alert, route.name, told))  # type: ignore[arg-type]
                if event is not None:
                    events[route.name].append(event)
        for report in batch.reports:
            for route in self._routes:
                if report.severity.routing_rank >= route.min_rank:
                    events[route.name].append(report)
        batch.events = events
        return batch

    def _difference(
        self, alert: Alert, route: Route, now: float
    ) -> tuple[AlertEvent | None, object]:
        """The event this notifier is owed, and what it will then have been told."""
        told = alert.told.get(route.name)
        want = _view(alert, route)
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
            note=self._note(alert) if kind != "resolved" else alert.closed_by,
            origin=alert.origin,
            address=self._addresses(alert.target),
        )

    def _note(self, alert: Alert) -> str | None:
        if alert.target == self._connectivity and alert.metric == "up":
            cause = f" ({alert.note})" if alert.note else ""
            return f"vigild lost its network{cause}: other alerts are held back until it is back"
        return alert.note


def _view(alert: Alert, route: Route) -> str | None:
    """What this notifier should currently believe about the alert."""
    if alert.flapping:
        peak = alert.peak or Severity.WARNING
        return FLAPPING if peak.routing_rank >= route.min_rank else None
    if alert.severity is None or alert.severity.routing_rank < route.min_rank:
        return None
    return alert.severity.label


def _severity_told(told: str) -> Severity | None:
    return None if told == FLAPPING else parse_severity(told)
