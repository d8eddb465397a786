"""Silencing: an alert a silence covers is not told until the silence ends."""

from __future__ import annotations

from vigild.alerting.alert import Alert
from vigild.alerting.silences import Silence, Silences
from vigild.alerting.stages.base import Batch
from vigild.model import Severity

__all__ = ["Silencer"]


class Silencer:
    def __init__(self, silences: Silences) -> None:
        self._silences = silences

    def covering(self, alert: Alert, now: float) -> Silence | None:
        severity = (alert.severity or alert.peak or Severity.WARNING).label
        return self._silences.covering(alert.target, alert.metric, severity, now)

    def __call__(self, batch: Batch) -> Batch:
        batch.alerts = [a for a in batch.alerts if self.covering(a, batch.now) is None]
        return batch
