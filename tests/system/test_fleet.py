"""A fleet: hosts that name themselves, into one Alertmanager cluster and one PagerDuty service.

Real parts only: two clustered Alertmanagers loading docs/alertmanager/fleet.yml,
three ``vigild run`` processes (an HA pair for host "a", a single vigild for
host "b"), real targets taken down and up. (The upgrade from a state file written
before fleet identity: tests/unit/daemon/test_runtime.py.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from alertmanager import PEER_TIMEOUT, Alertmanager, StartAlertmanagers, running_alertmanagers
from process import Daemon, environment, until
from receivers import PagerDutyReceiver, Receiver, Receivers
from targets import TargetServer, TargetServerFactory, closed_port

from vigild.model import fingerprint

REPO = Path(__file__).resolve().parents[2]
FLEET_YML = REPO / "docs" / "alertmanager" / "fleet.yml"
LABELS = {"env": "prod"}


def amtool() -> str:
    found = shutil.which("amtool")
    if found is None:
        pytest.fail("amtool is not installed: run scripts/test (prometheus-alertmanager ships it)")
    return found


async def test_the_documented_alertmanager_config_passes_amtool() -> None:
    process = await asyncio.create_subprocess_exec(
        amtool(),
        "check-config",
        str(FLEET_YML),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert "SUCCESS" in output.decode()


# ---------------------------------------------------------------------------
# Three vigilds, two hosts, one Alertmanager cluster and one PagerDuty service

INTERVAL_SECONDS = 1.0
INTERVAL = f"{INTERVAL_SECONDS:g}s"
GROUP_INTERVAL = 3.0  # over peers x peer-timeout (2 x 1 s), as the comment in fleet_yaml says
QUIET = 2 * PEER_TIMEOUT + 0.5
"""Long enough for the second peer's stale copy, had gossip not stopped it."""


@pytest.fixture
async def alertmanagers(tmp_path: Path) -> AsyncIterator[StartAlertmanagers]:
    async with running_alertmanagers(tmp_path) as start:
        yield start


def fleet_yaml(receiver: Receiver) -> str:
    """docs/alertmanager/fleet.yml as documented, with local receivers and test timings."""
    config = yaml.safe_load(FLEET_YML.read_text())
    # group_interval over peers x peer-timeout: the second peer's flush then always
    # finds the first one's notification log (see DESIGN.md).
    config["route"].update(
        group_wait="1s", group_interval=f"{GROUP_INTERVAL:g}s", repeat_interval="1h"
    )
    config["receivers"] = [
        {"name": name, "webhook_configs": [{"url": receiver.url(f"/{name}")}]}
        for name in ("slack", "pagerduty")
    ]
    return str(yaml.safe_dump(config))


async def start_vigild(
    tmp_path: Path,
    name: str,
    *,
    instance: str,
    replica: str | None,
    target: TargetServer,
    peers: list[Alertmanager],
    pd: PagerDutyReceiver,
) -> Daemon:
    listen = f"127.0.0.1:{closed_port()}"
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "thresholds.toml"
    path.write_text(
        f"""
[daemon]
interval = "{INTERVAL}"
listen = "{listen}"
state_path = "{directory / "state.db"}"
instance = "{instance}"
external_labels = {{ env = "prod" }}
{f'replica = "{replica}"' if replica else ""}

[alerting]
group_wait = "0s"

[[targets]]
name = "db"
type = "http"
url = "{target.url()}"

[[notifiers]]
name = "am"
type = "alertmanager"
urls = {json.dumps([peer.url for peer in peers])}

[[notifiers]]
name = "oncall"
type = "pagerduty"
routing_key = "fleet-key"
events_url = "{pd.url("/v2/enqueue")}"
min_severity = "critical"
"""
    )
    daemon = await Daemon(path, listen, environment()).start()
    await daemon.wait_ready()
    return daemon


def messages(receiver: Receiver, name: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """What one receiver behind the cluster got: (status, host, [(host, status) of each alert])."""
    return [
        (
            r.json["status"],
            r.json["groupLabels"]["instance"],
            [(a["labels"]["instance"], a["status"]) for a in r.json["alerts"]],
        )
        for r in receiver.requests
        if r.path == f"/{name}"
    ]


async def both_hold(peers: list[Alertmanager], wanted: dict[str, str]) -> None:
    """Each peer holds exactly these hosts' alerts, active."""
    for peer in peers:
        held = {a["labels"]["instance"]: a["status"]["state"] for a in await peer.alerts()}
        assert held == wanted, (peer.name, held)


async def test_three_vigilds_two_hosts_one_page_per_change_per_host(
    tmp_path: Path,
    alertmanagers: StartAlertmanagers,
    receivers: Receivers,
    target_server_factory: TargetServerFactory,
) -> None:
    receiver = await receivers.start(Receiver)
    pd = await receivers.start(PagerDutyReceiver)
    db_a, db_b = target_server_factory(), target_server_factory()
    peers = await alertmanagers(2, yaml=fleet_yaml(receiver))
    replica_a, replica_b, host_b = await asyncio.gather(
        *(
            start_vigild(tmp_path, name, instance=i, replica=r, target=t, peers=peers, pd=pd)
            for name, i, r, t in (
                ("a1", "a", "a", db_a),
                ("a2", "a", "b", db_a),
                ("b", "b", None, db_b),
            )
        )
    )
    key_a, key_b = (fingerprint(host, "db", "up", LABELS) for host in ("a", "b"))

    async def settled(count: int) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """The chat's messages once there are ``count`` and nothing more came."""
        await until(lambda: len(messages(receiver, "slack")) >= count, 15, f"{count} messages")
        await receiver.wait_quiet(QUIET)
        got = messages(receiver, "slack")
        # Critical: the same to PagerDuty through the cluster (docs' route, continue).
        assert messages(receiver, "pagerduty") == got
        return got

    # Host a's db goes down: both replicas see it, the cluster sends one message.
    db_a.status = 503
    assert await settled(1) == [("firing", "a", [("a", "firing")])]
    [first] = [r.json for r in receiver.requests if r.path == "/slack"]
    assert first["alerts"][0]["labels"] == {
        "alertname": "up",
        "target": "db",
        "metric": "up",
        "severity": "critical",
        "instance": "a",
        "env": "prod",
    }

    # Host b's db, a target of the same name, goes down too: its own message.
    db_b.status = 503
    assert (await settled(2))[1:] == [("firing", "b", [("b", "firing")])]
    await both_hold(peers, {"a": "active", "b": "active"})

    # One replica of the pair dies mid-incident: the other keeps the alert alive,
    # past the dead one's last endsAt (four intervals) and a group_interval.
    await replica_b.kill()
    assert len(await settled(2)) == 2
    await receiver.wait_quiet(4 * INTERVAL_SECONDS + GROUP_INTERVAL - QUIET + 0.5)
    assert len(messages(receiver, "slack")) == 2
    await both_hold(peers, {"a": "active", "b": "active"})

    # Host a recovers: resolved for a alone; b's alert is untouched.
    db_a.status = 200
    assert (await settled(3))[2:] == [("resolved", "a", [("a", "resolved")])]
    await both_hold(peers, {"b": "active"})
    opened, still_open = pd.incidents()
    assert (opened, still_open) == ([key_a, key_b], {key_b})

    db_b.status = 200
    assert (await settled(4))[3:] == [("resolved", "b", [("b", "resolved")])]
    await both_hold(peers, {})

    # PagerDuty, from the vigilds themselves: one incident per host, resolved per host.
    opened, still_open = pd.incidents()
    assert (opened, still_open) == ([key_a, key_b], set())
    sources = {(b["dedup_key"], b["payload"]["source"]) for b in pd.bodies if "payload" in b}
    assert sources == {(key_a, "a"), (key_b, "b")}
    for daemon in (replica_a, host_b):
        assert await daemon.stop() == 0
        assert not daemon.events("notification retry")
