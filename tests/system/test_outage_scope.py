"""One outage, one page, end to end: ``depends_on`` and ``connectivity_check`` as a user
writes them, through real ``vigild --once`` runs and a recording webhook receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from process import run
from receivers import Receiver
from targets import TargetServer, closed_port


def config(tmp_path: Path, receiver: Receiver, body: str, daemon: str = "") -> Path:
    path = tmp_path / "t.toml"
    path.write_text(
        f"""
[daemon]
state_path = "{tmp_path / "state.db"}"
{daemon}

[alerting]
group_wait = "0s"

{body}

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
"""
    )
    return path


def alerts(receiver: Receiver) -> list[tuple[str, str, str]]:
    told: list[Any] = [r.json for r in receiver.requests]
    return sorted(
        (a["labels"]["target"], a["labels"]["alertname"], a["status"])
        for body in told
        for a in body["alerts"]
    )


async def test_a_service_whose_database_is_down_does_not_page_for_itself(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503  # the API fails because its database does
    path = config(
        tmp_path,
        receiver,
        f"""
[[targets]]
name = "db"
type = "tcp"
host = "127.0.0.1"
port = {closed_port()}

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"
depends_on = ["db"]
""",
    )
    first = await run("--once", "--format", "json", "--config", str(path))
    assert first.returncode == 2, first.stderr
    assert alerts(receiver) == [("db", "up", "firing")]
    [api] = [a for a in first.json["alerts"] if a["target"] == "api"]
    assert api["state"] == "firing" and api["inhibited"] is True
    assert api["inhibited_because"] == "depends on db, which is down"


async def test_a_lost_network_is_one_message_and_nothing_else(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    path = config(
        tmp_path,
        receiver,
        f"""
[[targets]]
name = "router"
type = "tcp"
host = "127.0.0.1"
port = {closed_port()}

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"

[[targets]]
name = "web"
type = "http"
url = "{target_server.url("/web")}"
""",
        daemon='connectivity_check = "router"',
    )
    result = await run("--once", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert alerts(receiver) == [("router", "up", "firing")]
    [body] = [r.json for r in receiver.requests]
    description = body["alerts"][0]["annotations"]["description"]
    assert description.startswith("vigild lost its network (connection refused)")
    assert "held back" in result.stdout
