"""Inhibition: an alert is not told while the readings behind it say more about
something else that is down (its target, a dependency, vigild's own network)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from vigild.alerting.alert import Alert
from vigild.alerting.stages.base import Batch

__all__ = ["Inhibitor", "down_targets"]


def down_targets(alerts: Iterable[Alert]) -> set[str]:
    """Targets whose ``up`` alert is open; a target that expands (containers by
    label) counts as down when any of its parts is."""
    down = set()
    for alert in alerts:
        if alert.metric == "up" and alert.severity is not None:
            down.add(alert.target)
            part = alert.target
            while "/" in part:
                part = part.rpartition("/")[0]
                down.add(part)
    return down


class Inhibitor:
    def __init__(
        self,
        down: set[str],
        dependencies: Mapping[str, Sequence[str]],
        connectivity: str | None,
    ) -> None:
        """``down`` from ``down_targets`` over every alert, not only the batch's."""
        self._down = down
        self._dependencies = dependencies
        self._connectivity = connectivity

    def reason(self, alert: Alert) -> str | None:
        """Why this alert must not be told now, if it must not."""
        down = self._down
        if not down:
            return None
        if self._connectivity in down and alert.target != self._connectivity:
            return "vigild lost its network"
        if alert.metric != "up" and alert.target in down:
            return "target down"
        dependencies = self._dependencies
        owner = alert.target if alert.target in dependencies else alert.target.split("/")[0]
        for dependency in dependencies.get(owner, ()):
            if dependency in down:
                return f"depends on {dependency}, which is down"
        return None

    def __call__(self, batch: Batch) -> Batch:
        # Told nothing now; told what it missed once released.
        batch.alerts = [a for a in batch.alerts if self.reason(a) is None]
        return batch
