"""The runtime in this process, driven cycle by cycle with a fake clock, nothing mocked:
an upgrade from a state file written before fleet identity, and a restarted service whose
series are absent until used."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from docker_api import SERVICE, FakeEngine, GiB
from go_page import go_page, write_config
from receivers import Receiver
from targets import TargetServer, closed_port

from vigild.assembly import load
from vigild.daemon.runtime import Runtime
from vigild.model import fingerprint
from vigild.probes.container import RETIRE_AFTER
from vigild.testing import FakeClock

# ---------------------------------------------------------------------------
# Upgrade: a state file from before fleet identity

LABELS = {"env": "prod"}
FIXTURE = Path(__file__).resolve().parents[2] / "data" / "state-before-fleet-identity.db"
"""Written by ``vigild --once`` at 620f37b: target ``db`` refused connections and the
notifiers hook (webhook), pager (pagerduty) and am (alertmanager) were all told."""
OLD_FINGERPRINT = "eddfe226b390fb08"
OLD_LABELS = {"alertname": "up", "target": "db", "metric": "up", "severity": "critical"}
TOLD_AT = 1_796_299_586.2533808
"""When the fixture's notifiers heard of the alert."""


def test_the_fixture_holds_one_open_alert_announced_the_old_way() -> None:
    db = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
    try:
        [(key, target, metric, state)] = db.execute(
            "SELECT fingerprint, target, metric, state FROM alerts"
        ).fetchall()
    finally:
        db.close()
    assert (key, target, metric) == (OLD_FINGERPRINT, "db", "up")
    assert json.loads(state)["told"] == {n: ["critical", TOLD_AT] for n in ("hook", "pager", "am")}


async def test_an_upgrade_sends_nothing_spurious_and_resolves_under_the_old_identity(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    shutil.copy(FIXTURE, state)
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
state_path = "{state}"
instance = "nas"
external_labels = {{ env = "prod" }}

[[targets]]
name = "db"
type = "http"
url = "{target_server.url()}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"

[[notifiers]]
name = "pager"
type = "pagerduty"
routing_key = "fixture-key"
events_url = "{receiver.url("/pager")}"

[[notifiers]]
name = "am"
type = "alertmanager"
urls = ["{receiver.url("/am")}"]
"""
    )
    clock = FakeClock(TOLD_AT + 60)
    runtime = await Runtime(load(path), clock=clock).open()

    async def cycle() -> dict[str, list[Any]]:
        receiver.clear()
        await runtime.run_cycle()
        await runtime.delivery.deliver_due(5.0)
        by_path: dict[str, list[Any]] = {}
        for request in receiver.requests:
            by_path.setdefault(request.path.split("/")[1], []).append(request.json)
        return by_path

    try:
        # Still down after the upgrade: the same alert, so nothing to say but the
        # Alertmanager keep-alive, with the labels Alertmanager knows it by.
        target_server.status = 503
        sent = await cycle()
        assert sent.keys() == {"am"}
        [[kept]] = sent["am"]
        assert kept["labels"] == OLD_LABELS

        # It recovers: resolved under the fingerprint, dedup_key and labels it fired with.
        target_server.status = 200
        clock.advance(30)
        sent = await cycle()
        [hook] = sent["hook"]
        [resolved] = hook["alerts"]
        assert (resolved["status"], resolved["fingerprint"]) == ("resolved", OLD_FINGERPRINT)
        assert resolved["labels"] == OLD_LABELS
        [pager] = sent["pager"]
        assert (pager["event_action"], pager["dedup_key"]) == ("resolve", OLD_FINGERPRINT)
        [[ended]] = sent["am"]
        assert ended["labels"] == OLD_LABELS

        # The next outage is a new alert, named the new way.
        target_server.status = 503
        clock.advance(30)
        sent = await cycle()
        new = fingerprint("nas", "db", "up", LABELS)
        [[fired]] = [m["alerts"] for m in sent["hook"]]
        assert (fired["status"], fired["fingerprint"]) == ("firing", new)
        assert fired["labels"] == {**OLD_LABELS, "instance": "nas", "env": "prod"}
        [pager] = sent["pager"]
        assert (pager["event_action"], pager["dedup_key"]) == ("trigger", new)
        assert pager["payload"]["source"] == "nas"
        [[posted]] = sent["am"]
        assert posted["labels"] == fired["labels"]
        assert [row.fingerprint for row in runtime.db.alerts.load()] == [new]
    finally:
        await runtime.close(drain=0.0)


# ---------------------------------------------------------------------------
# A restarted service: lazily created series are absent, never UNKNOWN


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def cycles(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver, pages: list[str], **keys: str
) -> list[dict[str, Any]]:
    """One cycle per page, 10 s apart by the clock, through a real Runtime; the webhook
    payloads the receiver got."""
    clock = Clock()
    runtime = await Runtime(
        load(write_config(tmp_path, target_server.url("/metrics"), receiver, **keys)), clock=clock
    ).open()
    try:
        for body in pages:
            target_server.body = body
            await runtime.run_cycle()
            await runtime.delivery.deliver_due(5.0)
            clock.now += 10
    finally:
        await runtime.close(drain=0.0)
    return [b for b in receiver.bodies if b]


async def test_an_open_latency_alert_resolves_after_recover_for_once_traffic_stops(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    slow = go_page({"/api": (100, 0, [0, 0, 100, 100])})  # every request between 0.5 and 1 s
    pages = [
        go_page({"/api": (0, 0, [0, 0, 0, 0])}),
        slow,  # p95 0.975 s > 0.5: warning
        slow,  # no traffic: absent for 10 s
        slow,  # 20 s
        slow,  # 30 s = recover_for: resolved
        slow,
    ]
    bodies = await cycles(tmp_path, target_server, receiver, pages)
    alerts = [(a["labels"]["alertname"], a["status"]) for body in bodies for a in body["alerts"]]
    assert alerts == [("latency_p95_seconds", "firing"), ("latency_p95_seconds", "resolved")]


async def test_a_misspelt_name_stays_unknown_and_pages_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    pages = [go_page({"/api": (100 * i, 0, [100 * i] * 4)}) for i in range(5)]
    bodies = await cycles(
        tmp_path, target_server, receiver, pages, requests='app_requestz_total{handler="/api"}'
    )
    alerts = [a for body in bodies for a in body["alerts"]]
    assert [(a["labels"]["alertname"], a["labels"]["severity"]) for a in alerts] == [
        ("error_rate_percent", "unknown")
    ]
    assert "no metric app_requestz_total on the page" in alerts[0]["annotations"]["description"]


async def test_a_label_selected_container_gone_for_good_resolves_once_saying_why(
    tmp_path: Path, docker_engine: FakeEngine, receiver: Receiver
) -> None:
    for name in ("b1", "b2"):
        docker_engine.add(name, labels={SERVICE: "backend"}, mem_limit=GiB)
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n[alerting]\ngroup_wait = "0s"\n'
        f'[[targets]]\nname = "backend"\ntype = "container"\nengine = "{docker_engine.url}"\n'
        f'container_labels = {{ "{SERVICE}" = "backend" }}\n'
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url()}"\n'
    )
    clock = FakeClock()
    runtime = await Runtime(load(path), clock=clock).open()
    try:
        await runtime.run_cycle()
        docker_engine.remove("b2")
        for step in (30.0, RETIRE_AFTER, 30.0):  # found gone, retired, then nothing
            clock.advance(step)
            await runtime.run_cycle()
            await runtime.delivery.deliver_due(5.0)
        assert "backend/b2" not in runtime.board.latest
    finally:
        await runtime.close(drain=0.0)
    sent = [
        (a["labels"]["target"], a["status"], a["annotations"]["description"].split("\n")[0])
        for body in receiver.bodies
        for a in body["alerts"]
    ]
    assert sent == [
        ("backend/b2", "firing", "no such container"),
        ("backend/b2", "resolved", "container removed"),
    ]


async def test_a_target_a_reload_removes_resolves_with_its_labels_and_address(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "vigild.toml"
    head = (
        f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n[alerting]\ngroup_wait = "0s"\n'
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url()}"\n'
    )
    path.write_text(
        head + '[[targets]]\nname = "api"\ntype = "tcp"\nhost = "127.0.0.1"\n'
        f'port = {closed_port()}\nlabels = {{ team = "shop" }}\n'
    )
    runtime = await Runtime(load(path), clock=FakeClock()).open()
    try:
        await runtime.run_cycle()
        await runtime.delivery.deliver_due(5.0)
        path.write_text(head)
        await runtime.retire(runtime.swap(runtime.prepare(load(path))))  # starts delivery
        await receiver.wait_for(2)
    finally:
        await runtime.close(drain=0.0)
    sent = [(a["status"], a["labels"].get("team")) for b in receiver.bodies for a in b["alerts"]]
    assert sent == [("firing", "shop"), ("resolved", "shop")]
    resolved = receiver.bodies[-1]["alerts"][0]["annotations"]["description"]
    assert "127.0.0.1:" in resolved  # where it was
