"""The ``alertmanager`` notifier: the postableAlerts body, and delivery to every peer
(real receivers standing in for them), nothing mocked. Real Alertmanagers: tests/system."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from am_notifier import EXTERNAL, INTERVAL, NOW, SECRET, T0, event, note, notifier
from pydantic import ValidationError
from receivers import Receiver, Receivers
from targets import closed_port

from vigild.alerting.notifiers import base
from vigild.alerting.notifiers.alertmanager import (
    KEEPALIVE_INTERVALS,
    AlertmanagerNotifier,
    AlertmanagerOptions,
    postable_alerts,
)
from vigild.assembly import load
from vigild.config import ConfigError
from vigild.model import AlertEvent, EventKind, Severity
from vigild.model import rfc3339 as stamp
from vigild.testing import TEST_HOST as HOST

# Alertmanager's API v2 postableAlert: every field it defines, and the ones it requires.
POSTABLE_FIELDS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def alerts(*events: AlertEvent, **kwargs: Any) -> list[dict[str, Any]]:
    return postable_alerts(note(*events), EXTERNAL, now=NOW, interval=INTERVAL, **kwargs)


def severities(posted: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["labels"]["severity"], a["endsAt"]) for a in posted]


AHEAD = stamp(NOW + KEEPALIVE_INTERVALS * INTERVAL)


# ---------------------------------------------------------------------------
# The body


def test_firing_alert_field_by_field() -> None:
    alert = event(
        runbook="https://wiki.example/cpu",
        labels=(("env", "prod"),),
        note="backups running",
    )
    assert alerts(alert) == [
        {
            "labels": {
                "env": "prod",
                "instance": "testhost",
                "alertname": "cpu_percent",
                "target": "covabot",
                "metric": "cpu_percent",
                "severity": "critical",
            },
            "annotations": {
                "summary": "covabot CPU 91.5 % > 80 % (critical) on testhost: backups running",
                "value": "91.5",
                "threshold": "80",
                "runbook_url": "https://wiki.example/cpu",
                "description": "backups running\ntarget covabot on testhost\n"
                "since 2024-05-01 12:03:04 UTC\nrunbook: https://wiki.example/cpu",
            },
            "startsAt": "2024-05-01T12:03:04Z",
            "endsAt": stamp(NOW + 4 * INTERVAL),
            "generatorURL": "http://127.0.0.1:9469/api/status",
        }
    ]


def test_repeat_is_the_firing_alert_again_with_a_later_end() -> None:
    [first] = alerts(event())
    [again] = postable_alerts(
        note(event(kind="repeat")), EXTERNAL, now=NOW + INTERVAL, interval=INTERVAL
    )
    assert again["labels"] == first["labels"]
    assert again["annotations"] == first["annotations"]  # a keep-alive, not news
    assert again["startsAt"] == first["startsAt"]
    assert again["endsAt"] == stamp(NOW + INTERVAL + 4 * INTERVAL)


def test_resolution_ends_the_alert_when_it_ended() -> None:
    [done] = alerts(event(kind="resolved", ended=T0 + 90.5))
    assert done["endsAt"] == "2024-05-01T12:04:34.5Z"
    assert done["startsAt"] == "2024-05-01T12:03:04Z"
    assert done["labels"]["severity"] == "critical"
    assert done["annotations"]["summary"].endswith("after 1m30s on testhost")
    assert "(1m30s, was critical)" in done["annotations"]["description"]
    [now] = alerts(event(kind="resolved"))
    assert now["endsAt"] == stamp(NOW)


@pytest.mark.parametrize(
    ("kind", "severity", "previous"),
    [
        ("escalated", Severity.CRITICAL, Severity.WARNING),
        ("deescalated", Severity.WARNING, Severity.CRITICAL),
        ("escalated", Severity.CRITICAL, Severity.UNKNOWN),
    ],
)
def test_a_severity_change_ends_the_old_severity_alert(
    kind: EventKind, severity: Severity, previous: Severity
) -> None:
    old, new = alerts(event(kind=kind, severity=severity, previous=previous))
    assert severities([old, new]) == [(previous.label, stamp(NOW)), (severity.label, AHEAD)]
    assert {k: v for k, v in old["labels"].items() if k != "severity"} == {
        k: v for k, v in new["labels"].items() if k != "severity"
    }
    assert old["startsAt"] == new["startsAt"]
    # The ended alert says why it ended; the new one reads as firing, as its repeats will.
    change = "up" if kind == "escalated" else "down"
    assert f"({severity.label}, {change} from {previous.label})" in old["annotations"]["summary"]
    assert f"({severity.label})" in new["annotations"]["summary"]


def test_resolution_ends_the_severity_last_posted_not_the_highest() -> None:
    resolved = event(kind="resolved", severity=Severity.CRITICAL, ended=NOW)
    [default] = alerts(resolved)
    assert default["labels"]["severity"] == "critical"
    known = {HOST.fingerprint("covabot", "cpu_percent"): Severity.WARNING}
    [after_deescalation] = alerts(resolved, posted=known)
    assert after_deescalation["labels"]["severity"] == "warning"
    told = event(kind="resolved", previous=Severity.UNKNOWN, ended=NOW)
    [named] = alerts(told)
    assert named["labels"]["severity"] == "unknown"  # the level the engine last told
    both = alerts(told, posted=known)
    assert severities(both) == [("warning", stamp(NOW)), ("unknown", stamp(NOW))]


def test_firing_after_flapping_at_another_level_ends_the_level_posted() -> None:
    # Flapping ends with "firing" and no previous: what this process posted is the guide.
    known = {HOST.fingerprint("covabot", "cpu_percent"): Severity.WARNING}
    old, new = alerts(event(), posted=known)
    assert severities([old, new]) == [("warning", stamp(NOW)), ("critical", AHEAD)]
    [same] = alerts(event(kind="repeat", previous=Severity.CRITICAL), posted={})
    assert severities([same]) == [("critical", AHEAD)]


def test_flapping_alert_is_kept_alive_like_any_other() -> None:
    # The engine repeats flapping alerts to keep-alive backends (test_engine has that).
    [flapping] = alerts(event(kind="flapping"))
    assert flapping["endsAt"] == AHEAD
    assert flapping["annotations"]["summary"].startswith("FLAPPING covabot CPU")


def test_labels_are_valid_for_alertmanager_and_identity_wins() -> None:
    [alert] = alerts(
        event(
            labels=(("team-name", "core"), ("1st", "a"), ("empty", ""), ("severity", "low")),
        )
    )
    assert alert["labels"] == {
        "team_name": "core",
        "_1st": "a",
        "instance": "testhost",
        "alertname": "cpu_percent",
        "target": "covabot",
        "metric": "cpu_percent",
        "severity": "critical",
    }


def test_qualified_metric_keeps_its_series_in_the_metric_label() -> None:
    disk = event(target="host", metric="disk_percent:/var", severity=Severity.WARNING)
    [alert] = alerts(disk)
    labels = alert["labels"]
    assert (labels["alertname"], labels["metric"]) == ("disk_percent", "disk_percent:/var")


def test_every_alert_has_only_postable_fields() -> None:
    posted = alerts(
        event(),
        event(kind="escalated", previous=Severity.WARNING),
        event(target="db", kind="resolved", ended=NOW),
        event(target="x", kind="flapping"),
        event(target="vigild", metric="test", kind="test", severity=Severity.WARNING),
    )
    assert len(posted) == 6
    for alert in posted:
        assert alert.keys() == POSTABLE_FIELDS
        assert all(isinstance(v, str) for v in alert["labels"].values())
        assert all(isinstance(v, str) for v in alert["annotations"].values())
        assert datetime.fromisoformat(alert["endsAt"]) >= datetime.fromisoformat(alert["startsAt"])
    json.dumps(posted, allow_nan=False)


# ---------------------------------------------------------------------------
# Options


def test_options_keep_the_peers_and_drop_empty_ones() -> None:
    options = AlertmanagerOptions.model_validate(
        {"urls": [" http://am-1:9093/ ", "", "http://am-2:9093/api/v2/alerts", "https://x/am"]}
    )
    assert options.urls == ["http://am-1:9093", "http://am-2:9093", "https://x/am"]
    assert not AlertmanagerNotifier.is_disabled(options)
    unset = AlertmanagerOptions.model_validate({"urls": ["", "  "]})
    assert AlertmanagerNotifier.is_disabled(unset)


@pytest.mark.parametrize(
    "keys",
    [
        {"urls": []},
        {"urls": ["am-1:9093"]},
        {"urls": ["ftp://am-1"]},
        {"url": "http://am-1:9093"},
        {"urls": ["http://am"], "basic_auth": {"username": "u"}},
    ],
)
def test_options_reject_bad_keys(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertmanagerOptions.model_validate(keys)


def test_registered_with_keepalive() -> None:
    assert base.backend("alertmanager") is AlertmanagerNotifier
    assert AlertmanagerNotifier.keepalive is True
    auth = {"username": "vigild", "password": SECRET}
    options = AlertmanagerOptions.model_validate({"urls": ["http://am"], "basic_auth": auth})
    assert SECRET not in repr(options)


# ---------------------------------------------------------------------------
# Delivery to receivers standing in for peers


@pytest.fixture
async def second(receivers: Receivers) -> Receiver:
    return await receivers.start(Receiver)


async def test_posts_the_alerts_to_every_peer(
    receiver: Receiver, second: Receiver, session: aiohttp.ClientSession
) -> None:
    am = notifier(
        session,
        [receiver.url("/am"), second.url("/")],
        headers={"X-Scope-OrgID": "home"},
        basic_auth={"username": "vigild", "password": SECRET},
    )
    before = time.time() - 0.001  # endsAt has millisecond precision
    await am.send(note(event(), event(target="db", kind="resolved", ended=NOW)))
    [one], [two] = await receiver.wait_for(1), await second.wait_for(1)
    assert (one.method, one.path, two.path) == ("POST", "/am/api/v2/alerts", "/api/v2/alerts")
    assert one.body == two.body
    assert one.header("Content-Type") == "application/json"
    assert one.header("X-Scope-OrgID") == "home"
    assert one.header("Authorization") == "Basic dmlnaWxkOnMzY3IzdC1wYTU1"  # vigild:s3cr3t-pa55
    firing, resolved = one.json
    assert firing["labels"]["target"] == "covabot"
    ends = datetime.fromisoformat(firing["endsAt"]).timestamp()
    assert before + 4 * INTERVAL <= ends <= time.time() + 4 * INTERVAL
    assert resolved["endsAt"] == stamp(NOW)


async def test_one_peer_accepting_is_a_delivery_and_the_other_is_logged_once(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    am = notifier(session, [down, receiver.url("/am")])
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            await am.send(note(event(kind="repeat")))
    assert len(receiver.requests) == 3
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["peer"] == down
    assert warnings[0]["error"] == "cannot connect: Connection refused"


@pytest.mark.parametrize(
    ("statuses", "retryable"),
    [((503, 503), True), ((400, 400), False), ((400, 429), True), ((401, 404), False)],
)
async def test_when_no_peer_accepts_the_error_names_each(
    receiver: Receiver,
    second: Receiver,
    session: aiohttp.ClientSession,
    statuses: tuple[int, int],
    retryable: bool,
) -> None:
    first, other = statuses
    receiver.status, second.status = first, other
    receiver.response_body = '"bad alert: start time must be before end time"'
    am = notifier(session, [receiver.url("/am"), second.url("/am")])
    with pytest.raises(base.DeliveryError) as caught:
        await am.send(note(event()))
    assert caught.value.retryable is retryable
    assert str(caught.value) == (
        "alertmanager: no peer accepted the alerts: "
        f"http://127.0.0.1:{receiver.port}: answered {first}: "
        "bad alert: start time must be before end time; "
        f"http://127.0.0.1:{second.port}: answered {other}: ok"
    )


async def test_errors_never_show_credentials_in_a_url(session: aiohttp.ClientSession) -> None:
    port = closed_port()
    am = notifier(session, [f"http://vigild:{SECRET}@127.0.0.1:{port}/am"])
    with pytest.raises(base.DeliveryError) as caught:
        await am.send(note(event()))
    assert caught.value.retryable
    assert SECRET not in str(caught.value)
    assert f"http://127.0.0.1:{port}: cannot connect" in str(caught.value)


async def test_a_hanging_peer_does_not_hold_back_the_others(
    receiver: Receiver, second: Receiver, session: aiohttp.ClientSession
) -> None:
    second.delay = 5.0
    am = notifier(session, [receiver.url(), second.url()], timeout=0.5)
    started = time.monotonic()
    # The caller's bound (the delivery timeout) is not hit: the peer's own bound is shorter.
    await asyncio.wait_for(am.send(note(event())), 0.5)
    assert time.monotonic() - started < 0.5
    assert len(receiver.requests) == 1 and len(second.requests) == 1


async def test_resolution_after_deescalation_ends_the_warning_alert(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    am = notifier(session, [receiver.url()])
    await am.send(note(event(severity=Severity.WARNING, value=77.0, threshold=75.0)))
    await am.send(note(event(kind="escalated", previous=Severity.WARNING)))
    await am.send(
        note(event(kind="deescalated", severity=Severity.WARNING, previous=Severity.CRITICAL))
    )
    await am.send(note(event(kind="resolved", severity=Severity.CRITICAL, ended=NOW)))
    now = time.time()
    posted = [[(a["labels"]["severity"], ended(a, now)) for a in b] for b in receiver.bodies]
    assert posted == [
        [("warning", False)],
        [("warning", True), ("critical", False)],
        [("critical", True), ("warning", False)],
        [("warning", True)],  # not the critical one, already ended at the de-escalation
    ]


def ended(alert: dict[str, Any], now: float) -> bool:
    return datetime.fromisoformat(alert["endsAt"]).timestamp() <= now


# ---------------------------------------------------------------------------
# A real Alertmanager


# ---------------------------------------------------------------------------
# A real vigild: keep-alive, then the HA cluster


# ---------------------------------------------------------------------------
# In the config file

TARGET = """
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/health"
"""


def test_config_file_takes_alertmanager_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AM_PASSWORD", SECRET)
    monkeypatch.delenv("AM_UNSET", raising=False)
    path = tmp_path / "thresholds.toml"
    path.write_text(
        TARGET
        + """
[[notifiers]]
name = "am"
type = "alertmanager"
urls = ["http://am-1:9093", "${AM_UNSET:-}"]
basic_auth = { username = "vigild", password = "${AM_PASSWORD}" }

[[notifiers]]
name = "spare"
type = "alertmanager"
urls = ["${AM_UNSET:-}"]
"""
    )
    config = load(path)
    [am] = config.notifiers
    assert isinstance(am.options, AlertmanagerOptions)
    assert am.options.urls == ["http://am-1:9093"]
    assert config.disabled_notifiers == ("spare",)
    assert config.redact(SECRET) == "***"


def test_config_file_rejects_bad_alertmanager_keys(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text(
        TARGET
        + """
[[notifiers]]
name = "none"
type = "alertmanager"
urls = []

[[notifiers]]
name = "typo"
type = "alertmanager"
url = "http://am-1:9093"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    found = "\n".join(caught.value.problems)
    assert 'notifiers[0] "none".urls: ' in found
    assert 'notifiers[1] "typo".url: unknown key; did you mean "urls"?' in found
    assert 'notifiers[1] "typo".urls: required key missing' in found


async def test_test_message_is_a_firing_alert_that_ends_by_itself(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    test = event(target="vigild", metric="test", kind="test", severity=Severity.WARNING)
    await notifier(session, [receiver.url()], interval=30.0).send(note(test))
    [alert] = receiver.bodies[0]
    assert alert["labels"] == {
        "instance": "testhost",
        "alertname": "test",
        "target": "vigild",
        "metric": "test",
        "severity": "warning",
    }
    assert alert["annotations"]["summary"].startswith("TEST message from vigild")
    ends = datetime.fromisoformat(alert["endsAt"]).timestamp()
    assert time.time() < ends <= time.time() + 4 * 30.0
