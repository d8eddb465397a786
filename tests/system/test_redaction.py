"""Secrets stay out of what the real ``vigild`` writes: ``--once`` reports, logs, the state
file, the API, the status page and apprise's own log lines."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cut_secret import CUT_SECRET, leaked
from process import Daemon, environment, run
from targets import StreamServer, closed_port


# A tcp target answers a secret that the error cuts
def tcp_config(tmp_path: Path, port: int, *, listen: str, notifier: str = "") -> Path:
    """A tcp target that sends the secret (from ${TCP_TOKEN}) and gets it quoted back,
    and a webhook notifier on a closed port, so the firing stays in the outbox."""
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
name = "auth"
type = "tcp"
host = "127.0.0.1"
port = {port}
send = "AUTH ${{TCP_TOKEN}}\\r\\n"
expect = "+OK"
timeout = "300ms"

[[notifiers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{closed_port()}/hook"
{notifier}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def echoing(stream_server: StreamServer) -> StreamServer:
    """A server that answers 20 characters, then the secret, whole, and waits: quoted
    in 40 characters, 20 of the secret would be left."""
    stream_server.banner = b"-ERR wrong password " + CUT_SECRET.encode() + b"\r\n"
    return stream_server


def state_text(path: Path) -> str:
    """Every value of the alerts and outbox tables, as one text."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM alerts").fetchall()
        rows += db.execute("SELECT * FROM outbox").fetchall()
    assert rows, "no alert or outbox entry was written"
    return "\n".join(str(value) for row in rows for value in row)


async def test_a_cut_secret_stays_out_of_once_reports_logs_and_the_state_file(
    tmp_path: Path, echoing: StreamServer
) -> None:
    config = tcp_config(tmp_path, echoing.port, listen=f"127.0.0.1:{closed_port()}")
    env = environment(TCP_TOKEN=CUT_SECRET)
    text = await run("--once", "--config", str(config), env=env)
    assert text.returncode == 2, text.stderr
    assert "auth  DOWN  expected '+OK', got '-ERR wrong password ***" in text.stdout
    as_json = await run("--once", "--config", str(config), "--format", "json", env=env)
    assert as_json.returncode == 2, as_json.stderr
    [target] = as_json.json["targets"]
    assert target["observation"]["error"].startswith("expected '+OK', got '-ERR wrong pass")
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert leaked(output) == set(), output
    assert leaked(state_text(tmp_path / "state.db")) == set()


async def test_a_cut_secret_stays_out_of_the_api_the_page_and_the_daemon_log(
    tmp_path: Path, echoing: StreamServer
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = tcp_config(tmp_path, echoing.port, listen=listen)
    daemon = await Daemon(config, listen, environment(TCP_TOKEN=CUT_SECRET)).start()
    await daemon.wait_ready()

    status: dict[str, Any] = {}
    for _ in range(100):
        status = await daemon.status()
        if status["alerts"]:
            break
        await asyncio.sleep(0.05)
    assert status["alerts"], status
    _, page = await daemon.get("/")
    assert "-ERR wrong password ***" in page
    await daemon.wait_log("notification retry")
    assert await daemon.stop() == 0
    for output in (json.dumps(status), page, "\n".join(daemon.log)):
        assert leaked(output) == set(), output
    assert leaked(state_text(tmp_path / "state.db")) == set()


async def test_apprise_log_lines_carry_no_piece_of_a_secret_url(tmp_path: Path) -> None:
    """apprise names the host of a URL that is a secret as a whole; vigild names its
    scheme and host: both are pieces of the secret."""
    url = f"json://127.0.0.1:{closed_port()}/hooks/{CUT_SECRET}"
    config = tcp_config(
        tmp_path,
        closed_port(),
        listen=f"127.0.0.1:{closed_port()}",
        notifier='[[notifiers]]\nname = "chat"\nurl = "${APPRISE_URL}"\n',
    )
    result = await run(
        "--once", "--config", str(config), env=environment(TCP_TOKEN="x", APPRISE_URL=url)
    )
    assert result.returncode == 2, result.stderr
    [apprise_line] = [line for line in result.stderr.splitlines() if '"apprise"' in line]
    assert "A Connection error occurred" in apprise_line
    assert leaked(result.stderr, url) == set(), result.stderr
