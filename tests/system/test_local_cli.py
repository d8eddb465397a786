"""The CLI on the daemon's own host: the cookie, commands without the daemon's
variables, and the line a person reads once the first cycle is done."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
from process import Daemon, environment, run, until
from receivers import Receiver
from targets import TargetServer, closed_port

TOKEN = "remote-token-5f0e"


def write_config(
    tmp_path: Path, target: TargetServer, receiver: Receiver, listen: str, daemon_extra: str = ""
) -> Path:
    """A notifier and a token from variables the daemon's environment has and a
    person's shell may not; one target up, one down."""
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "vigild-state.db"}"
{daemon_extra}

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"

[[targets]]
name = "db"
type = "tcp"
host = "127.0.0.1"
port = {closed_port()}

[[notifiers]]
name = "discord"
url = "${{DISCORD_WEBHOOK_URL:-}}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "${{HOOK_URL}}"
"""
    )
    return path


async def post_silence(base: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + "/api/silences",
            json={"duration": "1h"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        return resp.status


async def test_the_cookie_lets_the_local_cli_write_and_dies_with_the_daemon(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(tmp_path, target_server, receiver, listen)
    daemon_env = environment(HOOK_URL=receiver.url("/hook"))
    cookie = tmp_path / "vigild-state.db.cookie"
    daemon = await Daemon(config, listen, daemon_env).start()
    await daemon.wait_ready()

    assert cookie.stat().st_mode & 0o777 == 0o600
    # No api_token anywhere, nothing in the shell's environment: the cookie is enough.
    added = await run(
        "silence", "add", "--duration", "2h", "--comment", "deploy", "--config", str(config)
    )
    assert added.returncode == 0, added.stderr
    listing = await run("silence", "list", "--config", str(config))
    assert added.stdout.strip() in listing.stdout and "deploy" in listing.stdout

    # A second daemon on the same state file is turned away before it writes a cookie.
    written = cookie.read_text()
    second = await run("run", "--config", str(config), env=daemon_env)
    assert second.returncode == 2, second.stderr
    assert cookie.read_text() == written

    # A daemon killed outright leaves its cookie; the next start replaces it, and
    # the old token opens nothing.
    old = cookie.read_text().strip()
    await daemon.kill()
    assert cookie.exists()
    restarted = await Daemon(config, listen, daemon_env).start()
    await restarted.wait_ready()
    assert cookie.read_text().strip() != old
    assert cookie.stat().st_mode & 0o777 == 0o600
    assert await post_silence(restarted.base, old) == 401
    again = await run("silence", "add", "--duration", "5m", "--config", str(config))
    assert again.returncode == 0, again.stderr

    restarted.signal(signal.SIGTERM)
    assert await restarted.wait() == 0
    assert not cookie.exists()


async def test_api_token_still_serves_remote_clients_beside_the_cookie(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(
        tmp_path, target_server, receiver, listen, 'api_token = "${VIGILD_TEST_TOKEN}"'
    )
    daemon_env = environment(HOOK_URL=receiver.url("/hook"), VIGILD_TEST_TOKEN=TOKEN)
    daemon = await Daemon(config, listen, daemon_env).start()
    await daemon.wait_ready()
    cookie = (tmp_path / "vigild-state.db.cookie").read_text().strip()
    assert await post_silence(daemon.base, TOKEN) == 201
    assert await post_silence(daemon.base, cookie) == 201
    assert await post_silence(daemon.base, TOKEN[:-1]) == 401
    assert await daemon.stop() == 0


async def test_listening_on_every_interface_without_api_token_says_who_may_write(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    port = closed_port()
    config = write_config(tmp_path, target_server, receiver, f"0.0.0.0:{port}")
    daemon = await Daemon(
        config, f"127.0.0.1:{port}", environment(HOOK_URL=receiver.url("/hook"))
    ).start()
    await daemon.wait_ready()
    [warning] = [line for line in daemon.log if "listening beyond this host" in line]
    assert "writes need the cookie file, so only local users who can read it can write" in warning
    # Reads are open to the network, writes are not: no token, no write.
    assert await post_silence(daemon.base, "") == 401
    assert await post_silence(daemon.base, "guess") == 401
    added = await run("silence", "add", "--duration", "5m", "--config", str(config))
    assert added.returncode == 0, added.stderr  # the CLI goes through loopback, with the cookie
    # Without the cookie (here: another state directory) the CLI says what would help.
    elsewhere = environment(VIGILD_STATE_PATH=str(tmp_path / "other" / "state.db"))
    refused = await run(
        "silence", "add", "--duration", "5m", "--config", str(config), env=elsewhere
    )
    assert refused.returncode == 1
    assert "a valid bearer token is required" in refused.stderr
    assert "other/state.db.cookie cannot be read by this user" in refused.stderr
    assert await daemon.stop() == 0


async def test_read_only_commands_need_none_of_the_daemons_variables(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(
        tmp_path, target_server, receiver, listen, 'api_token = "${VIGILD_TEST_TOKEN}"'
    )
    daemon_env = environment(HOOK_URL=receiver.url("/hook"), VIGILD_TEST_TOKEN=TOKEN)
    daemon = await Daemon(config, listen, daemon_env).start()
    await daemon.wait_ready()
    assert daemon.events("notifier 'discord' is disabled: its url or key is empty")

    # A person's shell: no HOOK_URL, no DISCORD_WEBHOOK_URL, no token variable.
    for command in (
        ("actions", "history"),
        ("silence", "list"),
        ("healthcheck",),
        ("silence", "add", "--duration", "5m"),  # the cookie stands in for the token
    ):
        result = await run(*command, "--config", str(config))
        assert result.returncode == 0, (command, result.stderr)
        assert "is disabled" not in result.stderr, command
        assert "HOOK_URL" not in result.stderr, command
    assert await daemon.stop() == 0

    # The commands that would notify still say a notifier is off; check-config
    # says it in its summary, not as a warning.
    checked = await run("check-config", "--config", str(config), env=daemon_env)
    assert checked.returncode == 0, checked.stderr
    assert "disabled:  discord" in checked.stdout and "is disabled" not in checked.stderr
    once = await run("--once", "--config", str(config), env=daemon_env)
    assert "notifier 'discord' is disabled" in once.stderr


async def test_the_first_cycle_ends_with_a_line_a_person_reads(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = write_config(tmp_path, target_server, receiver, listen)
    daemon = await Daemon(config, listen, environment(HOOK_URL=receiver.url("/hook"))).start()
    line = (
        f"watching 2 targets (1 ok, 1 critical) · status page http://{listen}/ · "
        f"state {tmp_path / 'vigild-state.db'}"
    )
    await daemon.wait_log(line)
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 2, what="two cycles more")
    assert await daemon.stop() == 0
    assert len(daemon.events(line)) == 1, json.dumps(daemon.log)  # once, not every cycle


async def test_the_first_run_line_waits_for_every_interval(
    tmp_path: Path, target_server: TargetServer
) -> None:
    """A target of a slower interval starts its first cycle later; the line counts it
    as probed, not as "not probed yet"."""
    listen = f"127.0.0.1:{closed_port()}"
    config = tmp_path / "vigild.toml"
    config.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "vigild-state.db"}"

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"

[[targets]]
name = "db"
type = "tcp"
host = "127.0.0.1"
port = {closed_port()}
interval = "5s"
"""
    )
    daemon = await Daemon(config, listen).start()

    def greetings() -> list[str]:
        events = (json.loads(line) for line in daemon.log if line.startswith("{"))
        return [e["event"] for e in events if e["event"].startswith("watching ")]

    await until(lambda: greetings() != [], what="the first-run line")
    assert await daemon.stop() == 0
    [line] = greetings()
    assert line.startswith("watching 2 targets (1 ok, 1 critical) · "), line
