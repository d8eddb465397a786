"""Grouping: what each notifier is owed, as few messages as ``max_per_message`` allows."""

from __future__ import annotations

from vigild.alerting.stages.base import Batch
from vigild.model import Notification

__all__ = ["Grouper"]


class Grouper:
    def __init__(self, max_per_message: int) -> None:
        self._size = max_per_message

    def __call__(self, batch: Batch) -> Batch:
        size = self._size
        batch.notifications = [
            Notification(name, batch.now, tuple(items[start : start + size]))
            for name, items in batch.events.items()
            for start in range(0, len(items), size)
        ]
        return batch
