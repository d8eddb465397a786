"""``POST /ping/<key>`` on a daemon in this process: real HTTP on loopback, a real
state file and webhook receiver, and a fake clock that walks past due times at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from process import listen_address
from receivers import Receiver

from vigild.assembly import load
from vigild.cookie import cookie_path, read_cookie
from vigild.daemon.app import Daemon
from vigild.probes.push import MAX_OUTPUT
from vigild.testing import FakeClock

KEY = "k3y-0f-the-certs-job"
"""``ping_key`` of ``certs``, from the environment: a secret, so masked in every body."""

HOUR = 3600.0


@pytest.fixture
async def daemon(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Daemon, FakeClock, str]]:
    monkeypatch.setenv("CERTS_PING_KEY", KEY)
    listen = listen_address()
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
interval = "1d"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"

[alerting]
group_wait = "0s"

[[targets]]
name = "backup"
type = "push"
period = "1h"
grace = "10m"

[[targets]]
name = "certs"
type = "push"
schedule = "0 3 * * *"
ping_key = "${{CERTS_PING_KEY}}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
"""
    )
    clock = FakeClock()
    app = Daemon(load(path), clock=clock)
    await app.setup()
    await app.start()
    try:
        yield app, clock, f"http://{listen}"
    finally:
        await app.shutdown()


async def post(url: str, body: bytes = b"", token: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def metric(base: str, line: str) -> bool:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        return line in (await resp.text()).splitlines()


async def test_a_failed_run_pages_at_once_with_its_status_and_redacted_output(
    daemon: tuple[Daemon, FakeClock, str], receiver: Receiver
) -> None:
    app, _clock, base = daemon
    assert await post(f"{base}/ping/backup/start") == (200, {"target": "backup", "ping": "start"})
    output = b"x" * (3 * MAX_OUTPUT) + f"\nauth with {KEY} refused\ntar: exit 2\n".encode()
    assert (await post(f"{base}/ping/backup/2", output))[0] == 200
    [request] = await receiver.wait_for(1)
    [alert] = request.json["alerts"]
    assert alert["labels"]["target"] == "backup"
    assert alert["annotations"]["summary"].startswith("backup is DOWN")
    assert "failed with exit status 2 at" in alert["annotations"]["summary"]
    description = alert["annotations"]["description"]
    assert "last success: never" in description
    assert description.endswith("  auth with *** refused\n  tar: exit 2")
    run = app.runtime.db.push_runs.get("backup")
    assert run is not None and run.exit_status == 2
    # The body's end, bounded and redacted, is what the state file keeps.
    assert len(run.output.encode()) <= MAX_OUTPUT
    assert KEY not in run.output and run.output.endswith("tar: exit 2\n")


async def test_a_late_job_pages_once_at_due_plus_grace_and_resolves_on_its_success(
    daemon: tuple[Daemon, FakeClock, str], receiver: Receiver
) -> None:
    app, clock, base = daemon
    assert (await post(f"{base}/ping/backup"))[0] == 200  # due an hour from now
    clock.advance(HOUR + 10 * 60)
    await app.runtime.run_cycle()
    assert await receiver.wait_quiet(0.2) == []  # at due + grace, not yet late
    clock.advance(1)
    await app.runtime.run_cycle()
    [request] = await receiver.wait_for(1)
    [alert] = request.json["alerts"]
    assert alert["status"] == "firing"
    assert "late: due " in alert["annotations"]["summary"]
    assert "last success: " in alert["annotations"]["description"]
    clock.advance(60)
    await app.runtime.run_cycle()  # still late: told once, not every cycle
    assert len(await receiver.wait_quiet(0.2)) == 1
    assert (await post(f"{base}/ping/backup"))[0] == 200  # judged at the ping, not next cycle
    requests = await receiver.wait_for(2)
    assert requests[1].json["alerts"][0]["status"] == "resolved"


async def test_a_ping_key_is_the_only_way_in_without_a_token(
    daemon: tuple[Daemon, FakeClock, str],
) -> None:
    app, _clock, base = daemon
    assert (await post(f"{base}/ping/certs"))[0] == 404  # its name is no key
    assert await post(f"{base}/ping/{KEY}/start") == (200, {"target": "certs", "ping": "start"})
    # With the cookie (what `vigild ping` sends), the name is enough.
    cookie = read_cookie(cookie_path(app.config.daemon.state_path))
    assert (await post(f"{base}/ping/certs/0", token=cookie))[0] == 200
    run = app.runtime.db.push_runs.get("certs")
    assert run is not None and run.succeeded is not None and run.duration == 0.0
    assert (await post(f"{base}/ping/certs", token="wrong"))[0] == 404


async def test_an_unknown_key_or_a_bad_status_is_refused_and_counted(
    daemon: tuple[Daemon, FakeClock, str],
) -> None:
    _app, _clock, base = daemon
    assert await post(f"{base}/ping/nobody") == (404, {"error": "no push target has this key"})
    status, answer = await post(f"{base}/ping/backup/256")
    assert status == 400 and "not start, fail or an exit status 0-255" in str(answer)
    assert await metric(base, 'vigild_pings_total{outcome="unknown_key"} 1.0')
    assert await metric(base, 'vigild_pings_total{outcome="invalid"} 1.0')
    assert await metric(base, 'vigild_pings_total{outcome="recorded"} 0.0')
