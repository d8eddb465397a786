"""Actions through the real ``vigild`` command: ``--once`` twice, a live daemon's
metrics, and a daemon killed while its action's process runs on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psutil
from action_rig import Rig, action
from action_scripts import gone, recording_script, runs_seen
from process import Daemon, environment, run, until
from targets import closed_port

from vigild.alerting.actions import processes
from vigild.storage import ActionRun, Database, read_action_history


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
    await until(lambda: gone(pid), 5, "the script to end")
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
    db = Database(path)
    try:
        [run] = db.actions.running()
        assert (run.target, run.pgid, run.process_started, run.timeout) == ("api", None, None, None)
        db.actions.record_process(run.id, 4242, 3.0)
        assert db.actions.running()[0].pgid == 4242
    finally:
        db.close()


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


# In this process, but it waits on a real process for the shortest timeout (1 s).
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
        await until(lambda pid=pid: gone(pid), 5, f"process {pid} from {name} to end")
    assert rig.outcomes == [("rollback", "timeout")]
