"""``vigild run`` as a real process: endpoints, alerts end to end, signals, reload, restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from process import Daemon, run, until
from prometheus_client.parser import text_string_to_metric_families
from receivers import Receiver
from standard_daemon import ENV, sent, start_daemon
from targets import TargetServer, closed_port


async def test_outage_notifies_once_and_resolves_once_across_a_restart(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver)
    await until(lambda: target_server.hits >= 2, what="probes")
    assert receiver.requests == []  # healthy: nothing to say

    target_server.status = 503
    await receiver.wait_for(2)
    await receiver.wait_quiet(2.5)  # two more cycles of the same outage
    hooks, chats = sent(receiver, "/hook"), sent(receiver, "/chat")
    assert len(hooks) == 1 and len(chats) == 1
    alert = hooks[0]["alerts"][0]
    assert hooks[0]["status"] == "firing" and hooks[0]["receiver"] == "hook"
    assert alert["labels"]["alertname"] == "up"
    assert alert["labels"]["target"] == "api" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["team"] == "core"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert "503" in alert["annotations"]["description"]  # why it is down, in the probe's words
    assert chats[0]["type"] == "failure" and "api" in chats[0]["title"]
    assert "503" in chats[0]["title"]

    assert await daemon.stop() == 0
    assert daemon.events("vigild stopped")

    restarted = await Daemon(daemon.config, daemon.listen, ENV).start()
    await restarted.wait_ready()
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 3, what="probes after restart")
    assert len(receiver.requests) == 2  # still the same outage: no second page

    target_server.status = 200
    await receiver.wait_for(4)
    await receiver.wait_quiet(1.5)  # a cycle more
    hooks, chats = sent(receiver, "/hook"), sent(receiver, "/chat")
    assert [h["status"] for h in hooks] == ["firing", "resolved"]
    assert hooks[1]["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert hooks[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert [c["type"] for c in chats] == ["failure", "success"]
    assert await restarted.stop() == 0


async def test_endpoints_metrics_and_status(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(
        tmp_path,
        target_server,
        receiver,
        extra_targets=f"""
[[targets]]
name = "down"
type = "http"
url = "http://127.0.0.1:{closed_port()}/x?token=${{API_TOKEN}}"
""",
    )
    assert await daemon.get("/healthz") == (200, '{"status": "ok"}')
    await until(lambda: target_server.hits >= 2, what="probes")

    code, text = await daemon.get("/metrics")
    assert code == 200
    assert "tok-3f9a7c" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("vigild_probe_success", (("target", "api"), ("type", "http")))] == 1
    assert samples[("vigild_probe_success", (("target", "down"), ("type", "http")))] == 0
    assert samples[("vigild_build_info", (("replica", "b"), ("version", "0.1.0")))] == 1
    # Prometheus adds the scraped target's `instance`: vigild's own would clash with it.
    assert not any("instance" in dict(labels) for _, labels in samples)
    api_latency = (("metric", "latency_seconds"), ("series", ""), ("target", "api"))
    assert 0 < samples[("vigild_probe_value", api_latency)] < 1
    assert samples[("vigild_alert_severity", api_latency)] == 0
    assert (
        samples[("vigild_alert_severity", (("metric", "up"), ("series", ""), ("target", "down")))]
        == 2
    )
    assert families["vigild_probe_duration_seconds"].type == "histogram"
    assert ("vigild_notifications_total", (("notifier", "hook"), ("outcome", "sent"))) in samples
    assert "process_resident_memory_bytes" in families

    status = await daemon.status()
    assert "tok-3f9a7c" not in str(status)
    by_name = {t["name"]: t for t in status["targets"]}
    assert by_name["api"]["up"] is True and by_name["down"]["up"] is False
    assert by_name["down"]["url"].endswith("token=***")
    assert [(a["target"], a["metric"], a["severity"], a["state"]) for a in status["alerts"]] == [
        ("down", "up", "critical", "firing")
    ]
    identity = (status["instance"], status["external_labels"], status["replica"])
    assert identity == ("nas", {"env": "prod"}, "b")
    assert await daemon.stop() == 0
    failed = daemon.events("probe failed")
    assert failed and all(e["replica"] == "b" for e in failed)
    [started] = daemon.events("vigild started")
    assert (started["instance"], started["external_labels"]) == ("nas", {"env": "prod"})
    assert not any("tok-3f9a7c" in line for line in daemon.log)


async def test_sighup_reloads_and_a_broken_config_keeps_the_running_one(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver)
    path = daemon.config
    target_server.status = 503
    await receiver.wait_for(2)

    good = path.read_text()
    path.write_text(good + '\n[[targets]]\nname = "host"\ntype = "host"\n')
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("config reloaded")
    await until(lambda: len(daemon.events("config reloaded")) == 1)
    status = await daemon.status()
    assert [t["name"] for t in status["targets"]] == ["api", "host"]

    path.write_text(good + "\n[daemon.oops]\n")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("reload rejected, keeping the running config")
    rejected = daemon.events("reload rejected, keeping the running config")[0]
    assert any("daemon" in p for p in rejected["problems"])
    status = await daemon.status()
    assert [t["name"] for t in status["targets"]] == ["api", "host"]
    assert [a["metric"] for a in status["alerts"] if a["target"] == "api"] == ["up"]

    await receiver.wait_quiet(1.5)
    assert len(receiver.requests) == 2  # the alert survived both reloads: no second firing
    assert await daemon.stop() == 0


async def test_sigint_stops_cleanly_and_the_state_lock_keeps_a_second_daemon_out(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver)
    second = await run("run", "--config", str(daemon.config), env=ENV)
    assert second.returncode == 2
    assert "in use by another vigild" in second.stderr
    daemon.signal(signal.SIGINT)
    assert await daemon.wait() == 0


async def test_invalid_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[daemon]\ninterval = "fast"\n')
    finished = await run("run", "--config", str(config))
    assert finished.returncode == 2
    assert f"{config}: daemon.interval: invalid duration 'fast'" in finished.stderr
    assert "Traceback" not in finished.stderr


async def start_with_slow_target(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver, probe_timeout: str
) -> Daemon:
    """A daemon that also probes ``/slow`` every minute, with ``probe_timeout``."""
    return await start_daemon(
        tmp_path,
        target_server,
        receiver,
        extra_targets=f"""
[[targets]]
name = "slow"
type = "http"
url = "{target_server.url("/slow")}"
interval = "60s"
timeout = "{probe_timeout}"
""",
    )


async def test_sigterm_cuts_a_hanging_probe_short_without_an_error(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    hanging = target_server.route("/slow", delay=60.0)
    daemon = await start_with_slow_target(tmp_path, target_server, receiver, "50s")
    await until(lambda: hanging.hits >= 1, what="the hanging probe")
    started = asyncio.get_running_loop().time()
    assert await daemon.stop() == 0
    assert asyncio.get_running_loop().time() - started < 10  # 2 s grace, not the 50 s timeout
    errors = [line for line in daemon.log if '"level": "error"' in line]
    assert errors == []
    assert daemon.events("vigild stopped")


async def test_sigterm_lets_a_running_cycle_finish_and_its_alert_go_out(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    slow = target_server.route("/slow", delay=1.0, status=503)
    daemon = await start_with_slow_target(tmp_path, target_server, receiver, "5s")
    await until(lambda: slow.hits >= 1, what="the slow probe")
    assert await daemon.stop() == 0  # within the 2 s grace the probe answers 503
    fired = [r.json for r in receiver.requests if r.path == "/hook"]
    assert [(a["labels"]["target"], a["status"]) for h in fired for a in h["alerts"]] == [
        ("slow", "firing")
    ]
