"""Actions under their guards: real subprocesses, a real SQLite file, a fake clock.

The runner is driven the way the runtime drives it (observe, flush, evaluate
after each cycle), so a ten-minute incident takes milliseconds, while the
commands it starts are real processes that write what they saw to a file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from docker_api import FakeEngine
from process import Daemon, environment, run, until
from receivers import Receiver
from targets import closed_port

from vigild.alerting.actions import processes
from vigild.alerting.actions.base import OUTPUT_LIMIT, backend
from vigild.alerting.actions.runner import ActionRunner
from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import flush
from vigild.alerting.stages.route import Route
from vigild.alerting.store import ActionRun, Store, read_action_history
from vigild.config import ActionConfig, ConfigError, ThresholdSpec, load
from vigild.model import Identity, Notification, Severity
from vigild.redaction import MASK, redact
from vigild.testing import FakeClock
from vigild.thresholds import Rule, Verdict

UP = Rule.from_spec("up", ThresholdSpec())
EVERYONE = Route("all", min_rank=1, send_resolved=True, repeat_interval=4 * 3600.0)
HOST = Identity("web-1")
FIELDS = ("target", "metric", "severity", "value", "threshold", "since", "alert_id", "dry_run")


def recording_script(tmp_path: Path, sleep: float = 0.0) -> Path:
    """A script that appends one line per run with what vigild told it, then sleeps."""
    script = tmp_path / "rollback.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$VIGILD_TARGET|$VIGILD_METRIC|$VIGILD_SEVERITY|$VIGILD_VALUE|'
        '$VIGILD_THRESHOLD|$VIGILD_SINCE|$VIGILD_ALERT_ID|$VIGILD_DRY_RUN" >> runs.txt\n'
        "echo rolled back to the previous release\n"
        f"sleep {sleep}\n"
    )
    script.chmod(0o755)
    return script


def runs_seen(tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "runs.txt"
    if not path.exists():
        return []
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in path.read_text().split()]


def action(kind: str = "command", **settings: Any) -> ActionConfig:
    """An ``[[actions]]`` table as the config loader builds it."""
    common = {k: v for k, v in settings.items() if k in ActionConfig.COMMON_KEYS}
    own = {k: v for k, v in settings.items() if k not in ActionConfig.COMMON_KEYS}
    options = backend(kind).Options.model_validate(own)
    return ActionConfig.model_validate(
        {"name": "rollback", "type": kind, **common, "options": options}
    )


class Rig:
    """Engine and runner on one state file; ``restart`` opens both again on it."""

    def __init__(self, path: Path, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.path = path
        self.session = session
        self.clock = clock
        self.outcomes: list[tuple[str, str]] = []
        self._open()

    def _open(self) -> None:
        self.store = Store(self.path)
        self.engine = Engine(self.store.load_alerts(), (EVERYONE,), flap_limit=4, identity=HOST)
        self.runner = ActionRunner(self.store, self.engine, self.session, clock=self.clock)
        self.runner.listeners.append(lambda name, outcome: self.outcomes.append((name, outcome)))

    def configure(self, *actions: ActionConfig) -> None:
        self.runner.configure(actions, enabled=True, redact=lambda text: text)

    async def restart(self) -> None:
        await self.runner.close()
        self.store.close()
        self._open()

    def read(self, target: str, up: bool, step: float = 30.0) -> None:
        """One cycle: a reading of ``target``, the flush, then the actions' turn."""
        now = self.clock.advance(step)
        severity = Severity.OK if up else Severity.CRITICAL
        self.engine.observe(target, [Verdict("up", severity, float(up), None, UP)], now)
        flush(self.engine, self.store, now)
        self.runner.evaluate(now)

    def history(self) -> list[ActionRun]:
        return read_action_history(self.path, 100)

    def action_notes(self) -> list[str]:
        notes = []
        for _, payload in self.store.outbox_entries("all"):
            for event in Notification.from_json(json.loads(payload)).events:
                if event.kind == "action":
                    notes.append(event.note or "")
        return notes


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
async def rig(
    tmp_path: Path, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    monkeypatch.chdir(tmp_path)  # the scripts write runs.txt where they run
    made = Rig(tmp_path / "state.db", session, FakeClock())
    yield made
    await made.runner.close()
    made.store.close()


async def test_runs_once_over_a_ten_minute_incident_then_says_it_did_not_help(
    rig: Rig, tmp_path: Path
) -> None:
    script = recording_script(tmp_path, sleep=0.1)
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
    assert any(note.startswith("rollback did not help") for note in notes[1:])
    assert rig.outcomes == [("rollback", "succeeded")]


async def test_a_second_trigger_while_one_runs_is_skipped(rig: Rig, tmp_path: Path) -> None:
    script = recording_script(tmp_path, sleep=1.0)
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


async def test_a_hanging_script_is_killed_with_its_children_at_the_timeout(
    rig: Rig, tmp_path: Path
) -> None:
    script = tmp_path / "hang.sh"
    # Ignoring SIGTERM (children inherit that) forces the SIGKILL after the grace.
    script.write_text(
        "#!/bin/sh\ntrap '' TERM\necho $$ > main.pid\nsleep 300 &\necho $! > child.pid\nwait\n"
    )
    script.chmod(0o755)
    rig.configure(action(command=[str(script)], timeout="1s", kill_grace="0.5s"))
    began = time.monotonic()
    rig.read("api", up=False)
    await asyncio.wait_for(rig.runner.wait_idle(), 10)
    assert time.monotonic() - began < 5
    [ran] = rig.history()
    assert ran.outcome == "timeout"
    for name in ("main.pid", "child.pid"):
        pid = int((tmp_path / name).read_text())
        await until(lambda pid=pid: _gone(pid), 5, f"process {pid} from {name} to end")
    assert rig.outcomes == [("rollback", "timeout")]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
    rig.engine.configure((EVERYONE, pager), flap_limit=4, labels=lambda _: (), redact=str)
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
        flush(rig.engine, rig.store, now)
        rig.runner.evaluate(now)
    [note] = rig.action_notes()
    assert "would run" in note
    # min_severity = "critical" hears neither the warning nor an action about it.
    assert rig.store.outbox_entries("pager") == []


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
    assert "actions[1].type: unknown action type 'teleport'" in text
    assert "actions[2].coldown: unknown key" in text
    assert "actions[0]" not in text
    path.write_text(path.read_text().split('[[actions]]\nname = "b"')[0])
    config = load(path)
    assert config.daemon.actions_enabled is False
    [a] = config.actions
    assert (a.when.for_, a.max_runs, a.cooldown, a.max_runs_per_day) == (120, 1, 1800, 3)


# -- the real command ------------------------------------------------------------


def once_config(
    tmp_path: Path,
    script: Path,
    *,
    dry_run: bool = False,
    interval: str = "30s",
    targets: tuple[str, ...] = ("api",),
    settings: str = "",
) -> tuple[Path, str]:
    """A config watching closed loopback ports, with the action (and its extra
    ``settings`` lines); and its listen address."""
    path = tmp_path / "thresholds.toml"
    listen = f"127.0.0.1:{closed_port()}"
    watched = "".join(
        f'[[targets]]\nname = "{name}"\ntype = "http"\n'
        f'url = "http://127.0.0.1:{closed_port()}/health"\n'
        for name in targets
    )
    path.write_text(
        f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n'
        f'listen = "{listen}"\ninterval = "{interval}"\n{watched}'
        f'[[actions]]\nname = "rollback"\ntype = "command"\ncommand = ["{script}", "quick"]\n'
        f'cwd = "{tmp_path}"\nwhen = {{ severity = "critical", for = "0s" }}\n'
        f"dry_run = {str(dry_run).lower()}\n{settings}"
    )
    return path, listen


async def test_once_twice_runs_the_action_once_and_history_lists_it(tmp_path: Path) -> None:
    config, _ = once_config(tmp_path, recording_script(tmp_path))
    for _ in range(2):
        result = await run("--once", "--config", str(config))
        assert result.returncode == 2, result.stderr
    assert len(runs_seen(tmp_path)) == 1
    listed = await run("actions", "history", "--config", str(config))
    assert listed.returncode == 0
    [line] = listed.stdout.splitlines()
    assert "rollback" in line and "api up" in line and "succeeded" in line and "exit 0" in line


async def test_once_with_no_actions_runs_nothing(tmp_path: Path) -> None:
    config, _ = once_config(tmp_path, recording_script(tmp_path))
    result = await run("--once", "--no-actions", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert runs_seen(tmp_path) == []
    listed = await run("actions", "history", "--config", str(config))
    assert listed.stdout.strip() == "no action has run"


async def test_a_live_daemon_counts_actions_on_metrics(tmp_path: Path) -> None:
    config, listen = once_config(tmp_path, recording_script(tmp_path), dry_run=True, interval="1s")
    daemon = await Daemon(config, listen, environment()).start()
    await daemon.wait_ready()
    wanted = 'vigild_actions_total{action="rollback",outcome="dry_run"} 1.0'
    seen = ""

    async def counted() -> bool:
        nonlocal seen
        _, seen = await daemon.get("/metrics")
        return wanted in seen

    deadline = time.monotonic() + 10
    while not await counted():
        assert time.monotonic() < deadline, seen[-2000:]
        await asyncio.sleep(0.1)
    assert 'vigild_actions_total{action="rollback",outcome="succeeded"} 0.0' in seen
    assert runs_seen(tmp_path) == []
    assert await daemon.stop() == 0


# -- a vigild killed while a command runs, and what a command leaves behind --------


def spans_script(tmp_path: Path, sleep: float) -> Path:
    """A script that notes when it starts and ends (pid, time), sleeping in between."""
    script = tmp_path / "span.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "start $$ $(date +%s.%N) $VIGILD_TARGET" >> spans.txt\n'
        f"sleep {sleep}\n"
        'echo "end $$ $(date +%s.%N) $VIGILD_TARGET" >> spans.txt\n'
    )
    script.chmod(0o755)
    return script


def spans(tmp_path: Path) -> list[tuple[str, int, float, str]]:
    path = tmp_path / "spans.txt"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(kind, int(pid), float(at), target) for kind, pid, at, target in lines]


def recorded(tmp_path: Path) -> list[ActionRun]:
    """The runs in the state file a daemon writes, once it has made it."""
    path = tmp_path / "state.db"
    return read_action_history(path, 100) if path.exists() else []


def marks(tmp_path: Path, kind: str) -> list[tuple[str, int, float, str]]:
    return [span for span in spans(tmp_path) if span[0] == kind]


async def test_a_run_survives_a_killed_vigild_and_no_second_copy_starts(tmp_path: Path) -> None:
    script = spans_script(tmp_path, sleep=2.5)
    config, listen = once_config(
        tmp_path, script, interval="1s", targets=("api", "web"), settings='cooldown = "0s"\n'
    )
    first = await Daemon(config, listen, environment()).start()
    await until(lambda: marks(tmp_path, "start"), 15, "the first run to start")
    await first.kill()
    second = await Daemon(config, listen, environment()).start()
    await until(lambda: len(marks(tmp_path, "end")) == 2, 20, "both runs to end")
    assert await second.stop() == 0
    (_, one, _, target), (_, _, second_began, other) = marks(tmp_path, "start")
    ends = {pid: at for _, pid, at, _ in marks(tmp_path, "end")}
    assert {target, other} == {"api", "web"}
    assert second_began >= ends[one], "a second copy started while the first still ran"
    runs = [r for r in recorded(tmp_path) if r.outcome != "skipped"]
    assert [(r.target, r.outcome) for r in runs] == [(target, "finished"), (other, "succeeded")]
    assert "exit code is unknown" in runs[0].detail
    assert runs[0].finished is not None and runs[0].finished >= ends[one] - 0.1
    assert [e["pgid"] for e in second.events("action run of a previous vigild: watching it")] == [
        one
    ]


async def test_a_run_left_by_a_killed_vigild_is_killed_at_its_timeout(tmp_path: Path) -> None:
    script = spans_script(tmp_path, sleep=60)
    config, listen = once_config(
        tmp_path, script, interval="1s", settings='timeout = "3s"\nkill_grace = "1s"\n'
    )
    first = await Daemon(config, listen, environment()).start()
    await until(lambda: marks(tmp_path, "start"), 15, "the run to start")
    await first.kill()
    [(_, pid, began, _)] = marks(tmp_path, "start")
    second = await Daemon(config, listen, environment()).start()

    await until(lambda: recorded(tmp_path)[0].outcome != "running", 15, "the run to be recorded")
    assert await second.stop() == 0
    [run] = recorded(tmp_path)  # max_runs: the incident had its run
    assert (run.outcome, run.detail) == ("timeout", "killed after 3s (started before a restart)")
    # Not before its timeout; after it, as soon as the restarted vigild looked.
    assert run.finished is not None and 3 - 0.1 <= run.finished - began < 3 + 5
    await until(lambda: _gone(pid), 5, "the script to end")
    assert marks(tmp_path, "end") == []


async def test_a_timeout_kills_what_left_the_process_group_and_reaps_it(tmp_path: Path) -> None:
    script = tmp_path / "escape.sh"
    # One sleep leaves the group and keeps its parent; the other is orphaned at once.
    # Both hold the output pipe open.
    script.write_text(
        "#!/bin/sh\n"
        "echo $$ > main.pid\n"
        "echo $PPID > vigild.pid\n"
        "setsid sleep 60 &\n"
        "echo $! > kept.pid\n"
        "sh -c 'setsid sleep 60 & echo $! > orphan.pid'\n"
        "sleep 60\n"
    )
    script.chmod(0o755)
    config, listen = once_config(
        tmp_path, script, interval="1s", settings='timeout = "1s"\nkill_grace = "5s"\n'
    )
    daemon = await Daemon(config, listen, environment()).start()

    await until(
        lambda: [r.outcome for r in recorded(tmp_path)] not in ([], ["running"]), 15, "the timeout"
    )
    [run] = recorded(tmp_path)
    assert run.outcome == "timeout"
    assert run.finished is not None and run.finished - run.started < 1 + 0.8
    for name in ("main", "kept", "orphan"):
        pid = int((tmp_path / f"{name}.pid").read_text())
        assert not psutil.pid_exists(pid), f"{name} ({pid}) is still there"
    vigild = psutil.Process(int((tmp_path / "vigild.pid").read_text()))
    assert [c for c in vigild.children() if c.status() == psutil.STATUS_ZOMBIE] == []
    assert await daemon.stop() == 0


async def test_output_is_redacted_before_its_tail_is_cut(rig: Rig, tmp_path: Path) -> None:
    secret = "s3cret-token-0123456789"
    script = tmp_path / "chatty.sh"
    # The cut at OUTPUT_LIMIT lands 7 characters before the secret's end.
    script.write_text(
        f"#!/bin/sh\nprintf %s \"$TOKEN\"\nhead -c {OUTPUT_LIMIT - 7} /dev/zero | tr '\\0' x\n"
    )
    script.chmod(0o755)
    rig.runner.configure(
        [action(command=[str(script)], env={"TOKEN": secret})],
        enabled=True,
        redact=lambda text: redact(text, {secret}),
    )
    rig.read("api", up=False)
    await rig.runner.wait_idle()
    [ran] = rig.history()
    assert ran.outcome == "succeeded"
    assert secret[-7:] not in ran.output
    assert ran.output.startswith(MASK) and ran.output.endswith("x" * 100)


def test_a_state_file_of_schema_3_gets_the_run_process_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '3');"
        "CREATE TABLE action_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL,"
        " fingerprint TEXT NOT NULL, target TEXT NOT NULL, metric TEXT NOT NULL,"
        " incident REAL NOT NULL, started REAL NOT NULL, finished REAL, outcome TEXT NOT NULL,"
        " detail TEXT NOT NULL DEFAULT '', exit_code INTEGER, output TEXT NOT NULL DEFAULT '',"
        " verified TEXT);"
        "INSERT INTO action_runs (action, fingerprint, target, metric, incident, started,"
        " outcome) VALUES ('rollback', 'f', 'api', 'up', 1.0, 2.0, 'running');"
    )
    old.close()
    store = Store(path)
    try:
        [run] = store.running_action_runs()
        assert (run.target, run.pgid, run.process_started, run.timeout) == ("api", None, None, None)
        store.record_action_process(run.id, 4242, 3.0)
        assert store.running_action_runs()[0].pgid == 4242
    finally:
        store.close()


async def test_a_run_is_known_by_its_start_time_not_by_its_pid_alone() -> None:
    sleeper = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        known = processes.identity(sleeper.pid)
        assert known is not None
        group, started = known
        assert processes.running(group, started)
        # The same pid with another start time is another process: the kernel reused it.
        assert not processes.running(group, started - 5)
    finally:
        sleeper.kill()
        await sleeper.wait()
    assert not processes.running(group, started)
