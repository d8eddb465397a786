"""Actions under their guards: real subprocesses, a real SQLite file, a fake clock.

The runner is driven the way the runtime drives it (observe, flush, evaluate
after each cycle), so a ten-minute incident takes milliseconds, while the
commands it starts are real processes that write what they saw to a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from action_rig import EVERYONE, HOST, Rig, action
from action_scripts import recording_script, runs_seen
from docker_api import FakeEngine
from receivers import Receiver

from vigild.alerting.actions.base import OUTPUT_LIMIT
from vigild.alerting.pipeline import flush
from vigild.alerting.stages.route import Route
from vigild.assembly import load
from vigild.config import ConfigError, ThresholdSpec
from vigild.model import Severity
from vigild.redaction import MASK, redact
from vigild.thresholds import Rule


async def test_runs_once_over_a_ten_minute_incident_then_says_it_did_not_help(
    rig: Rig, tmp_path: Path
) -> None:
    script = recording_script(tmp_path, sleep=0.1)
    rig.engine = rig.engine.successor(
        (EVERYONE,),
        flap_limit=4,
        labels=lambda _: (),
        redact=lambda text: text,
        addresses={"api": "http://api.lan/health"}.get,
    )
    rig.configure(action(command=[str(script)], when={"for": "2m"}, verify_after="5m"))
    rig.read("api", up=False)
    opened = rig.clock.now
    first_run = None
    for _ in range(20):  # ten minutes at 30 s
        rig.read("api", up=False)
        await rig.runner.wait_idle()
        if first_run is None and runs_seen(tmp_path):
            first_run = rig.clock.now
    assert first_run == opened + 120
    [seen] = runs_seen(tmp_path)
    assert seen == {
        "target": "api",
        "metric": "up",
        "severity": "critical",
        "value": "0",
        "threshold": "",
        "since": str(int(opened)),
        "alert_id": HOST.fingerprint("api", "up"),
        "dry_run": "0",
    }
    ran, *_ = rig.history()
    assert (ran.outcome, ran.exit_code, ran.verified) == ("succeeded", 0, "did not help")
    notes = rig.action_notes()
    assert "succeeded" in notes[0] and "rolled back to the previous release" in notes[0]
    assert "exit code 0" in notes[0]
    assert notes[1:] == [
        "rollback did not help: it ran 5m ago and api is still critical; "
        "no further run for this incident"
    ]
    # An action's report names where the target is, as the alert's messages do.
    assert {e.address for e in rig.action_events()} == {"http://api.lan/health"}
    assert rig.outcomes == [("rollback", "succeeded")]


async def test_a_second_trigger_while_one_runs_is_skipped(rig: Rig, tmp_path: Path) -> None:
    # The reads below all run before the event loop starts the first process, so it
    # need not run long to be running while they do.
    script = recording_script(tmp_path, sleep=0.1)
    rig.configure(action(command=[str(script)], cooldown="0s"))
    rig.read("api", up=False)
    rig.read("web", up=False, step=1)
    assert rig.runner.running == 1
    rig.read("web", up=False, step=1)  # still running: recorded once per incident
    await rig.runner.wait_idle()
    assert [r["target"] for r in runs_seen(tmp_path)] == ["api"]
    skipped = [r for r in rig.history() if r.outcome == "skipped"]
    assert [(r.target, r.detail.split(":")[0]) for r in skipped] == [("web", "running")]
    assert sorted(rig.outcomes) == [("rollback", "skipped"), ("rollback", "succeeded")]


async def test_cooldown_and_the_daily_limit_hold_across_restarts(rig: Rig, tmp_path: Path) -> None:
    script = recording_script(tmp_path)
    config = action(command=[str(script)], cooldown="30m", max_runs_per_day=2)
    rig.configure(config)
    rig.read("api", up=False)
    await rig.runner.wait_idle()
    rig.read("api", up=True, step=60)

    await rig.restart()
    rig.configure(config)
    rig.read("api", up=False, step=600)  # a new incident 11 minutes later: cooling down
    await rig.runner.wait_idle()
    assert len(runs_seen(tmp_path)) == 1
    assert rig.history()[-1].detail.startswith("cooldown:")
    rig.read("api", up=True, step=60)
    rig.read("api", up=False, step=1800)  # past the cooldown: runs, and spends the day
    await rig.runner.wait_idle()
    assert len(runs_seen(tmp_path)) == 2
    assert any("a human must look" in note for note in rig.action_notes())
    rig.read("api", up=True, step=60)

    await rig.restart()
    rig.configure(config)
    rig.read("api", up=False, step=3600)
    await rig.runner.wait_idle()
    assert len(runs_seen(tmp_path)) == 2
    assert rig.history()[-1].detail.startswith("max_runs_per_day: disabled")
    rig.read("api", up=True, step=60)
    rig.read("api", up=False, step=86400)  # a day later the budget is back
    await rig.runner.wait_idle()
    assert len(runs_seen(tmp_path)) == 3


async def test_dry_run_runs_nothing_and_says_what_it_would_run(rig: Rig, tmp_path: Path) -> None:
    script = recording_script(tmp_path)
    rig.configure(action(command=[str(script), "quick"], dry_run=True))
    for _ in range(5):
        rig.read("api", up=False)
        await rig.runner.wait_idle()
    assert runs_seen(tmp_path) == []
    assert [r.outcome for r in rig.history()] == ["dry_run"]
    [note] = rig.action_notes()
    assert "would run" in note and "rollback.sh quick" in note
    assert rig.outcomes == [("rollback", "dry_run")]


async def test_an_action_report_reaches_only_the_notifiers_its_severity_reaches(
    rig: Rig, tmp_path: Path
) -> None:
    pager = Route(
        "pager",
        min_rank=Severity.CRITICAL.routing_rank,
        send_resolved=True,
        repeat_interval=4 * 3600.0,
    )
    rig.engine = rig.engine.successor(
        (EVERYONE, pager), flap_limit=4, labels=lambda _: (), redact=str
    )
    rig.configure(
        action(
            command=[str(recording_script(tmp_path))],
            dry_run=True,
            when={"severity": "warning", "metrics": ["cpu_percent"]},
        )
    )
    cpu = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80))
    for _ in range(2):
        now = rig.clock.advance(30)
        rig.engine.observe("api", [cpu.judge("cpu_percent", 78)], now)
        flush(rig.engine, rig.db, now)
        rig.runner.evaluate(now)
    [note] = rig.action_notes()
    assert "would run" in note
    # min_severity = "critical" hears neither the warning nor an action about it.
    assert rig.db.outbox.entries("pager") == []


async def test_silenced_and_flapping_alerts_trigger_nothing(rig: Rig, tmp_path: Path) -> None:
    script = recording_script(tmp_path)
    rig.configure(action(command=[str(script)], cooldown="0s", max_runs=10))
    for _ in range(6):  # fire and resolve until the alert flaps
        rig.read("web", up=True)
        rig.read("web", up=False)
        await rig.runner.wait_idle()
    flapping = [a for a in rig.engine.alerts() if a.flapping]
    assert flapping
    before = len(runs_seen(tmp_path))
    rig.read("web", up=False)
    rig.read("web", up=False)
    await rig.runner.wait_idle()
    assert len(runs_seen(tmp_path)) == before


async def test_a_webhook_action_posts_the_alert(rig: Rig, receiver: Receiver) -> None:
    rig.configure(
        action("webhook", url=receiver.url("/deploy/rollback"), headers={"X-Token": "t0ken"})
    )
    rig.read("api", up=False)
    await rig.runner.wait_idle()
    [request] = await receiver.wait_for(1)
    assert request.path == "/deploy/rollback"
    assert request.header("X-Token") == "t0ken"
    assert request.json["action"] == "rollback"
    assert request.json["alert"]["target"] == "api"
    assert request.json["alert"]["severity"] == "critical"
    assert rig.history()[0].outcome == "succeeded"


async def test_a_failing_webhook_is_a_failed_run(rig: Rig, receiver: Receiver) -> None:
    receiver.status = 500
    rig.configure(action("webhook", url=receiver.url()))
    rig.read("api", up=False)
    await rig.runner.wait_idle()
    assert rig.history()[0].outcome == "failed"
    assert rig.outcomes == [("rollback", "failed")]


async def test_the_container_action_restarts_through_the_engine_api(
    rig: Rig, docker_engine: FakeEngine
) -> None:
    web = docker_engine.add("web", status="exited")
    rig.configure(action("container", container="web", engine=docker_engine.url))
    rig.read("web", up=False)
    await rig.runner.wait_idle()
    [call] = docker_engine.calls("POST", "/restart")
    assert call.path == "/containers/web/restart"
    assert web.status == "running"
    assert rig.history()[0].detail == "restarted container web"


# -- config -------------------------------------------------------------------


def test_actions_are_validated_like_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        "[daemon]\nactions_enabled = false\n"
        '[[actions]]\nname = "a"\ntype = "command"\ncommand = ["true"]\n'
        'when = { severity = "critical", for = "2m" }\n'
        '[[actions]]\nname = "b"\ntype = "teleport"\n'
        '[[actions]]\nname = "c"\ntype = "command"\ncommand = ["true"]\ncoldown = "1m"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    text = "\n".join(raised.value.problems)
    assert """actions[1] "b".type: unknown action type 'teleport'""" in text
    assert 'actions[2] "c".coldown: unknown key; did you mean "cooldown"?' in text
    assert "actions[0]" not in text
    path.write_text(path.read_text().split('[[actions]]\nname = "b"')[0])
    config = load(path)
    assert config.daemon.actions_enabled is False
    [a] = config.actions
    assert (a.when.for_, a.max_runs, a.cooldown, a.max_runs_per_day) == (120, 1, 1800, 3)


# -- the real command ------------------------------------------------------------


# -- a vigild killed while a command runs, and what a command leaves behind --------


async def test_output_is_redacted_before_its_tail_is_cut(rig: Rig, tmp_path: Path) -> None:
    secret = "s3cret-token-0123456789"
    script = tmp_path / "chatty.sh"
    # The cut at OUTPUT_LIMIT lands 7 characters before the secret's end.
    script.write_text(
        f"#!/bin/sh\nprintf %s \"$TOKEN\"\nhead -c {OUTPUT_LIMIT - 7} /dev/zero | tr '\\0' x\n"
    )
    script.chmod(0o755)
    rig.configure(
        action(command=[str(script)], env={"TOKEN": secret}),
        redact=lambda text: redact(text, {secret}),
    )
    rig.read("api", up=False)
    await rig.runner.wait_idle()
    [ran] = rig.history()
    assert ran.outcome == "succeeded"
    assert secret[-7:] not in ran.output
    assert ran.output.startswith(MASK) and ran.output.endswith("x" * 100)
