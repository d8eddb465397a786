"""Push checks end to end: the real ``vigild run``, ``--once``, ``ping`` and ``wrap``
commands as subprocesses, a real webhook receiver, and real time where the daemon
keeps it (a 2 s period with 1 s grace keeps that quick)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

from process import VIGILD, Daemon, environment, listen_address, run
from receivers import Receiver

from vigild.storage.lock import StateLock

SECRET = "s3cr3t-token-of-the-hook"


def write_config(tmp_path: Path, receiver: Receiver, listen: str, target: str) -> Path:
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"

[alerting]
group_wait = "0s"

[[targets]]
name = "backup"
type = "push"
{target}

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}?token=${{HOOK_TOKEN}}"
"""
    )
    return path


def env(**extra: str) -> dict[str, str]:
    return environment(HOOK_TOKEN=SECRET, **extra)


def output_of(tmp_path: Path) -> str:
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        return str(db.execute("SELECT output FROM push_runs WHERE target = 'backup'").fetchone()[0])
    finally:
        db.close()


async def test_a_missed_period_pages_once_at_due_plus_grace_and_resolves_on_success(
    tmp_path: Path, receiver: Receiver
) -> None:
    listen = listen_address()
    config = write_config(tmp_path, receiver, listen, 'period = "2s"\ngrace = "1s"')
    daemon = await Daemon(config, listen, env()).start()
    try:
        await daemon.wait_ready()
        loop = asyncio.get_running_loop()
        since = loop.time()  # before the ping: the success is recorded after it
        pinged = await run("ping", "backup", "--config", str(config), env=env())
        assert pinged.returncode == 0, pinged.stderr
        [request] = await receiver.wait_for(1, timeout=10)
        # Due 2 s after the success, late past 1 s of grace, seen by a cycle a second apart.
        assert 3.0 <= loop.time() - since < 8.0
        [alert] = request.json["alerts"]
        assert alert["status"] == "firing"
        assert alert["annotations"]["summary"].startswith("backup is DOWN on ")
        assert "late: due " in alert["annotations"]["summary"]
        assert "last success: " in alert["annotations"]["description"]
        assert len(await receiver.wait_quiet(2.0)) == 1  # late every cycle, told once
        pinged = await run("ping", "backup", "--config", str(config), env=env())
        assert pinged.returncode == 0, pinged.stderr
        requests = await receiver.wait_for(2, timeout=5)
        assert [r.json["alerts"][0]["status"] for r in requests] == ["firing", "resolved"]
    finally:
        assert await daemon.stop() == 0


async def test_wrap_around_a_failing_command_pages_with_its_status_and_output(
    tmp_path: Path, receiver: Receiver
) -> None:
    listen = listen_address()
    config = write_config(tmp_path, receiver, listen, 'period = "1d"\nmax_duration = "1h"')
    daemon = await Daemon(config, listen, env()).start()
    try:
        await daemon.wait_ready()
        script = f"echo copying; echo 'login {SECRET} refused' >&2; exit 3"
        wrapped = await run(
            "wrap", "backup", "--config", str(config), "--", "sh", "-c", script, env=env()
        )
        assert wrapped.returncode == 3, wrapped.stderr
        assert wrapped.stdout == f"copying\nlogin {SECRET} refused\n"  # passed through
        [request] = await receiver.wait_for(1, timeout=5)
        [alert] = request.json["alerts"]
        assert "failed with exit status 3 at" in alert["annotations"]["summary"]
        assert alert["annotations"]["description"].endswith(
            "last output:\n  copying\n  login *** refused"
        )
        assert SECRET not in request.text
    finally:
        assert await daemon.stop() == 0


async def test_a_ping_with_no_daemon_is_seen_by_the_next_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path, receiver, listen_address(), 'period = "1d"')
    data = tmp_path / "job.log"
    data.write_bytes(b"z" * 50_000 + f"\nlast words with {SECRET}\n".encode())
    failed = await run(
        "ping", "backup", "fail", "--data-file", str(data), "--config", str(config), env=env()
    )
    assert failed.returncode == 0, failed.stderr
    assert failed.stdout == "" and failed.stderr == ""  # quiet for cron's mail
    kept = output_of(tmp_path)
    assert len(kept.encode()) <= 10 * 1024 and kept.endswith("last words with ***\n")
    once = await run("--once", "--config", str(config), env=env())
    assert once.returncode == 2, once.stdout
    assert "backup  DOWN  failed at " in once.stdout
    assert "      last words with ***" in once.stdout
    assert SECRET not in once.stdout
    succeeded = await run("ping", "backup", "0", "--config", str(config), env=env())
    assert succeeded.returncode == 0, succeeded.stderr
    once = await run("--once", "--config", str(config), env=env())
    assert once.returncode == 0, once.stdout
    requests = await receiver.wait_for(2)
    assert [r.json["status"] for r in requests] == ["firing", "resolved"]


async def test_a_ping_waits_for_a_run_that_holds_the_state_file(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path, receiver, listen_address(), 'period = "1d"')
    lock = StateLock(tmp_path / "state.db")
    lock.acquire(0)
    try:
        pinging = asyncio.create_task(
            run(
                "ping",
                "backup",
                "--config",
                str(config),
                env=env() | {"VIGILD_TEST_LOCK_WAIT": "10"},
            )
        )
        await asyncio.sleep(0.5)
        assert not pinging.done()
    finally:
        lock.release()
    pinged = await pinging
    assert pinged.returncode == 0, pinged.stderr
    refused = await run("ping", "nightly", "--config", str(config), env=env())
    assert refused.returncode == 1
    assert "has no push target named 'nightly'" in refused.stderr


async def test_wrap_forwards_a_signal_and_exits_with_the_commands_status(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path, receiver, listen_address(), 'period = "1d"')
    ready = tmp_path / "ready"
    script = f"trap 'echo stopping; exit 7' TERM; touch {ready}; while :; do sleep 0.05; done"
    process = await asyncio.create_subprocess_exec(
        *VIGILD,
        "wrap",
        "backup",
        "--config",
        str(config),
        "--",
        "sh",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env(),
    )
    try:
        for _ in range(200):
            if ready.exists():
                break
            await asyncio.sleep(0.05)
        assert ready.exists()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 7, stderr.decode()
    assert stdout.decode() == "stopping\n"
    once = await run("--once", "--config", str(config), env=env())
    assert "failed with exit status 7 at" in once.stdout


async def test_wrap_runs_the_job_even_with_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[daemon\n")
    wrapped = await run(
        "wrap", "backup", "--config", str(config), "--", sys.executable, "-c", "print('ran')"
    )
    assert wrapped.returncode == 0
    assert wrapped.stdout == "ran\n"
    assert "not valid TOML" in wrapped.stderr
