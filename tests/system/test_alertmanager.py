"""Real Alertmanagers (Debian's binary) taking vigild's alerts: one, an HA pair, and
``vigild run`` keeping its open alerts alive there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from alertmanager import PEER_TIMEOUT, Alertmanager, StartAlertmanagers, running_alertmanagers
from am_notifier import EXTERNAL, SECRET, T0, event, note, notifier
from process import Daemon, environment
from receivers import Receiver
from targets import TargetServer, closed_port

from vigild.model import Severity


@pytest.fixture
async def alertmanagers(tmp_path: Path) -> AsyncIterator[StartAlertmanagers]:
    """Real Alertmanager processes (tests/alertmanager.py), stopped at teardown."""
    async with running_alertmanagers(tmp_path) as start:
        yield start


ENV_P = (("env", "p"),)
"""A target's labels: part of an Alertmanager alert's identity, like severity."""


async def test_a_real_alertmanager_takes_the_alerts_and_escalation_replaces_the_old_one(
    alertmanagers: StartAlertmanagers, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    [peer] = await alertmanagers(1, route_to=receiver.url("/am"))
    am = notifier(session, [peer.url])
    warning = event(severity=Severity.WARNING, value=77.0, threshold=75.0, labels=ENV_P)
    await am.send(note(warning))
    [held] = await peer.alerts()
    assert held["labels"] == {
        "instance": "testhost",
        "alertname": "cpu_percent",
        "target": "covabot",
        "metric": "cpu_percent",
        "severity": "warning",
        "env": "p",
    }
    assert held["status"]["state"] == "active"
    assert held["annotations"]["value"] == "77"
    assert held["generatorURL"] == EXTERNAL + "/api/status"
    assert datetime.fromisoformat(held["startsAt"]).timestamp() == T0

    await am.send(note(event(kind="escalated", previous=Severity.WARNING, labels=ENV_P)))
    assert [a["labels"]["severity"] for a in await peer.alerts()] == ["critical"]

    await am.send(note(event(kind="resolved", ended=time.time(), labels=ENV_P)))
    assert await peer.alerts() == []


def vigild_config(
    tmp_path: Path, name: str, target: TargetServer, urls: list[str], interval: str
) -> tuple[Path, str]:
    listen = f"127.0.0.1:{closed_port()}"
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "thresholds.toml"
    path.write_text(
        f"""
[daemon]
interval = "{interval}"
listen = "{listen}"
state_path = "{directory / "state.db"}"
instance = "box"
replica = "{name}"

[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"
labels = {{ team = "core" }}

[[notifiers]]
name = "am"
type = "alertmanager"
urls = {json.dumps(urls)}
headers = {{ Authorization = "Bearer ${{AM_TOKEN}}" }}
"""
    )
    return path, listen


ENV = environment(AM_TOKEN=SECRET)


async def start_vigild(
    tmp_path: Path, name: str, target: TargetServer, urls: list[str], interval: str
) -> Daemon:
    path, listen = vigild_config(tmp_path, name, target, urls, interval)
    daemon = await Daemon(path, listen, ENV).start()
    await daemon.wait_ready()
    return daemon


async def test_vigild_keeps_open_alerts_alive_then_resolves_them(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    wall = time.time() - time.monotonic()
    daemon = await start_vigild(tmp_path, "one", target_server, [receiver.url("/am")], "1s")
    target_server.status = 503
    requests = await receiver.wait_for(4, timeout=10)
    assert all(r.path == "/am/api/v2/alerts" for r in requests)
    assert all(r.header("Authorization") == f"Bearer {SECRET}" for r in requests)
    posted = [r.json for r in requests]
    assert all(len(body) == 1 for body in posted)
    first = posted[0][0]
    assert first["labels"] == {
        "team": "core",
        "instance": "box",
        "alertname": "up",
        "target": "api",
        "metric": "up",
        "severity": "critical",
    }
    assert first["annotations"]["summary"].startswith("api is DOWN on box: HTTP 503")
    assert "target api · http://127.0.0.1:" in first["annotations"]["description"]
    ends = []
    for request in requests:
        [alert] = request.json
        assert (alert["labels"], alert["startsAt"]) == (first["labels"], first["startsAt"])
        end = datetime.fromisoformat(alert["endsAt"]).timestamp()
        ahead = end - (request.received_at + wall)
        assert 3.4 < ahead <= 4.05, ahead  # four 1 s intervals ahead, every time
        ends.append(end)
    assert ends == sorted(ends) and len(set(ends)) == len(ends)

    target_server.status = 200
    await receiver.wait_for(len(receiver.requests) + 1)
    await until_quiet(receiver, 1.5)
    last = receiver.requests[-1]
    [resolved] = last.json
    assert resolved["labels"] == first["labels"]
    assert datetime.fromisoformat(resolved["endsAt"]).timestamp() <= last.received_at + wall
    assert await daemon.stop() == 0
    assert not any(SECRET in line for line in daemon.log)


async def until_quiet(receiver: Receiver, period: float, within: float = 5.0) -> None:
    """Wait until nothing arrived for ``period`` seconds (a last repeat may be in flight)."""
    deadline = time.monotonic() + within
    while True:
        count = len(receiver.requests)
        await receiver.wait_quiet(period)
        if len(receiver.requests) == count:
            return
        assert time.monotonic() < deadline, "the receiver never went quiet"


async def test_ha_pair_behind_two_vigilds_notifies_once_per_change(
    tmp_path: Path,
    alertmanagers: StartAlertmanagers,
    receiver: Receiver,
    target_server: TargetServer,
) -> None:
    started = time.monotonic()
    target_server.status = 503
    # group_interval well over peer-timeout: the second peer's delayed flush then always
    # sees the first peer's notification log before it decides (see DESIGN.md).
    peers = await alertmanagers(
        2, route_to=receiver.url("/am"), group_wait="1s", group_interval="2s"
    )
    urls = [peer.url for peer in peers]
    daemons = await asyncio.gather(
        *(start_vigild(tmp_path, name, target_server, urls, "1s") for name in ("a", "b"))
    )

    await receiver.wait_for(1, timeout=15)
    # The outage goes on past peers times peer-timeout: a second copy would have come by now.
    await receiver.wait_quiet(2 * PEER_TIMEOUT + 1.0)
    assert len(receiver.requests) == 1, receiver.bodies
    fired = receiver.requests[0]
    assert fired.json["status"] == "firing"
    [alert] = fired.json["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "team": "core",
        "instance": "box",
        "alertname": "up",
        "target": "api",
        "metric": "up",
        "severity": "critical",
    }
    await both_hold(peers, "active")

    target_server.status = 200
    await receiver.wait_for(2, timeout=10)
    await receiver.wait_quiet(2 * PEER_TIMEOUT + 1.0)
    assert len(receiver.requests) == 2, receiver.bodies
    resolved = receiver.requests[1].json
    assert resolved["status"] == "resolved"
    assert [a["labels"] for a in resolved["alerts"]] == [alert["labels"]]
    await both_hold(peers, None)

    for daemon in daemons:
        assert await daemon.stop() == 0
        assert daemon.events("notification sent")
        assert not daemon.events("notification retry")
    assert time.monotonic() - started < 40


async def both_hold(peers: list[Alertmanager], state: str | None) -> None:
    """Each peer holds the alert in ``state``, or (None) holds no open alert."""
    for peer in peers:
        held = await peer.alerts()
        if state is None:
            assert held == [], (peer.name, held)
        else:
            assert [a["status"]["state"] for a in held] == [state], (peer.name, held)
