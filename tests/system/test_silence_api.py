"""Silences at runtime: the API and ``vigild silence``, against a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from process import Daemon, environment, run, until
from receivers import Receiver
from targets import TargetServer, closed_port

TOKEN = "s3cret-token-8c1d"
ENV = environment(VIGILD_TEST_TOKEN=TOKEN)


def write_config(
    tmp_path: Path, target: TargetServer, receiver: Receiver, listen: str, daemon_extra: str = ""
) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"
{daemon_extra}

[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
"""
    )
    return path


async def post(
    daemon: Daemon, body: object, token: str | None = None
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(daemon.base + "/api/silences", json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_silence_through_the_api_and_the_command_line(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(
        tmp_path, target_server, receiver, listen, 'api_token = "${VIGILD_TEST_TOKEN}"'
    )
    daemon = await Daemon(config, listen, ENV).start()
    await daemon.wait_ready()

    body = {"matchers": {"target": "api"}, "duration": "1h", "comment": "deploy"}
    assert (await post(daemon, body))[0] == 401
    assert (await post(daemon, body, "wrong"))[0] == 401
    status, answer = await post(daemon, {"matchers": {"target": "api"}}, TOKEN)
    assert status == 400 and "a silence needs ends, duration or schedule" in json.dumps(answer)
    status, answer = await post(daemon, body, TOKEN)
    assert status == 201
    silence_id = answer["id"]
    assert isinstance(silence_id, str)

    # Muted, not blind: the alert opens and /api/status says what mutes it.
    target_server.status = 503
    await until(lambda: target_server.hits >= 6, what="probes of the failing target")
    document = await daemon.status()
    [alert] = document["alerts"]
    assert alert["state"] == "firing" and alert["silenced_by"] == silence_id
    assert [s["id"] for s in document["silences"]] == [silence_id]
    assert TOKEN not in json.dumps(document)
    await receiver.wait_quiet(1.5)  # a cycle more, silenced too
    assert receiver.requests == []

    listing = await run("silence", "list", "--config", str(config), env=ENV)
    assert listing.returncode == 0, listing.stderr
    assert silence_id in listing.stdout and "active" in listing.stdout
    assert "deploy" in listing.stdout

    expired = await run("silence", "expire", silence_id, "--config", str(config), env=ENV)
    assert expired.returncode == 0, expired.stderr
    await receiver.wait_for(1)  # the silence ended; the alert still open is told now
    [hook] = [r.json for r in receiver.requests]
    assert hook["status"] == "firing" and hook["alerts"][0]["labels"]["alertname"] == "up"

    again = await run("silence", "expire", silence_id, "--config", str(config), env=ENV)
    assert again.returncode == 1 and f"no silence {silence_id}" in again.stderr

    added = await run(
        "silence",
        "add",
        "--target",
        "db*",
        "--duration",
        "2h",
        "--comment",
        "migration",
        "--config",
        str(config),
        env=ENV,
    )
    assert added.returncode == 0, added.stderr
    kept_id = added.stdout.strip()

    # Runtime silences live in the state file: a restart keeps them.
    assert await daemon.stop() == 0
    restarted = await Daemon(config, listen, ENV).start()
    await restarted.wait_ready()
    code, text = await restarted.get("/api/silences")
    assert code == 200
    [kept] = json.loads(text)
    assert kept["id"] == kept_id and kept["matchers"]["target"] == "db*"
    assert kept["comment"] == "migration" and kept["active"] is True
    assert await restarted.stop() == 0


async def test_without_api_token_writes_need_the_cookie(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    daemon = await Daemon(write_config(tmp_path, target_server, receiver, listen), listen).start()
    await daemon.wait_ready()
    status, answer = await post(daemon, {"duration": "1h"}, "anything")
    assert status == 401 and "cookie" in str(answer["error"])
    code, _ = await daemon.get("/api/silences")
    assert code == 200  # reads stay open, like /metrics
    assert await daemon.stop() == 0


async def test_a_unix_socket_listener_needs_no_token(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    socket_path = tmp_path / "api.sock"
    config = write_config(tmp_path, target_server, receiver, f"unix:{socket_path}")
    daemon = await Daemon(config, "unused").start()
    await until(socket_path.exists, what="the API socket")
    assert socket_path.stat().st_mode & 0o777 == 0o660
    added = await run("silence", "add", "--duration", "5m", "--config", str(config))
    assert added.returncode == 0, added.stderr
    listing = await run("silence", "list", "--config", str(config))
    assert added.stdout.strip() in listing.stdout
    assert await daemon.stop() == 0


async def test_the_command_line_says_when_no_daemon_listens(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(tmp_path, target_server, receiver, listen)
    result = await run("silence", "list", "--config", str(config))
    assert result.returncode == 1
    assert f"cannot reach vigild at {listen}" in result.stderr
    assert "is the daemon running?" in result.stderr
