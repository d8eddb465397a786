"""The ``pagerduty`` notifier in a real ``vigild run`` and ``vigild test-notify``, against a
receiver standing in for PagerDuty's Events API on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from pagerduty_events import KEY, SOURCE, assert_events_v2, sent
from process import Daemon, environment, run, until
from receivers import PagerDutyReceiver
from targets import TargetServer, closed_port

from vigild.model import fingerprint

ENV = environment(PD_ROUTING_KEY=KEY)


def write_config(tmp_path: Path, target: TargetServer, events_url: str) -> tuple[Path, str]:
    listen = f"127.0.0.1:{closed_port()}"
    path = tmp_path / "thresholds.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"
instance = "pd-host"

[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"

[[notifiers]]
name = "oncall"
type = "pagerduty"
routing_key = "${{PD_ROUTING_KEY}}"
events_url = "{events_url}"
source = "{SOURCE}"
min_severity = "critical"
"""
    )
    return path, listen


async def test_daemon_triggers_then_resolves_the_same_alert(
    tmp_path: Path, target_server: TargetServer, pd: PagerDutyReceiver
) -> None:
    path, listen = write_config(tmp_path, target_server, pd.url("/v2/enqueue"))
    daemon = await Daemon(path, listen, ENV).start()
    await daemon.wait_ready()
    await until(lambda: target_server.hits >= 2, what="probes")
    assert pd.requests == []

    target_server.status = 503
    [request] = await pd.wait_for(1)
    trigger = request.json
    assert_events_v2(trigger)
    assert trigger["routing_key"] == KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == fingerprint("pd-host", "api", "up")
    payload = trigger["payload"]
    assert (payload["severity"], payload["source"], payload["component"]) == (
        "critical",
        SOURCE,
        "api",
    )
    assert payload["summary"].startswith("api is DOWN on pd-host: HTTP 503")
    # The target's address travels with the alert from the config to the page.
    assert payload["custom_details"]["address"].startswith("http://127.0.0.1:")
    assert "503" in payload["custom_details"]["note"]
    assert trigger["links"] == [{"href": f"http://{listen}/api/status", "text": "vigild status"}]

    target_server.status = 200
    await pd.wait_for(2)
    await pd.wait_quiet(2.5)  # two more cycles: nothing more to say
    assert sent(pd) == [("trigger", trigger["dedup_key"]), ("resolve", trigger["dedup_key"])]
    assert_events_v2(pd.bodies[1])

    status = await daemon.status()
    assert KEY not in json.dumps(status)
    assert await daemon.stop() == 0
    assert daemon.events("notification sent")
    assert not any(KEY in line for line in daemon.log)


async def test_daemon_rejection_is_logged_and_counted_without_the_key(
    tmp_path: Path, target_server: TargetServer, pd: PagerDutyReceiver
) -> None:
    pd.status = 400
    pd.response_body = json.dumps(
        {"status": "invalid event", "message": "Event object is invalid", "errors": [KEY]}
    )
    target_server.status = 503
    path, listen = write_config(tmp_path, target_server, pd.url("/v2/enqueue"))
    daemon = await Daemon(path, listen, ENV).start()
    await daemon.wait_ready()
    await daemon.wait_log("notification failed")
    [failed] = daemon.events("notification failed")
    assert failed["error"] == (
        "pagerduty rejected event: answered 400: Event object is invalid: ***"
    )
    assert failed["retryable"] is False
    _, metrics = await daemon.get("/metrics")
    assert 'vigild_notifications_total{notifier="oncall",outcome="failed"} 1.0' in metrics
    await pd.wait_quiet(0.4)
    assert len(pd.requests) == 1  # never retried
    for text_out in (metrics, json.dumps(await daemon.status()), *daemon.log):
        assert KEY not in text_out
    assert await daemon.stop() == 0


async def test_test_notify_command_triggers_and_resolves(
    tmp_path: Path, target_server: TargetServer, pd: PagerDutyReceiver
) -> None:
    path, _ = write_config(tmp_path, target_server, pd.url("/v2/enqueue"))
    done = await run("test-notify", "--config", str(path), env=ENV)
    assert done.returncode == 0, done.stderr
    assert "oncall: delivered" in done.stdout
    trigger, resolve = pd.bodies
    assert trigger["payload"]["summary"] == f"[TEST] vigild test-notify from {SOURCE}"
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
    assert KEY not in done.stdout + done.stderr
