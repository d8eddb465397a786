"""The ``pagerduty`` notifier: Events API v2 bodies checked field by field against the
spec, delivery to a real receiver on 127.0.0.1, and the outbox. A real ``vigild``: tests/system."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pagerduty_events import KEY, SOURCE, assert_events_v2, sent
from pydantic import ValidationError
from receivers import PagerDutyReceiver
from targets import closed_port

from vigild.alerting.delivery import Delivery
from vigild.alerting.notifiers import base, text
from vigild.alerting.notifiers.pagerduty import (
    DEFAULT_EVENTS_URL,
    SUMMARY_MAX,
    PagerDutyNotifier,
    PagerDutyOptions,
    pagerduty_events,
)
from vigild.assembly import load
from vigild.config import ConfigError, NotifierConfig
from vigild.model import AlertEvent, EventKind, Notification, Severity
from vigild.storage import Database
from vigild.testing import TEST_HOST as HOST
from vigild.testing import FakeClock, alert_event

EXTERNAL = "http://127.0.0.1:9469"
STATUS_URL = EXTERNAL + "/api/status"
T0 = 1_714_564_984.0  # 2024-05-01 12:03:04 UTC

# ---------------------------------------------------------------------------
# Building blocks


event = functools.partial(alert_event, since=T0)


def note(*events: AlertEvent, created: float = T0 + 720) -> Notification:
    return Notification(notifier="oncall", created=created, events=events)


TEST_EVENT = event(target="vigild", metric="test", kind="test", severity=Severity.WARNING)


def options(**keys: Any) -> PagerDutyOptions:
    return PagerDutyOptions.model_validate({"routing_key": KEY, "source": SOURCE, **keys})


def bodies(message: Notification, **keys: Any) -> list[dict[str, Any]]:
    return pagerduty_events(message, options(**keys), EXTERNAL, SOURCE)


def notifier(
    session: aiohttp.ClientSession, events_url: str, redact: Any = lambda s: s, **keys: Any
) -> PagerDutyNotifier:
    config = NotifierConfig.model_validate(
        {"name": "oncall", "type": "pagerduty", "options": options(events_url=events_url, **keys)}
    )
    context = base.NotifierContext(session=session, external_url=EXTERNAL, redact=redact)
    return PagerDutyNotifier(config, context)


# ---------------------------------------------------------------------------
# Bodies


def test_trigger_body_field_by_field() -> None:
    escalated = event(
        metric="cpu_percent",
        kind="escalated",
        previous=Severity.WARNING,
        value=91.5,
        threshold=80.0,
        runbook="https://wiki.example/cpu",
        labels=(("env", "prod"),),
        note="load from backups",
    )
    [body] = bodies(note(escalated))
    assert body == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": HOST.fingerprint("covabot", "cpu_percent"),
        "payload": {
            "summary": "covabot CPU 91.5 % > 80 % (critical, up from warning) on testhost: "
            "load from backups",
            "source": SOURCE,
            "severity": "critical",
            "timestamp": "2024-05-01T12:15:04Z",
            "component": "covabot",
            "class": "cpu_percent",
            "custom_details": {
                "target": "covabot",
                "metric": "cpu_percent",
                "kind": "escalated",
                "severity": "critical",
                "previous": "warning",
                "value": 91.5,
                "threshold": 80.0,
                "since": "2024-05-01T12:03:04Z",
                "note": "load from backups",
                "labels": {"env": "prod", "instance": "testhost"},
            },
        },
        "client": "vigild",
        "client_url": STATUS_URL,
        "links": [
            {"href": "https://wiki.example/cpu", "text": "Runbook"},
            {"href": STATUS_URL, "text": "vigild status"},
        ],
    }
    assert_events_v2(body)


def test_firing_summary_says_why_in_the_probe_words() -> None:
    [body] = bodies(note(event(note="connection refused")))
    assert body["payload"]["summary"] == "covabot is DOWN on testhost: connection refused"
    assert body["links"] == [{"href": STATUS_URL, "text": "vigild status"}]  # no runbook
    assert "previous" not in body["payload"]["custom_details"]


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("firing", "trigger"),
        ("escalated", "trigger"),
        ("deescalated", "trigger"),
        ("repeat", "trigger"),
        ("flapping", "trigger"),
        ("resolved", "resolve"),
    ],
)
def test_event_action_per_kind(kind: EventKind, action: str) -> None:
    previous = Severity.WARNING if kind in ("escalated", "deescalated") else None
    alert = event(kind=kind, previous=previous, ended=T0 + 60 if kind == "resolved" else None)
    [body] = bodies(note(alert))
    assert body["event_action"] == action
    assert body["dedup_key"] == HOST.fingerprint("covabot", "up")  # one PagerDuty alert throughout
    assert_events_v2(body)


@pytest.mark.parametrize(
    ("severity", "shown"),
    [
        (Severity.CRITICAL, "critical"),
        (Severity.WARNING, "warning"),
        (Severity.UNKNOWN, "error"),
    ],
)
def test_severity_maps_to_the_spec_enum(severity: Severity, shown: str) -> None:
    [body] = bodies(note(event(metric="health_status", severity=severity)))
    assert body["payload"]["severity"] == shown
    assert body["payload"]["custom_details"]["severity"] == severity.label


def test_resolve_names_only_the_alert() -> None:
    [body] = bodies(note(event(kind="resolved", ended=T0 + 90)))
    assert body == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": HOST.fingerprint("covabot", "up"),
    }
    assert_events_v2(body)


def test_every_body_of_a_mixed_notification_meets_the_spec() -> None:
    message = note(
        event(note="HTTP 503"),
        event(target="host", metric="disk_percent:/var", severity=Severity.WARNING, value=80.0),
        event(metric="health_status", severity=Severity.UNKNOWN, value=None),
        event(target="db", kind="resolved", ended=T0 + 30),
        TEST_EVENT,
    )
    sent_bodies = bodies(message, component="api", group="prod", **{"class": "http"})
    assert [b["event_action"] for b in sent_bodies] == [
        "trigger",
        "trigger",
        "trigger",
        "resolve",
        "trigger",
        "resolve",
    ]
    for body in sent_bodies:
        assert_events_v2(body)
    disk = sent_bodies[1]["payload"]
    assert (disk["component"], disk["group"], disk["class"]) == ("api", "prod", "http")
    assert "value" not in sent_bodies[2]["payload"]["custom_details"]


def test_summary_is_cut_to_the_spec_limit() -> None:
    [body] = bodies(note(event(note="x" * 5000)))
    summary = body["payload"]["summary"]
    assert len(summary) == SUMMARY_MAX
    assert summary.startswith("covabot is DOWN on testhost: xxx") and summary.endswith("…")


def test_values_json_cannot_carry_are_sent_as_text() -> None:
    [body] = bodies(note(event(value=math.nan, threshold=math.inf)))
    details = body["payload"]["custom_details"]
    assert (details["value"], details["threshold"]) == ("NaN", "+Inf")
    assert_events_v2(body)


def test_test_message_triggers_then_resolves_the_same_alert() -> None:
    trigger, resolve = bodies(note(TEST_EVENT))
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["summary"] == f"[TEST] vigild test-notify from {SOURCE}"
    assert trigger["payload"]["custom_details"] == {
        "message": "TEST message from vigild on testhost: this notifier delivers"
    }
    assert resolve == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert_events_v2(trigger)


# ---------------------------------------------------------------------------
# Options


def test_options_defaults_and_overrides() -> None:
    plain = PagerDutyOptions.model_validate({"routing_key": f"  {KEY} "})
    assert plain.routing_key == KEY
    assert plain.events_url == DEFAULT_EVENTS_URL
    assert (plain.source, plain.component, plain.group, plain.class_) == (None, None, None, None)
    assert KEY not in repr(plain)
    custom = PagerDutyOptions.model_validate({"routing_key": KEY, "class": "disk"})
    assert custom.class_ == "disk"


async def test_source_defaults_to_the_instance(session: aiohttp.ClientSession) -> None:
    config = NotifierConfig.model_validate(
        {"name": "oncall", "options": PagerDutyOptions(routing_key=KEY)}
    )
    context = base.NotifierContext(
        session=session, external_url=EXTERNAL, redact=str, instance="nas-1"
    )
    assert PagerDutyNotifier(config, context).source == "nas-1"


@pytest.mark.parametrize(
    "keys",
    [
        {"routing_key": KEY, "events_url": "ftp://example/x"},
        {"routing_key": KEY, "events_url": "events.pagerduty.com/v2/enqueue"},
        {"routing_key": KEY, "severity": "critical"},  # unknown key
        {"events_url": DEFAULT_EVENTS_URL},  # no routing key
    ],
)
def test_options_reject_bad_keys(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PagerDutyOptions.model_validate(keys)


@pytest.mark.parametrize(("key", "disabled"), [("", True), ("   ", True), (KEY, False)])
def test_empty_routing_key_disables(key: str, disabled: bool) -> None:
    assert PagerDutyNotifier.is_disabled(PagerDutyOptions(routing_key=key)) is disabled


def test_registered_as_a_notifier_type() -> None:
    assert base.backend("pagerduty") is PagerDutyNotifier
    assert PagerDutyNotifier.keepalive is False  # repeats follow repeat_interval


# ---------------------------------------------------------------------------
# Delivery to a receiver


async def test_one_request_per_event_in_order(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    message = note(
        event(),
        event(target="db", kind="resolved", ended=T0 + 30),
        event(target="host", metric="load1", severity=Severity.WARNING),
    )
    await notifier(session, pd.url("/v2/enqueue")).send(message)
    requests = await pd.wait_for(3)
    assert [(r.method, r.path) for r in requests] == [("POST", "/v2/enqueue")] * 3
    assert all(r.header("Content-Type") == "application/json" for r in requests)
    assert pd.bodies == bodies(message)
    assert sent(pd) == [
        ("trigger", HOST.fingerprint("covabot", "up")),
        ("resolve", HOST.fingerprint("db", "up")),
        ("trigger", HOST.fingerprint("host", "load1")),
    ]


async def test_rejected_event_is_permanent_and_the_others_still_go(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    pd.queue(400)
    pd.response_body = json.dumps(
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": [f"'routing_key' {KEY} is not a known integration"],
        }
    )
    message = note(event(), event(target="db"))
    with pytest.raises(base.DeliveryError) as caught:
        await notifier(session, pd.url()).send(message)
    assert not caught.value.retryable
    reason = str(caught.value)
    assert reason == (
        "pagerduty rejected 1 of 2 events: answered 400: "
        "Event object is invalid: 'routing_key' *** is not a known integration"
    )
    assert KEY not in reason
    assert len(pd.requests) == 2  # the second alert was not held back by the first


@pytest.mark.parametrize("status", [429, 500, 502, 503, 408])
async def test_rate_limits_and_server_errors_are_retryable(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession, status: int
) -> None:
    pd.status = status
    pd.response_body = ""
    with pytest.raises(base.DeliveryError) as caught:
        await notifier(session, pd.url()).send(note(event(), event(target="db")))
    assert caught.value.retryable
    assert str(caught.value).startswith(f"pagerduty answered {status}")
    assert len(pd.requests) == 1  # the rest wait for the retry, in order


async def test_a_retry_carries_on_where_the_last_attempt_stopped(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    pager = notifier(session, pd.url())
    message = note(event(target="a"), event(target="b"), event(target="c"))
    pd.queue(202, 503)
    with pytest.raises(base.DeliveryError):
        await pager.send(message)
    await pager.send(message)
    a, b, c = (HOST.fingerprint(t, "up") for t in "abc")
    assert sent(pd) == [("trigger", a), ("trigger", b), ("trigger", b), ("trigger", c)]

    # Done: the same notification sent again (a restart's duplicate) starts over.
    pd.clear()
    await pager.send(message)
    assert sent(pd) == [("trigger", a), ("trigger", b), ("trigger", c)]


async def test_another_notification_does_not_inherit_progress(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    pager = notifier(session, pd.url())
    pd.queue(202, 503)
    with pytest.raises(base.DeliveryError):
        await pager.send(note(event(target="a"), event(target="b")))
    pd.clear()
    later = note(event(target="a"), event(target="b"), created=T0 + 900)
    await pager.send(later)
    assert [k for _, k in sent(pd)] == [HOST.fingerprint("a", "up"), HOST.fingerprint("b", "up")]


async def test_connection_refused_is_retryable_and_shows_no_address(
    session: aiohttp.ClientSession,
) -> None:
    port = closed_port()
    with pytest.raises(base.DeliveryError) as caught:
        await notifier(session, f"http://127.0.0.1:{port}/v2/enqueue").send(note(event()))
    assert caught.value.retryable
    assert str(caught.value) == "pagerduty cannot connect: Connection refused"


async def test_errors_pass_through_the_redactor(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    pd.status = 400
    pd.response_body = json.dumps({"status": "x", "message": "bad source box-1.example"})
    pager = notifier(session, pd.url(), redact=lambda s: s.replace(SOURCE, "***"))
    with pytest.raises(base.DeliveryError) as caught:
        await pager.send(note(event()))
    assert str(caught.value) == "pagerduty rejected event: answered 400: bad source ***"


async def test_test_message_leaves_no_incident_open(
    pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    await notifier(session, pd.url()).send(note(TEST_EVENT))
    trigger, resolve = (r.json for r in await pd.wait_for(2))
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["payload"]["summary"].startswith("[TEST] vigild test-notify")


# ---------------------------------------------------------------------------
# Through the outbox


def queued(db: Database, created: float, *events: AlertEvent) -> None:
    message = Notification("oncall", created, events)
    db.write(db.outbox.queue([("oncall", created, json.dumps(message.to_json()))]))


async def test_outbox_counts_a_rejection_as_failed_and_never_retries_it(
    tmp_path: Path, pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    clock, db, outcomes = FakeClock(), Database(tmp_path / "s.db"), list[str]()
    delivery = Delivery(
        db.outbox,
        {"oncall": notifier(session, pd.url())},
        clock=clock,
        publish=lambda event: outcomes.append(event.outcome),
    )
    pd.status = 400
    queued(db, clock(), event())
    await delivery.deliver_due(5)
    clock.advance(3600)
    await delivery.deliver_due(5)
    assert outcomes == ["failed"]
    assert len(pd.requests) == 1
    assert db.outbox.pending("oncall") == 0
    db.close()


async def test_outbox_retries_429_and_503_until_pagerduty_accepts(
    tmp_path: Path, pd: PagerDutyReceiver, session: aiohttp.ClientSession
) -> None:
    clock, db, outcomes = FakeClock(), Database(tmp_path / "s.db"), list[str]()
    delivery = Delivery(
        db.outbox,
        {"oncall": notifier(session, pd.url())},
        clock=clock,
        publish=lambda event: outcomes.append(event.outcome),
    )
    pd.queue(202, 429, 503)
    queued(db, clock(), event(target="a"), event(target="b"))
    for _ in range(3):
        await delivery.deliver_due(5)
        clock.advance(600)  # past any backoff
    assert outcomes == ["retried", "retried", "sent"]
    assert [k for _, k in sent(pd)] == [HOST.fingerprint(t, "up") for t in "abbb"]
    assert db.outbox.pending("oncall") == 0
    db.close()


# ---------------------------------------------------------------------------
# A real vigild


def test_text_summary_wording_is_what_pagerduty_shows() -> None:
    # The summary is the message's title: one wording for every backend.
    alert = event(kind="repeat", note="HTTP 503")
    [body] = bodies(note(alert))
    assert body["payload"]["summary"] == text.title(note(alert))
    assert body["payload"]["summary"] == "covabot is DOWN for 12m on testhost: HTTP 503"


# ---------------------------------------------------------------------------
# In the config file

TARGET = """
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/health"
"""


def test_config_file_takes_pagerduty_keys_and_disables_an_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", KEY)
    monkeypatch.delenv("PD_UNSET", raising=False)
    path = tmp_path / "thresholds.toml"
    path.write_text(
        TARGET
        + """
[[notifiers]]
name = "oncall"
type = "pagerduty"
routing_key = "${PD_ROUTING_KEY}"
class = "http"
group = "prod"
min_severity = "critical"

[[notifiers]]
name = "spare"
type = "pagerduty"
routing_key = "${PD_UNSET:-}"
"""
    )
    config = load(path)
    [oncall] = config.notifiers
    assert oncall.type == "pagerduty" and oncall.min_severity == "critical"
    assert isinstance(oncall.options, PagerDutyOptions)
    assert (oncall.options.class_, oncall.options.group) == ("http", "prod")
    assert config.disabled_notifiers == ("spare",)
    assert config.redact(KEY) == "***"


def test_config_file_rejects_unknown_pagerduty_keys(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text(
        TARGET
        + """
[[notifiers]]
name = "oncall"
type = "pagerduty"
routing_key = "k"
service_key = "k"
events_url = "events.pagerduty.com"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    found = "\n".join(caught.value.problems)
    assert 'notifiers[0] "oncall".service_key: unknown key' in found
    assert 'notifiers[0] "oncall".events_url: events_url must start with http://' in found
