"""Delivery from the outbox: one worker per notifier, in order, until sent or expired.

A notifier that is down holds back only its own messages. A message leaves
the outbox only after its send succeeded, failed permanently or grew older
than the notifier's ``max_age``; so a restart resumes where delivery stopped,
and the only duplicate possible is a send that succeeded just before a crash,
before its removal was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping

import structlog
from structlog.typing import FilteringBoundLogger

from vigild.alerting.notifiers.base import DeliveryError, Notifier
from vigild.events import DeliveryOutcome, Publish
from vigild.model import Notification
from vigild.storage.outbox import Outbox, OutboxEntry
from vigild.tasks import spawn

__all__ = ["Delivery"]

log = structlog.get_logger("vigild.delivery")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
STORE_RETRY = 5.0


def backoff(attempts: int) -> float:
    """Exponential with jitter, so many vigilds do not retry a service in step."""
    delay: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(attempts - 1, 0))
    return delay * random.uniform(0.8, 1.0)


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        *,
        clock: Callable[[], float] = time.time,
        publish: Publish = lambda event: None,
    ) -> None:
        self._outbox = outbox
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._publish = publish
        self._wakeups = {name: asyncio.Event() for name in self._notifiers}
        # Set while a worker has nothing due: what a graceful stop waits for.
        self._idle = {name: asyncio.Event() for name in self._notifiers}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._last_error: dict[str, str] = {}
        self.pending = {name: outbox.pending(name) for name in self._notifiers}
        """Messages waiting per notifier, for ``vigild_outbox_pending``."""

    def start(self) -> None:
        """One worker per notifier: a second start never adds a second sender."""
        for name in self._notifiers:
            if name not in self._workers:
                self._workers[name] = spawn(self._work(name), name=f"deliver:{name}")

    def wake(self) -> None:
        """New messages are queued: bound each outbox, then let the workers at them."""
        for name, event in self._wakeups.items():
            self._bound(name)
            self._idle[name].clear()
            event.set()

    def _bound(self, name: str) -> None:
        """Keep a notifier's outbox within ``max_pending`` (``Outbox.bound`` says what goes)."""
        limit = self._notifiers[name].config.max_pending
        dropped = self._outbox.bound(name, limit)
        self.pending[name] = self._outbox.pending(name)
        if not dropped.count:
            return
        for _ in range(dropped.count):
            self._publish(DeliveryOutcome(name, "dropped", 0.0))
        log.error(
            "outbox full: notifications dropped",
            notifier=name,
            dropped=dropped.count,
            superseded=dropped.superseded,
            max_pending=limit,
        )

    async def stop(self, drain: float) -> None:
        """Give due messages up to ``drain`` seconds to go out, then stop the workers
        and close the notifiers.

        What is still queued stays in the outbox for the next start.
        """
        if self._workers and drain > 0:
            waiters = [asyncio.create_task(self._idle[name].wait()) for name in self._workers]
            await asyncio.wait(waiters, timeout=drain)
            for waiter in waiters:
                waiter.cancel()
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        for notifier in self._notifiers.values():
            await notifier.close()

    async def deliver_due(self, within: float) -> None:
        """One pass for ``--once``: send what is due, stop a notifier at its first failure."""

        async def drain(name: str) -> None:
            while (entry := self._outbox.head(name)) is not None:
                if entry.next_attempt > self._clock() or not await self._attempt(name, entry):
                    return

        tasks = [asyncio.create_task(drain(name)) for name in self._notifiers]
        if not tasks:
            return
        _done, still_running = await asyncio.wait(tasks, timeout=within)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)

    async def _work(self, name: str) -> None:
        while True:
            try:
                await self._work_through(name)
            except Exception:
                # The state file failed under us (a full disk): the messages are still
                # there, so wait and go on rather than end this notifier's delivery.
                log.exception("delivery interrupted, retrying", notifier=name)
                await asyncio.sleep(STORE_RETRY)

    async def _work_through(self, name: str) -> None:
        wakeup, idle = self._wakeups[name], self._idle[name]
        while True:
            entry = self._outbox.head(name)
            wait = None if entry is None else entry.next_attempt - self._clock()
            if wait is None or wait > 0:
                idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), wait)
                wakeup.clear()
                continue
            assert entry is not None
            await self._attempt(name, entry)

    async def _attempt(self, name: str, entry: OutboxEntry) -> bool:
        """Try one message; True when it left the outbox (sent, failed for good, expired)."""
        left = await self._try(name, entry)
        if left:
            self.pending[name] = self._outbox.pending(name)
        return left

    async def _try(self, name: str, entry: OutboxEntry) -> bool:
        notifier = self._notifiers[name]
        now = self._clock()
        age = now - entry.created
        try:
            notification = Notification.from_json(json.loads(entry.payload))
        except (ValueError, KeyError, TypeError) as exc:
            # Only a newer vigild's outbox could hold this; it can never be sent here.
            self._outbox.remove(entry.id)
            log.error("notification dropped: unreadable", notifier=name, error=str(exc))
            self._publish(DeliveryOutcome(name, "dropped", age))
            return True
        bound = log.bind(
            notifier=name, severity=notification.severity.label, alerts=_about(notification)
        )
        if age > notifier.config.max_age:
            self._outbox.remove(entry.id)
            bound.error("notification expired", attempts=entry.attempts, age=round(age))
            self._publish(DeliveryOutcome(name, "expired", age))
            return True
        try:
            await asyncio.wait_for(notifier.send(notification), notifier.config.timeout)
        except DeliveryError as exc:
            return self._failed(bound, entry, notifier.context.redact(exc.reason), exc.retryable)
        except TimeoutError:
            return self._failed(bound, entry, f"timeout after {notifier.config.timeout:g}s", True)
        except Exception as exc:  # a broken backend must not stop delivery for good
            reason = notifier.context.redact(f"{type(exc).__name__}: {exc}")
            return self._failed(bound, entry, reason, True)
        self._outbox.remove(entry.id)
        self._last_error.pop(name, None)
        latency = self._clock() - entry.created
        bound.info("notification sent", attempts=entry.attempts + 1, latency=round(latency, 3))
        self._publish(DeliveryOutcome(name, "sent", latency))
        return True

    def _failed(
        self, bound: FilteringBoundLogger, entry: OutboxEntry, reason: str, retryable: bool
    ) -> bool:
        now, name = self._clock(), entry.notifier
        if not retryable:
            self._outbox.remove(entry.id)
            bound.error("notification failed", error=reason, retryable=False)
            self._publish(DeliveryOutcome(name, "failed", now - entry.created))
            return True
        delay = backoff(entry.attempts + 1)
        self._outbox.postpone(entry.id, now + delay, reason)
        # One line per new error, not one per retry: an outage must not flood the log.
        level = "debug" if self._last_error.get(name) == reason else "warning"
        self._last_error[name] = reason
        getattr(bound, level)(
            "notification retry",
            error=reason,
            attempts=entry.attempts + 1,
            retry_in=round(delay, 1),
        )
        self._publish(DeliveryOutcome(name, "retried", now - entry.created))
        return False


def _about(notification: Notification, most: int = 10) -> list[str]:
    """The alerts of a message as a log line can carry them: "target metric kind"."""
    about = [f"{e.target} {e.metric} {e.kind}" for e in notification.events[:most]]
    if len(notification.events) > most:
        about.append(f"and {len(notification.events) - most} more")
    return about
