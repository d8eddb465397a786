"""A config whose two targets share an interval: one healthy, one that hangs."""

from __future__ import annotations

from pathlib import Path

from receivers import Receiver
from targets import TargetServer


def two_targets(path: Path, server: TargetServer, receiver: Receiver, listen: str) -> Path:
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{path.parent / "state.db"}"

[alerting]
group_wait = "0s"

[[targets]]
name = "healthy"
type = "http"
url = "{server.url("/healthy")}"

[[targets]]
name = "hung"
type = "http"
url = "{server.url("/hung")}"
timeout = "1s"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
"""
    )
    return path
