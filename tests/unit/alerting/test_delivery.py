"""Delivery from the SQLite outbox to a real receiver: order, retries, expiry, isolation."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from receivers import Receiver, Receivers

from vigild.alerting.delivery import Delivery
from vigild.alerting.notifiers.base import NotifierContext
from vigild.alerting.notifiers.webhook import WebhookNotifier
from vigild.config import NotifierConfig
from vigild.model import AlertEvent, Notification, Severity
from vigild.storage import Database
from vigild.testing import FakeClock


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def webhook(
    name: str, url: str, session: aiohttp.ClientSession, **common: object
) -> WebhookNotifier:
    config = NotifierConfig.model_validate(
        {"name": name, "type": "webhook", "options": WebhookNotifier.Options(url=url), **common}
    )
    context = NotifierContext(session=session, external_url="http://127.0.0.1:9469", redact=str)
    return WebhookNotifier(config, context)


def queue(db: Database, notifier: str, created: float, target: str) -> None:
    event = AlertEvent(
        fingerprint="f" * 16,
        target=target,
        metric="up",
        kind="firing",
        severity=Severity.CRITICAL,
        previous=None,
        value=0.0,
        threshold=None,
        since=created,
    )
    notification = Notification(notifier, created, (event,))
    db.write(db.outbox.queue([(notifier, created, json.dumps(notification.to_json()))]))


def targets_sent(receiver: Receiver, path: str = "/hook") -> list[str]:
    return [r.json["alerts"][0]["labels"]["target"] for r in receiver.requests if r.path == path]


async def test_a_notifier_that_is_down_keeps_its_messages_in_order(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    db = Database(tmp_path / "s.db")
    outcomes: list[tuple[str, str]] = []
    delivery = Delivery(
        db.outbox,
        {"hook": webhook("hook", receiver.url("/hook"), session)},
        clock=clock,
        publish=lambda event: outcomes.append((event.notifier, event.outcome)),
    )
    queue(db, "hook", clock(), "first")
    queue(db, "hook", clock(), "second")
    receiver.status = 503
    await delivery.deliver_due(5)
    assert targets_sent(receiver) == ["first"]  # the head failed: the second waits behind it
    assert db.outbox.pending("hook") == 2
    await delivery.deliver_due(5)
    assert len(receiver.requests) == 1  # not due yet: backing off

    receiver.status = 200
    clock.advance(2)
    await delivery.deliver_due(5)
    assert targets_sent(receiver) == ["first", "first", "second"]
    assert db.outbox.pending("hook") == 0
    assert outcomes == [("hook", "retried"), ("hook", "sent"), ("hook", "sent")]


async def test_backoff_grows_and_is_remembered_across_a_restart(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    db = Database(tmp_path / "s.db")
    delivery = Delivery(db.outbox, {"hook": webhook("hook", receiver.url(), session)}, clock=clock)
    queue(db, "hook", clock(), "api")
    receiver.status = 503
    waits = []
    for _ in range(4):
        await delivery.deliver_due(5)
        entry = db.outbox.head("hook")
        assert entry is not None
        waits.append(entry.next_attempt - clock())
        clock.advance(entry.next_attempt - clock())
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))
    db.close()

    db = Database(tmp_path / "s.db")
    entry = db.outbox.head("hook")
    assert entry is not None and entry.attempts == 4
    receiver.status = 200
    delivery = Delivery(db.outbox, {"hook": webhook("hook", receiver.url(), session)}, clock=clock)
    await delivery.deliver_due(5)
    assert len(receiver.requests) == 5 and db.outbox.head("hook") is None


async def test_permanent_failure_and_expiry_leave_the_outbox_counted(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    db = Database(tmp_path / "s.db")
    outcomes: list[str] = []
    delivery = Delivery(
        db.outbox,
        {"hook": webhook("hook", receiver.url(), session, max_age="1h")},
        clock=clock,
        publish=lambda event: outcomes.append(event.outcome),
    )
    queue(db, "hook", clock(), "rejected")
    receiver.status = 400
    await delivery.deliver_due(5)
    assert outcomes == ["failed"] and db.outbox.pending("hook") == 0

    queue(db, "hook", clock(), "stale")
    clock.advance(3601)
    await delivery.deliver_due(5)
    assert outcomes == ["failed", "expired"]
    assert len(receiver.requests) == 1  # the expired one was never sent


async def test_one_notifier_down_does_not_delay_another(
    tmp_path: Path, receiver: Receiver, receivers: Receivers, session: aiohttp.ClientSession
) -> None:
    hanging = await receivers.start(Receiver)
    hanging.delay = 5.0  # longer than the notifier's timeout
    db = Database(tmp_path / "s.db")
    delivery = Delivery(
        db.outbox,
        {
            "slow": webhook("slow", hanging.url(), session, timeout="0.5s"),
            "fast": webhook("fast", receiver.url(), session),
        },
    )
    try:
        delivery.start()
        now = time.time()
        queue(db, "slow", now, "a")
        queue(db, "fast", now, "b")
        delivery.wake()
        await receiver.wait_for(1, timeout=3)
        assert targets_sent(receiver) == ["b"]
        assert len(hanging.requests) == 1
        assert db.outbox.pending("slow") == 1  # timed out: kept for a retry
        await delivery.stop(drain=0.1)
        assert db.outbox.pending("fast") == 0
        assert db.outbox.pending("slow") == 1  # still queued for the next start
    finally:
        await delivery.stop(drain=0)


async def test_stop_drains_what_is_due_within_its_deadline(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    db = Database(tmp_path / "s.db")
    delivery = Delivery(db.outbox, {"hook": webhook("hook", receiver.url(), session)})
    delivery.start()
    receiver.delay = 0.2
    queue(db, "hook", time.time(), "late")
    delivery.wake()
    await delivery.stop(drain=5)
    assert targets_sent(receiver) == ["late"]
    assert db.outbox.pending("hook") == 0


def queue_alerts(db: Database, notifier: str, created: float, *alerts: tuple[str, str]) -> None:
    """One message about several alerts: (target, kind) each."""
    events = tuple(
        AlertEvent(
            fingerprint=target * 16,
            target=target,
            metric="up",
            kind=kind,  # type: ignore[arg-type]
            severity=Severity.CRITICAL,
            previous=None,
            value=0.0,
            threshold=None,
            since=created,
        )
        for target, kind in alerts
    )
    payload = json.dumps(Notification(notifier, created, events).to_json())
    db.write(db.outbox.queue([(notifier, created, payload)]))


async def test_a_full_outbox_drops_the_oldest_of_each_alerts_story(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    db = Database(tmp_path / "s.db")
    # 1: a and b fire together; 2: a resolves; 3: a fires again; 4, 5: c fires, resolves.
    queue_alerts(db, "hook", 1.0, ("a", "firing"), ("b", "firing"))
    queue_alerts(db, "hook", 2.0, ("a", "resolved"))
    queue_alerts(db, "hook", 3.0, ("a", "firing"))
    queue_alerts(db, "hook", 4.0, ("c", "firing"))
    queue_alerts(db, "hook", 5.0, ("c", "resolved"))
    dropped: list[str] = []
    delivery = Delivery(
        db.outbox,
        {"hook": webhook("hook", "http://127.0.0.1:1/", session, max_pending=3)},
        publish=lambda event: dropped.append(event.outcome),
    )
    delivery.wake()
    left = [json.loads(payload)["created"] for _, payload in db.outbox.entries("hook")]
    # Message 2 is covered by 3, but 1 is not (b has nothing later): dropping 2 alone
    # would tell a "firing" twice without the resolve between. So c's covered firing
    # goes first, then the oldest: each alert loses the start of its story only.
    assert left == [2.0, 3.0, 5.0]
    assert dropped == ["dropped", "dropped"]
    assert delivery.pending == {"hook": 3}
