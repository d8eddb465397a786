"""Recording: the batch's alert state and its notifications, in one transaction.

What a notifier was told changes only with the transaction that queues the message
telling it: if the transaction fails, the next flush owes it the same again. A
state file that cannot be written keeps the change in memory (``StateFile.write``),
which counts as recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import structlog

from vigild.alerting.alert import Alert
from vigild.alerting.stages.base import Batch
from vigild.storage.alerts import AlertRow
from vigild.storage.database import Database

__all__ = ["Recorder", "Rehearsal"]

log = structlog.get_logger("vigild.engine")


class Recorder:
    def __init__(self, db: Database, notifiers: Iterable[str]) -> None:
        """``notifiers``: the configured ones; what an alert told any other is forgotten."""
        self._db = db
        self._notifiers = set(notifiers)

    def __call__(self, batch: Batch) -> Batch:
        if not batch.touched and not batch.notifications:
            return batch
        previously = [(alert, name, alert.told.get(name)) for alert, name, _ in batch.told]
        try:
            kept, deleted, deletes = _settle(batch, self._notifiers)
            upserts = [
                AlertRow(alert.fingerprint, alert.target, alert.metric, alert.to_json())
                for alert in kept
            ]
            self._db.write(
                self._db.alerts.save(upserts, deletes),
                self._db.outbox.queue(
                    (n.notifier, n.created, json.dumps(n.to_json())) for n in batch.notifications
                ),
            )
        except Exception:
            # Nothing was recorded: forget what we told, so the next flush says it again.
            for alert, name, told in previously:
                _apply_told(alert, name, told)
            raise
        for alert in batch.touched:
            alert.replaced = None
        batch.deleted = deleted
        for notification in batch.notifications:
            for event in notification.events:
                log.info(
                    "notification queued",
                    notifier=notification.notifier,
                    target=event.target,
                    metric=event.metric,
                    severity=event.severity.label,
                    kind=event.kind,
                )
        return batch


class Rehearsal:
    """The record stage of a replay (``vigild backtest``): the alerts move on and the
    notifiers are told, as if recorded; nothing is written."""

    def __init__(self, notifiers: Iterable[str]) -> None:
        self._notifiers = set(notifiers)

    def __call__(self, batch: Batch) -> Batch:
        _, batch.deleted, _ = _settle(batch, self._notifiers)
        for alert in batch.touched:
            alert.replaced = None
        return batch


def _settle(batch: Batch, notifiers: set[str]) -> tuple[list[Alert], list[Alert], list[str]]:
    """Apply what the notifiers are told; then (alerts to keep, idle alerts to forget,
    fingerprints the state file no longer keeps)."""
    for alert, name, told in batch.told:
        _apply_told(alert, name, told)
    kept: list[Alert] = []
    idle: list[Alert] = []
    deletes: list[str] = []
    for alert in batch.touched:
        for stale in alert.told.keys() - notifiers:
            del alert.told[stale]
        if alert.replaced is not None:
            deletes.append(alert.replaced)
        if alert.idle(batch.now):
            idle.append(alert)
            deletes.append(alert.fingerprint)
        else:
            kept.append(alert)
    return kept, idle, deletes


def _apply_told(alert: Alert, notifier: str, told: tuple[str, float] | None) -> None:
    if told is None:
        alert.told.pop(notifier, None)
    else:
        alert.told[notifier] = told
