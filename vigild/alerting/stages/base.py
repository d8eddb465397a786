"""What every stage takes and gives: a ``Batch`` on its way from the engine to the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vigild.alerting.alert import Alert
from vigild.model import AlertEvent, Notification

__all__ = ["Batch", "Stage", "Told"]

Told = tuple[Alert, str, tuple[str, float] | None]
"""An alert, a notifier, and what it will have been told once recorded (None: nothing)."""


@dataclass(slots=True)
class Batch:
    """One flush: filtering stages shrink ``alerts``, the later ones fill in the rest."""

    now: float
    touched: tuple[Alert, ...] = ()
    """Every alert whose state changed: recorded whether or not anyone is told."""
    alerts: list[Alert] = field(default_factory=list)
    """The alerts still to be told about."""
    reports: list[AlertEvent] = field(default_factory=list)
    """Events about no state change (an action's report), routed as they are."""
    events: dict[str, list[AlertEvent]] = field(default_factory=dict)
    """Notifier → what it is owed, in order."""
    told: list[Told] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    deleted: list[Alert] = field(default_factory=list)
    """Alerts the state file no longer keeps (idle): the engine forgets them too."""


class Stage(Protocol):
    def __call__(self, batch: Batch) -> Batch: ...
