"""One daemon config the end-to-end tests share (a target, a webhook and an apprise
notifier, labels and a secret from the environment), and ``vigild run`` started on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from process import Daemon, environment, listen_address
from receivers import Receiver
from targets import TargetServer

INTERVAL = "1s"


def write_config(
    path: Path,
    *,
    listen: str,
    target: TargetServer,
    receiver: Receiver,
    extra_targets: str = "",
    thresholds: str = "",
) -> Path:
    path.write_text(
        f"""
[daemon]
interval = "{INTERVAL}"
listen = "{listen}"
state_path = "{path.parent / "state.db"}"
instance = "nas"
external_labels = {{ env = "prod" }}
replica = "b"

[alerting]
group_wait = "0s"

[thresholds]
{thresholds}

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}
labels = {{ team = "core" }}
{extra_targets}

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"

[[notifiers]]
name = "chat"
url = "json://127.0.0.1:{receiver.port}/chat"
"""
    )
    return path


def sent(receiver: Receiver, path: str) -> list[Any]:
    return [r.json for r in receiver.requests if r.path == path]


ENV = environment(API_TOKEN="tok-3f9a7c")


async def start_daemon(
    tmp_path: Path,
    target: TargetServer,
    receiver: Receiver,
    env: dict[str, str] = ENV,
    **config: str,
) -> Daemon:
    """Write a config for ``target`` and ``receiver``, start ``vigild run``, wait until ready."""
    listen = listen_address()
    path = write_config(
        tmp_path / "t.toml", listen=listen, target=target, receiver=receiver, **config
    )
    daemon = await Daemon(path, listen, env).start()
    await daemon.wait_ready()
    return daemon
