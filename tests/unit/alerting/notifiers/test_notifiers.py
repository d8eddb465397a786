"""Notifier backends against a real HTTP receiver on 127.0.0.1: nothing mocked."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from receivers import Receiver

from vigild.alerting.notifiers import base, text
from vigild.alerting.notifiers.apprise import AppriseNotifier
from vigild.alerting.notifiers.posting import os_reason
from vigild.alerting.notifiers.webhook import (
    ZERO_TIME,
    WebhookNotifier,
    alertmanager_payload,
)
from vigild.config import NotifierConfig
from vigild.model import AlertEvent, Notification, Severity, rfc3339
from vigild.testing import TEST_HOST as HOST
from vigild.testing import alert_event

EXTERNAL = "http://127.0.0.1:9469"
T0 = 1_714_564_984.0  # 2024-05-01 12:03:04 UTC
SECRET = "s3cr3t-t0ken"


event = functools.partial(alert_event, since=T0)


def note(*events: AlertEvent, created: float = T0 + 720, notifier: str = "n") -> Notification:
    return Notification(notifier=notifier, created=created, events=events)


CPU_CRIT = event(
    metric="cpu_percent",
    kind="escalated",
    previous=Severity.WARNING,
    value=91.5,
    threshold=80.0,
    runbook="https://wiki.example/cpu",
)
DISK_RESOLVED = event(
    target="host",
    metric="disk_percent:/var",
    kind="resolved",
    severity=Severity.WARNING,
    value=50.0,
    threshold=75.0,
    ended=T0 + 720,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def context(
    session: aiohttp.ClientSession, redact: Callable[[str], str] = lambda s: s
) -> base.NotifierContext:
    return base.NotifierContext(
        session=session, external_url=EXTERNAL, redact=redact, instance="unraid"
    )


def config(name: str, options: base.Options, **common: Any) -> NotifierConfig:
    return NotifierConfig.model_validate({"name": name, **common, "options": options})


# ---------------------------------------------------------------------------
# text: what a human reads


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.25, "0.25"),
        (5.0, "5"),
        (91.5, "91.5"),
        (-3.0, "-3"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (1_234_567.5, "1234570"),
        (1e-7, "0.0000001"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
    ],
)
def test_numbers_are_short_and_plain(value: float, shown: str) -> None:
    assert text.number(value) == shown


# The words of titles and bodies: tests/unit/alerting/notifiers/test_text.py.


# ---------------------------------------------------------------------------
# apprise, through its json:// plugin to the receiver


def apprise_notifier(
    session: aiohttp.ClientSession, url: str, redact: Callable[[str], str] = lambda s: s
) -> AppriseNotifier:
    options = AppriseNotifier.Options(url=url)
    return AppriseNotifier(config("discord", options), context(session, redact))


def json_url(receiver: Receiver, path: str = "/apprise") -> str:
    return f"json://127.0.0.1:{receiver.port}{path}"


@pytest.mark.parametrize(
    ("message", "title", "kind"),
    [
        (note(event()), "covabot is DOWN on testhost", "failure"),
        (
            note(event(metric="cpu_percent", severity=Severity.WARNING, value=80, threshold=75)),
            "covabot CPU 80 % > 75 % (warning) on testhost",
            "warning",
        ),
        (
            note(event(metric="health_status", severity=Severity.UNKNOWN, value=None)),
            "covabot health is UNKNOWN on testhost: the probe did not report it",
            "warning",
        ),
        (
            note(event(kind="resolved", ended=T0 + 60)),
            "RESOLVED covabot is up again after 1m on testhost",
            "success",
        ),
        (
            note(event(), DISK_RESOLVED, event(target="host", metric="load1")),
            "3 alerts on testhost (2 critical, 1 resolved): covabot, host",
            "failure",
        ),
        (
            note(DISK_RESOLVED, event(severity=Severity.WARNING)),
            "2 alerts on testhost (1 resolved, 1 warning): host, covabot",
            "warning",
        ),
        (
            note(event(target="vigild", metric="test", kind="test", severity=Severity.OK)),
            "TEST message from vigild on testhost: this notifier delivers",
            "info",
        ),
    ],
)
async def test_apprise_delivers_title_body_and_type(
    receiver: Receiver,
    session: aiohttp.ClientSession,
    message: Notification,
    title: str,
    kind: str,
) -> None:
    notifier = apprise_notifier(session, json_url(receiver))
    await notifier.send(message)
    [request] = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/apprise"
    assert request.json["title"] == title
    assert request.json["type"] == kind
    # json:// is a plain-text service: the body comes without markdown's marks.
    assert request.json["message"] == text.body(message, markdown=False)


async def test_apprise_builds_its_sender_once(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    notifier = apprise_notifier(session, json_url(receiver))
    await notifier.send(note(event()))
    first = notifier._apprise
    await notifier.send(note(event(kind="resolved", ended=T0 + 60)))
    assert notifier._apprise is first is not None
    assert [b["type"] for b in receiver.bodies] == ["failure", "success"]


async def test_apprise_failure_is_retryable_and_keeps_the_url_secret(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.status = 503
    notifier = apprise_notifier(session, json_url(receiver, f"/hooks/{SECRET}"))
    with pytest.raises(base.DeliveryError) as caught:
        await notifier.send(note(event()))
    assert caught.value.retryable
    assert SECRET not in str(caught.value)
    assert str(caught.value) == f"apprise could not deliver to json://127.0.0.1:{receiver.port}/…"
    assert len(receiver.requests) == 1


async def test_apprise_errors_pass_through_the_redactor(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.status = 500
    port = str(receiver.port)
    notifier = apprise_notifier(session, json_url(receiver), lambda s: s.replace(port, "***"))
    with pytest.raises(base.DeliveryError) as caught:
        await notifier.send(note(event()))
    assert port not in str(caught.value)
    assert "***" in str(caught.value)


async def test_apprise_connection_refused_is_retryable(
    session: aiohttp.ClientSession, free_port: int
) -> None:
    notifier = apprise_notifier(session, f"json://127.0.0.1:{free_port}/{SECRET}")
    with pytest.raises(base.DeliveryError) as caught:
        await notifier.send(note(event()))
    assert caught.value.retryable
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("nosuchscheme://host/x", "nosuchscheme://"),
        (f"discord://{SECRET}", "discord://"),  # a webhook id without its token
        ("not a url", "(no scheme)"),
    ],
)
async def test_apprise_url_it_cannot_use_is_permanent(
    session: aiohttp.ClientSession, url: str, scheme: str
) -> None:
    notifier = apprise_notifier(session, url)
    for _ in range(2):  # and stays so, without parsing again
        with pytest.raises(base.DeliveryError) as caught:
            await notifier.send(note(event()))
        assert not caught.value.retryable
        assert f"scheme {scheme}" in str(caught.value)
        assert "notifier 'discord'" in str(caught.value)
        assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("url", "disabled"), [("", True), ("   ", True), ("json://h/p", False)])
def test_apprise_empty_url_is_disabled(url: str, disabled: bool) -> None:
    assert AppriseNotifier.is_disabled(AppriseNotifier.Options(url=url)) is disabled


def test_apprise_options_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        AppriseNotifier.Options.model_validate({"url": "json://h/p", "urls": "x"})


# ---------------------------------------------------------------------------
# webhook: the Alertmanager payload


def test_payload_of_one_firing_alert_field_by_field() -> None:
    alert = event(
        metric="cpu_percent",
        value=5.25,
        threshold=5.0,
        runbook="https://wiki.example/cpu",
        labels=(("env", "prod"),),
    )
    payload = alertmanager_payload(note(alert), "hook", EXTERNAL)
    labels = {
        "env": "prod",
        "instance": "testhost",
        "alertname": "cpu_percent",
        "target": "covabot",
        "metric": "cpu_percent",
        "severity": "critical",
    }
    annotations = {
        "summary": "covabot CPU 5.25 % > 5 % (critical) on testhost",
        "value": "5.25",
        "threshold": "5",
        "runbook_url": "https://wiki.example/cpu",
        "description": "target covabot on testhost\n"
        "since 2024-05-01 12:03:04 UTC\n"
        "runbook: https://wiki.example/cpu",
    }
    assert payload == {
        "version": "4",
        "groupKey": '{}/{receiver="hook"}:{}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": EXTERNAL,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2024-05-01T12:03:04Z",
                "endsAt": ZERO_TIME,
                "generatorURL": "http://127.0.0.1:9469/api/status",
                "fingerprint": HOST.fingerprint("covabot", "cpu_percent"),
            }
        ],
    }


def test_payload_alertname_is_the_base_metric_and_own_labels_cannot_hide_identity() -> None:
    alert = event(
        target="host",
        metric="disk_percent:/var",
        severity=Severity.WARNING,
        labels=(("instance", "spoof"), ("severity", "low"), ("target", "other"), ("team", "ops")),
    )
    [sent] = alertmanager_payload(note(alert), "hook", EXTERNAL)["alerts"]
    assert sent["labels"] == {
        "instance": "testhost",
        "alertname": "disk_percent",
        "target": "host",
        "metric": "disk_percent:/var",
        "severity": "warning",
        "team": "ops",
    }
    assert sent["fingerprint"] == HOST.fingerprint("host", "disk_percent:/var")


def test_payload_leaves_out_values_it_does_not_have() -> None:
    [sent] = alertmanager_payload(note(event(value=None)), "hook", EXTERNAL)["alerts"]
    assert set(sent["annotations"]) == {"summary", "description"}
    assert sent["annotations"]["summary"] == "covabot is DOWN on testhost"


def test_payload_of_several_alerts_has_common_labels_and_a_firing_status() -> None:
    other = event(metric="latency_seconds", severity=Severity.CRITICAL, value=4.0, threshold=3.0)
    payload = alertmanager_payload(note(CPU_CRIT, other, DISK_RESOLVED), "hook", EXTERNAL)
    assert payload["status"] == "firing"
    assert [a["status"] for a in payload["alerts"]] == ["firing", "firing", "resolved"]
    assert payload["commonLabels"] == {"instance": "testhost"}
    assert payload["commonAnnotations"] == {}
    two = alertmanager_payload(note(CPU_CRIT, other), "hook", EXTERNAL)
    assert two["commonLabels"] == {
        "instance": "testhost",
        "target": "covabot",
        "severity": "critical",
    }
    assert two["commonAnnotations"] == {}


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(T0 + 0.25) == "2024-05-01T12:03:04.25Z"
    assert rfc3339(T0 + 0.5004) == "2024-05-01T12:03:04.5Z"


# ---------------------------------------------------------------------------
# webhook: delivery to the receiver


def webhook_notifier(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    redact: Callable[[str], str] = lambda s: s,
) -> WebhookNotifier:
    options = WebhookNotifier.Options(url=url, headers=headers or {})
    return WebhookNotifier(config("hook", options), context(session, redact))


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_webhook_posts_the_payload(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    message = note(CPU_CRIT, DISK_RESOLVED, notifier="hook")
    await webhook_notifier(session, receiver.url("/alerts")).send(message)
    [request] = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/alerts"
    assert request.header("Content-Type") == "application/json"
    assert request.json == alertmanager_payload(message, "hook", EXTERNAL)


async def test_webhook_firing_then_resolved(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    notifier = webhook_notifier(session, receiver.url())
    await notifier.send(note(event()))
    resolved = event(kind="resolved", value=1.0, ended=T0 + 90.5)
    await notifier.send(note(resolved))
    firing, done = (r.json for r in await receiver.wait_for(2))
    assert firing["status"] == firing["alerts"][0]["status"] == "firing"
    assert firing["alerts"][0]["endsAt"] == ZERO_TIME
    assert done["status"] == done["alerts"][0]["status"] == "resolved"
    assert done["alerts"][0]["startsAt"] == "2024-05-01T12:03:04Z"
    assert done["alerts"][0]["endsAt"] == "2024-05-01T12:04:34.5Z"
    assert done["alerts"][0]["labels"]["severity"] == "critical"
    assert done["alerts"][0]["fingerprint"] == firing["alerts"][0]["fingerprint"]


async def test_webhook_escalation_keeps_the_fingerprint(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    notifier = webhook_notifier(session, receiver.url())
    warning = event(metric="cpu_percent", severity=Severity.WARNING, value=77.0, threshold=75.0)
    await notifier.send(note(warning))
    await notifier.send(note(CPU_CRIT))
    first, second = (r.json["alerts"][0] for r in await receiver.wait_for(2))
    assert (
        first["fingerprint"] == second["fingerprint"] == HOST.fingerprint("covabot", "cpu_percent")
    )
    assert (first["labels"]["severity"], second["labels"]["severity"]) == ("warning", "critical")
    assert first["startsAt"] == second["startsAt"]
    assert second["annotations"]["threshold"] == "80"


async def test_webhook_sends_configured_headers(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "X-Vigild-Test": "yes"}
    await webhook_notifier(session, receiver.url(), headers).send(note(event()))
    [request] = await receiver.wait_for(1)
    assert request.header("authorization") == f"Bearer {SECRET}"
    assert request.header("x-vigild-test") == "yes"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (503, True),
        (500, True),
        (429, True),
        (408, True),
        (400, False),
        (404, False),
        (401, False),
        (302, False),
    ],
)
async def test_webhook_failures_say_whether_to_retry(
    receiver: Receiver, session: aiohttp.ClientSession, status: int, retryable: bool
) -> None:
    receiver.status = status
    url = receiver.url(f"/hooks/{SECRET}")
    notifier = webhook_notifier(session, url, {"Authorization": f"Bearer {SECRET}"})
    with pytest.raises(base.DeliveryError) as caught:
        await notifier.send(note(event()))
    assert caught.value.retryable is retryable
    assert str(status) in str(caught.value)
    assert url not in str(caught.value)
    assert SECRET not in str(caught.value)
    assert len(receiver.requests) == 1  # a redirect is not followed


async def test_webhook_any_2xx_is_success(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.queue(201, 202, 204)
    notifier = webhook_notifier(session, receiver.url())
    for _ in range(3):
        await notifier.send(note(event()))
    assert len(await receiver.wait_for(3)) == 3


async def test_webhook_connection_refused_is_retryable(
    session: aiohttp.ClientSession, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}/hooks/{SECRET}"
    with pytest.raises(base.DeliveryError) as caught:
        await webhook_notifier(session, url).send(note(event()))
    assert caught.value.retryable
    assert str(caught.value) == "webhook cannot connect: Connection refused"
    assert str(free_port) not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_connection_errors_do_not_name_the_host() -> None:
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert os_reason(lookup) == "name lookup failed (Name or service not known)"
    refused = OSError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 8080)")
    assert os_reason(refused) == os.strerror(errno.ECONNREFUSED)
    assert os_reason(OSError()) == "connection error"


async def test_webhook_timeout_is_the_callers(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.delay = 5.0
    notifier = webhook_notifier(session, receiver.url())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(notifier.send(note(event())), 0.2)
    assert len(receiver.requests) == 1  # it arrived; the answer is what never came


async def test_webhook_errors_pass_through_the_redactor(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.status = 503
    notifier = webhook_notifier(session, receiver.url(), redact=lambda s: s.replace("503", "***"))
    with pytest.raises(base.DeliveryError) as caught:
        await notifier.send(note(event()))
    assert "503" not in str(caught.value)


def test_webhook_options() -> None:
    assert WebhookNotifier.is_disabled(WebhookNotifier.Options(url=""))
    assert WebhookNotifier.is_disabled(WebhookNotifier.Options(url="  "))
    assert not WebhookNotifier.is_disabled(WebhookNotifier.Options(url="http://h/x"))
    assert WebhookNotifier.Options(url="https://h/x").headers == {}
    with pytest.raises(ValidationError) as caught:
        WebhookNotifier.Options(url=f"ftp://h/{SECRET}")
    # The reason is what config errors show (pydantic's own repr would echo the input).
    [error] = caught.value.errors()
    assert "http://" in error["msg"]
    assert SECRET not in error["msg"]
    with pytest.raises(ValidationError):
        WebhookNotifier.Options.model_validate({"url": "http://h/x", "timeout": 5})


# ---------------------------------------------------------------------------
# the registry


def test_backends_resolve_through_entry_points() -> None:
    assert base.backend("apprise") is AppriseNotifier
    assert base.backend("webhook") is WebhookNotifier
    with pytest.raises(LookupError) as caught:
        base.backend("nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "apprise" in message
    assert "webhook" in message
