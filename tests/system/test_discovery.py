"""Targets from container labels, end to end: ``vigild run`` following the
Engine-API-shaped server of tests/docker_api.py, alerts at a real webhook receiver."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_config import toml_str
from docker_api import SERVICE, EngineFactory, FakeEngine, GiB
from process import Daemon, listen_address, run, start, until, write_config
from receivers import Receiver, Recorded
from targets import TargetServer

INTERVAL = 3.0
ALERTING = {
    "vigild.enable": "true",
    "vigild.thresholds.memory_percent.warning": "40",
    "vigild.thresholds.memory_percent.critical": "50",
    "vigild.thresholds.memory_percent.for": "0s",
    "vigild.labels.team": "shop",
}
"""Labels of a container that pages at its first probe: it uses 90 % of its memory."""


def hungry(**settings: Any) -> dict[str, Any]:
    return {"mem_usage": 9 * GiB // 10, "mem_limit": GiB, **settings}


async def following(
    tmp_path: Path,
    engine: FakeEngine,
    receiver: Receiver,
    retire_after: str,
    interval: float = INTERVAL,
) -> Daemon:
    """``vigild run`` discovering on ``engine``, once it follows the engine's events."""
    listen = listen_address()
    path = write_config(
        tmp_path,
        listen,
        f'interval = "{interval:g}s"\n\n[alerting]\ngroup_wait = "0s"\n\n'
        f"[discovery.containers]\nengine = {toml_str(engine.url)}\n"
        f'retire_after = "{retire_after}"\n\n'
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url("/hook")}"\n',
    )
    daemon = await start(path, listen)
    await engine.streaming()
    return daemon


def alerts(requests: list[Recorded]) -> list[tuple[str, str, str, str]]:
    """(target, metric, status, description) of every alert sent."""
    return [
        (a["labels"]["target"], a["labels"]["metric"], a["status"], a["annotations"]["description"])
        for r in requests
        for a in r.json["alerts"]
    ]


@pytest.mark.parametrize("flavour", ["docker", "podman"])
async def test_a_labelled_container_pages_at_once_and_retires_with_one_resolved_message(
    flavour: str, engine_factory: EngineFactory, receiver: Receiver, tmp_path: Path
) -> None:
    engine = await engine_factory(flavour)
    daemon = await following(tmp_path, engine, receiver, "1s")
    try:
        started = time.monotonic()
        engine.run("shop-web-1", labels={**ALERTING, SERVICE: "web"}, **hungry())
        [page] = await receiver.wait_for(1, timeout=INTERVAL)
        assert page.received_at - started < 2.0  # probed at once, not next cycle
        [(target, metric, status, _)] = alerts([page])
        assert (target, metric, status) == ("web", "memory_percent", "firing")
        assert page.json["alerts"][0]["labels"]["team"] == "shop"
        [web] = [t for t in (await daemon.status())["targets"] if t["name"] == "web"]
        assert web["discovered"] == {"container": "shop-web-1"}

        engine.destroy("shop-web-1")
        await receiver.wait_for(2, timeout=5)
        requests = await receiver.wait_quiet(INTERVAL + 0.5)  # one more cycle: nothing else
        [(target, metric, status, why)] = alerts(requests[1:])
        assert (target, metric, status) == ("web", "memory_percent", "resolved")
        assert "container removed" in why
        resolved = requests[1].json["alerts"][0]
        assert resolved["labels"]["team"] == "shop"  # the labels it fired with
        assert "container shop-web-1" in resolved["annotations"]["description"]
        assert "web" not in [t["name"] for t in (await daemon.status())["targets"]]
    finally:
        assert await daemon.stop() == 0


async def test_a_container_of_another_interval_is_probed_at_once_too(
    docker_engine: FakeEngine, receiver: Receiver, tmp_path: Path
) -> None:
    # Installing the jobs starts the shortest interval's cycle at once; a longer one's
    # first cycle would be seconds away (here about 6 s), so discovery probes it itself.
    daemon = await following(tmp_path, docker_engine, receiver, "1s", interval=10.0)
    try:
        docker_engine.run("quiet", labels={"vigild.enable": "true"})
        await daemon.wait_log("cycles scheduled", 2)
        started = time.monotonic()
        docker_engine.run("slow", labels={**ALERTING, "vigild.interval": "60s"}, **hungry())
        [page] = await receiver.wait_for(1, timeout=5)
        assert page.received_at - started < 2.0
        assert alerts([page])[0][:3] == ("slow", "memory_percent", "firing")
    finally:
        assert await daemon.stop() == 0


async def test_a_compose_recreate_sends_nothing(
    docker_engine: FakeEngine, receiver: Receiver, target_server: TargetServer, tmp_path: Path
) -> None:
    daemon = await following(tmp_path, docker_engine, receiver, "30s")
    try:
        labels = {
            "vigild.enable": "true",
            SERVICE: "web",
            "vigild.http.url": "http://{ip}:{port:8080}/health",
        }
        published = {"ip": "127.0.0.1", "ports": {8080: target_server.port}}
        docker_engine.run("shop-web-1", labels=labels, **published)
        await until(lambda: target_server.hits >= 1, what="the discovered http target probed")
        await asyncio.sleep(INTERVAL)  # a cycle with the container
        # `docker compose up` after an image change: the old one goes, a new one comes,
        # with a cycle in between that finds no container of that name.
        docker_engine.destroy("shop-web-1")
        await asyncio.sleep(INTERVAL + 0.5)
        docker_engine.run("shop-web-1", labels=labels, **published)
        assert await receiver.wait_quiet(INTERVAL + 0.5) == []
    finally:
        assert await daemon.stop() == 0


async def test_the_engine_restarting_mid_stream_loses_nothing(
    docker_engine: FakeEngine, receiver: Receiver, tmp_path: Path
) -> None:
    daemon = await following(tmp_path, docker_engine, receiver, "1s")
    try:
        docker_engine.run("web", labels=ALERTING, **hungry())
        await receiver.wait_for(1, timeout=INTERVAL)
        await docker_engine.stop()
        # While the engine is away: one container goes, another comes.
        docker_engine.destroy("web")
        docker_engine.run("api", labels=ALERTING, **hungry())
        await docker_engine.start()
        await receiver.wait_for(3, timeout=10)
        sent = alerts((await receiver.wait_quiet(0.5))[1:])
        assert sorted((t, s) for t, _, s, _ in sent) == [("api", "firing"), ("web", "resolved")]
    finally:
        assert await daemon.stop() == 0


@pytest.mark.parametrize("flavour", ["docker", "podman"])
async def test_check_config_discover_says_what_each_container_would_become(
    flavour: str, engine_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = await engine_factory(flavour)
    engine.run(
        "shop-web-1",
        labels={"vigild.enable": "true", SERVICE: "web", "vigild.http.path": "/health"},
    )
    engine.run("cache", labels={"vigild.enable": "true", "vigild.interval": "often"})
    engine.run("db", labels={"vigild.enable": "true"})
    engine.run("plain")
    path = write_config(
        tmp_path,
        listen_address(),
        f"[discovery.containers]\nengine = {toml_str(engine.url)}\n\n"
        '[[targets]]\nname = "db"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5432\n',
    )
    done = await run("check-config", "--discover", "--config", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"discovery: 3 container(s) with vigild.enable=true at {engine.url}" in lines
    assert "  shop-web-1 → web (container), web/http (http http://172.17.0.2:7080/health)" in lines
    assert any(line.startswith("  cache: skipped, label vigild.interval: ") for line in lines)
    assert "  db: skipped, target 'db' is taken" in lines


async def test_once_probes_the_containers_discovery_finds_now(
    docker_engine: FakeEngine, tmp_path: Path
) -> None:
    docker_engine.run("shop-web-1", labels={**ALERTING, SERVICE: "web"}, **hungry())

    async def once(engine_url: str) -> tuple[int, dict[str, Any], str]:
        path = write_config(
            tmp_path,
            listen_address(),
            f"[discovery.containers]\nengine = {toml_str(engine_url)}\n"
            '[[targets]]\nname = "self"\ntype = "host"\n',
        )
        done = await run("--once", "--format", "json", "--config", str(path))
        return done.returncode, json.loads(done.stdout), done.stderr

    code, report, log = await once(docker_engine.url)
    assert code == 2, log  # critical: web uses 90 % of its memory
    [web] = [t for t in report["targets"] if t["name"] == "web"]
    assert web["discovered"] == {"container": "shop-web-1"}
    # (The host itself may have an alert of its own on a busy machine.)
    assert ("web", "critical") in [(a["target"], a["severity"]) for a in report["alerts"]]
    # The engine down: the file's targets are probed, and web's alert is not resolved
    # on a guess.
    code, report, log = await once("unix://" + str(tmp_path / "none.sock"))
    assert "container discovery cannot list containers" in log
    assert [t["name"] for t in report["targets"]] == ["self"]
    assert "web" in [a["target"] for a in report["alerts"]]
    # The engine says the container is gone: its alert resolves.
    docker_engine.remove("shop-web-1")
    code, report, log = await once(docker_engine.url)
    assert [t["name"] for t in report["targets"]] == ["self"]
    assert "web" not in [a["target"] for a in report["alerts"]], log


async def test_a_reload_keeps_the_discovered_targets(
    docker_engine: FakeEngine, receiver: Receiver, tmp_path: Path
) -> None:
    daemon = await following(tmp_path, docker_engine, receiver, "1s")
    try:
        docker_engine.run("web", labels=ALERTING, **hungry())
        await receiver.wait_for(1, timeout=INTERVAL)
        daemon.signal(signal.SIGHUP)
        await daemon.wait_log("config reloaded")
        [web] = [t for t in (await daemon.status())["targets"] if t["name"] == "web"]
        assert web["discovered"] == {"container": "web"}
        assert len(await receiver.wait_quiet(INTERVAL + 0.5)) == 1  # nothing resolved
    finally:
        assert await daemon.stop() == 0
