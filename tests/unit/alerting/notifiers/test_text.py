"""The words a person reads: every kind of message against a golden file, and each one
sent for real through apprise's ``json://`` plugin to a receiver on 127.0.0.1.

The golden files in tests/data/messages/ are the messages as a person reads them:
``<kind>.txt`` the plain form (title, blank line, body), ``<kind>.md`` the markdown
form. After a deliberate change of wording, rewrite them with
``VIGILD_UPDATE_GOLDEN=1`` and read the diff.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from receivers import Receiver

from vigild.alerting.notifiers import base, text
from vigild.alerting.notifiers.apprise import AppriseNotifier, notify_type
from vigild.alerting.notifiers.pagerduty import PagerDutyOptions, pagerduty_events
from vigild.alerting.notifiers.webhook import alertmanager_payload
from vigild.config import NotifierConfig
from vigild.model import AlertEvent, Identity, Notification, Severity
from vigild.testing import alert_event

GOLDEN = Path(__file__).parents[3] / "data" / "messages"
T0 = 1_714_564_984.0  # 2024-05-01 12:03:04 UTC
PAGE = "https://vigil.example.net/"
UNRAID = Identity("unraid")

event = functools.partial(alert_event, since=T0, identity=UNRAID)

DB_DOWN = event(
    target="db",
    note="connection refused",
    address="http://127.0.0.1:5432/health",
)
API_SLOW = event(
    target="api",
    metric="latency_seconds",
    value=12.34,
    threshold=10.0,
    runbook="https://wiki.example/api-latency",
    address="https://api.example.net/health",
)
DISK_FULL = event(
    target="host",
    metric="disk_percent:/",
    severity=Severity.WARNING,
    value=86.2,
    threshold=85.0,
)

MESSAGES: dict[str, tuple[AlertEvent, ...]] = {
    "down": (DB_DOWN,),
    "firing-critical": (API_SLOW,),
    "firing-warning": (DISK_FULL,),
    "unknown": (
        event(
            target="api-metrics",
            metric="error_rate_percent",
            severity=Severity.UNKNOWN,
            value=None,
            note="no requests http_requests_total on the page",
            address="http://127.0.0.1:7080/metrics",
        ),
    ),
    "resolved": (
        event(
            target="db",
            kind="resolved",
            value=1.0,
            ended=T0 + 87,
            address="http://127.0.0.1:5432/health",
        ),
    ),
    "resolved-value": (
        event(
            target="api",
            metric="latency_seconds",
            kind="resolved",
            value=0.1204,
            threshold=5.0,
            ended=T0 + 3 * 3600 + 125,
            address="https://api.example.net/health",
        ),
    ),
    "escalated": (
        event(
            target="api",
            metric="latency_seconds",
            kind="escalated",
            previous=Severity.WARNING,
            value=12.34,
            threshold=10.0,
            address="https://api.example.net/health",
        ),
    ),
    "deescalated": (
        event(
            target="api",
            metric="latency_p95_seconds",
            kind="deescalated",
            severity=Severity.WARNING,
            previous=Severity.CRITICAL,
            value=0.7234,
            threshold=0.5,
            address="http://127.0.0.1:7080/metrics",
        ),
    ),
    "repeat": (
        event(target="web", metric="cert_expiry_days", kind="repeat", value=5.4, threshold=7.0),
    ),
    "flapping": (event(target="db", kind="flapping", address="http://127.0.0.1:5432/health"),),
    "action": (
        event(
            target="db",
            kind="action",
            value=None,
            note=(
                "rollback succeeded: ran `/opt/db/rollback.sh quick`, exit code 0 after 1.2s\n"
                "output (tail):\n```\nrolled back to v41\n```"
            ),
            address="http://127.0.0.1:5432/health",
        ),
    ),
    "did-not-help": (
        event(
            target="api",
            metric="latency_seconds",
            kind="action",
            value=None,
            note=(
                "rollback did not help: it ran 5m ago and api latency is still critical; "
                "no further run for this incident"
            ),
        ),
    ),
    "grouped": (
        DB_DOWN,
        API_SLOW,
        DISK_FULL,
        event(
            target="cache",
            kind="resolved",
            value=1.0,
            ended=T0 + 45,
            address="cache.lan:6379",
        ),
        event(
            target="app",
            metric="container_health",
            severity=Severity.WARNING,
            value=2.0,
            threshold=0.0,
            address="container app",
        ),
    ),
    "test": (event(target="vigild", metric="test", kind="test", severity=Severity.OK),),
}

NOTIFY_TYPES = {
    "down": "failure",
    "firing-critical": "failure",
    "firing-warning": "warning",
    "unknown": "warning",
    "resolved": "success",
    "resolved-value": "success",
    "escalated": "failure",
    "deescalated": "warning",
    "repeat": "failure",
    "flapping": "failure",
    "action": "failure",
    "did-not-help": "failure",
    "grouped": "failure",
    "test": "info",
}


def message(kind: str) -> Notification:
    return Notification("phone", T0 + 300, MESSAGES[kind])


def rendered(kind: str, *, markdown: bool) -> str:
    shown = message(kind)
    return f"{text.title(shown)}\n\n{text.body(shown, page_url=PAGE, markdown=markdown)}\n"


def golden(name: str, actual: str) -> str:
    path = GOLDEN / name
    if os.environ.get("VIGILD_UPDATE_GOLDEN"):
        path.write_text(actual)
    return path.read_text()


@pytest.mark.parametrize("kind", MESSAGES)
@pytest.mark.parametrize("markdown", [False, True], ids=["text", "markdown"])
def test_message_reads_as_its_golden_file(kind: str, markdown: bool) -> None:
    actual = rendered(kind, markdown=markdown)
    assert actual == golden(f"{kind}.{'md' if markdown else 'txt'}", actual)


def test_every_golden_file_belongs_to_a_message_kind() -> None:
    expected = {f"{kind}.{ext}" for kind in MESSAGES for ext in ("txt", "md")}
    assert {p.name for p in GOLDEN.iterdir()} == expected


# ---------------------------------------------------------------------------
# The properties the golden files show, one at a time


def test_titles_say_what_is_wrong_in_words_and_units() -> None:
    assert text.title(message("down")) == "db is DOWN on unraid: connection refused"
    assert (
        text.title(message("firing-critical")) == "api latency 12.3 s > 10 s (critical) on unraid"
    )
    assert text.title(message("firing-warning")) == "host disk / 86.2 % > 85 % (warning) on unraid"
    assert text.title(message("resolved")) == "RESOLVED db is up again after 1m27s on unraid"


def test_an_unknown_names_its_reason() -> None:
    assert text.title(message("unknown")) == (
        "api-metrics error rate is UNKNOWN on unraid: no requests http_requests_total on the page"
    )


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("latency_seconds", 0.00980668, "9.81 ms"),
        ("latency_seconds", 0.5, "500 ms"),
        ("latency_seconds", 12.34, "12.3 s"),
        ("latency_p99_seconds", 1.0, "1 s"),
        ("job_age_seconds", 93_600, "1d2h"),
        ("backup_size_bytes", 3 * 1024**3, "3 GiB"),
        ("cpu_percent", 91.456, "91.5 %"),
        ("disk_percent:/var", 100.0, "100 %"),
        ("cert_expiry_days", 1.0, "1 day"),
        ("cert_expiry_days", 12.5, "12.5 days"),
        ("health_status", 1.0, "degraded"),
        ("health_status", 2.0, "unhealthy"),
        ("container_health", 1.0, "starting"),
        ("running", 0.0, "not running"),
        ("status_code", 503.0, "HTTP 503"),
        ("restarts", 3.0, "3"),
        ("queue_depth", 1234.4, "1234"),
        ("error_rate_percent", None, "no value"),
        ("cpu_percent", float("nan"), "NaN"),
    ],
)
def test_values_carry_units_by_metric(metric: str, value: float | None, shown: str) -> None:
    assert text.reading(metric, value) == shown


def test_a_value_below_its_line_is_shown_below_it() -> None:
    expiring = message("repeat")
    assert text.title(expiring).startswith("web certificate expires in 5.4 days < 7 days (critical")


def test_the_status_page_link_is_there_only_when_external_url_is_set() -> None:
    shown = message("down")
    assert "status page: https://vigil.example.net/?target=db#target-db" in text.body(
        shown, page_url=PAGE, markdown=False
    )
    assert "status page" not in text.body(shown, markdown=False)
    assert (
        text.row_link("http://h:9469", "web/app 1")
        == "http://h:9469/?target=web%2Fapp%201#target-web%2Fapp%201"
    )


def test_a_group_title_counts_by_kind_and_names_targets_once() -> None:
    assert text.title(message("grouped")) == (
        "5 alerts on unraid (2 critical, 2 warning, 1 resolved): db, api, host and 2 more"
    )


def test_a_title_names_the_host_the_alert_was_announced_from() -> None:
    """An alert keeps the identity it was announced with; the notifier's own instance
    names only a message that carries none."""
    elsewhere = Notification("n", T0, (alert_event(since=T0, identity=Identity("nas")),))
    assert text.title(elsewhere, "unraid") == "covabot is DOWN on nas"
    # Announced by a vigild from before fleet identity: no origin at all.
    bare = Notification("n", T0, (dataclasses.replace(alert_event(since=T0), origin=()),))
    assert text.title(bare, "unraid") == "covabot is DOWN on unraid"


def test_webhook_and_pagerduty_speak_as_the_title_does() -> None:
    shown = message("firing-critical")
    [alert] = alertmanager_payload(shown, "hook", "http://127.0.0.1:9469", PAGE)["alerts"]
    assert alert["annotations"]["summary"] == text.title(shown)
    # Without "ago": Alertmanager shows annotations again long after they were sent.
    assert alert["annotations"]["description"] == (
        "target api · https://api.example.net/health on unraid\n"
        "since 2024-05-01 12:03:04 UTC\n"
        "runbook: https://wiki.example/api-latency\n"
        "status page: https://vigil.example.net/?target=api#target-api"
    )
    # The numbers stay plain numbers, as Alertmanager's receivers parse them.
    assert (alert["annotations"]["value"], alert["annotations"]["threshold"]) == ("12.34", "10")
    options = PagerDutyOptions(routing_key="k" * 32)
    [trigger] = pagerduty_events(shown, options, "http://127.0.0.1:9469", "unraid", PAGE)
    assert trigger["payload"]["summary"] == text.title(shown)
    assert {
        "href": "https://vigil.example.net/?target=api#target-api",
        "text": "Status page",
    } in trigger["links"]


# ---------------------------------------------------------------------------
# Each kind sent for real through apprise


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def apprise_notifier(session: aiohttp.ClientSession, url: str) -> AppriseNotifier:
    options = AppriseNotifier.Options(url=url)
    config = NotifierConfig.model_validate({"name": "phone", "options": options})
    context = base.NotifierContext(
        session=session,
        external_url="http://127.0.0.1:9469",
        redact=lambda s: s,
        instance="unraid",
        page_url=PAGE,
    )
    return AppriseNotifier(config, context)


@pytest.mark.parametrize("kind", MESSAGES)
async def test_apprise_json_delivers_each_kind_as_plain_text(
    receiver: Receiver, session: aiohttp.ClientSession, kind: str
) -> None:
    notifier = apprise_notifier(session, f"json://127.0.0.1:{receiver.port}/apprise")
    await notifier.send(message(kind))
    [request] = await receiver.wait_for(1)
    title, _, body = golden(f"{kind}.txt", rendered(kind, markdown=False)).partition("\n\n")
    assert request.json["title"] == title
    assert request.json["message"] == body.removesuffix("\n")
    assert request.json["type"] == NOTIFY_TYPES[kind] == notify_type(message(kind))


async def test_apprise_sends_markdown_where_the_service_takes_it(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    url = f"json://127.0.0.1:{receiver.port}/apprise?format=markdown"
    await apprise_notifier(session, url).send(message("grouped"))
    [request] = await receiver.wait_for(1)
    _, _, body = golden("grouped.md", rendered("grouped", markdown=True)).partition("\n\n")
    assert request.json["message"] == body.removesuffix("\n")


async def test_apprise_converts_markdown_for_a_service_that_takes_html(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    url = f"json://127.0.0.1:{receiver.port}/apprise?format=html"
    await apprise_notifier(session, url).send(message("down"))
    [request] = await receiver.wait_for(1)
    assert "<code>db</code>" in request.json["message"]
    assert '<a href="https://vigil.example.net/?target=db#target-db">' in request.json["message"]


def test_discord_is_sent_as_markdown_so_it_gets_a_coloured_embed(
    session: aiohttp.ClientSession,
) -> None:
    """Discord renders markdown, and apprise colours its embed by notify type only in
    markdown mode; its own default is plain text. A URL's own ``format=`` stands."""
    import apprise

    chosen = apprise_notifier(session, "discord://1234/abcd")
    assert chosen._build()[0].notify_format == apprise.NotifyFormat.MARKDOWN
    assert chosen._markdown
    kept = apprise_notifier(session, "discord://1234/abcd?format=text")
    assert kept._build()[0].notify_format == apprise.NotifyFormat.TEXT
    assert not kept._markdown
