"""What a run reports as it goes, as plain values, and who hears it.

A producer (a cycle, delivery, the action runner, the heartbeat) publishes an
event; ``Subscribers`` calls each handler registered for that event's type,
directly and in order: no queue, no task, because a ``ProbeResult`` goes out
for every probe. A handler gets everything it needs in the event and never
calls back into its producer (the severity an alert has after a reading
travels in the ``ProbeResult``).

The events are named tuples: immutable, and the cheapest value Python builds,
which counts at 10,000 targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import structlog

from vigild.model import Observation, Severity
from vigild.thresholds import Verdict

__all__ = [
    "ActionOutcome",
    "CycleCompleted",
    "CycleMissed",
    "DeliveryOutcome",
    "HeartbeatOutcome",
    "ProbeResult",
    "Publish",
    "Subscribers",
]


class ProbeResult(NamedTuple):
    """One observation, evaluated and handed to the engine."""

    target: str
    """The configured target (a container's observation names its own ``observation.target``)."""
    kind: str
    """The target's ``type``."""
    observation: Observation
    verdicts: list[Verdict]
    severities: Sequence[Severity]
    """The alert's severity after this reading, one per verdict, in the same order."""


class ObservationRetired(NamedTuple):
    """A probe said what it observed is gone for good (``Observation.retired``)."""

    target: str
    """The configured target."""
    observed: str


class CycleCompleted(NamedTuple):
    """A cycle's probes are all done and its flush has run."""

    interval: float
    now: float
    """When the cycle ended, by the run's clock."""
    lateness: float
    """Seconds the cycle started after its schedule."""
    duration: float
    """Seconds from its start to its last probe recorded."""
    recorded: bool
    """Alert state and notifications reached the state file: the cycle counts as done
    for the heartbeat, the status page history and ``vigild_last_cycle_timestamp_seconds``."""


class CycleMissed(NamedTuple):
    """Targets a cycle left out because their previous probe was still in flight."""

    interval: float
    targets: tuple[str, ...]


class DeliveryOutcome(NamedTuple):
    notifier: str
    outcome: str
    """sent, failed, retried, expired or dropped."""
    age: float
    """Seconds from the notification's creation to this outcome."""


class ActionOutcome(NamedTuple):
    action: str
    outcome: str
    """succeeded, failed, timeout, finished, skipped or dry_run."""


class HeartbeatOutcome(NamedTuple):
    outcome: str
    """sent or failed."""


Publish = Callable[[Any], None]
"""How a producer hands over an event: ``Subscribers.publish``, or a test's list.append."""

log = structlog.get_logger("vigild.events")

_E = TypeVar("_E")


class Subscribers:
    """The handlers of each event type. Built whole with the parts that produce the
    events (a reload builds a new set), then only read."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Any], None]]] = {}

    def on(self, kind: type[_E], handler: Callable[[_E], None]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, event: object) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not keep the event from the others (the
                # heartbeat, the state of /readyz) nor fail the producer.
                log.exception("event subscriber failed", kind=type(event).__name__)
