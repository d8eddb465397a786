"""systemd's side of sd_notify: a bound datagram socket that records what vigild says on it,
with arrival times; and a one-target config to start vigild on."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from process import until
from targets import TargetServer, closed_port

WATCHDOG_USEC = 400_000
"""systemd's WatchdogSec=400ms: vigild pings every 200 ms."""


@dataclass
class Message:
    at: float
    """time.monotonic() on arrival."""
    fields: dict[str, str]


@dataclass
class NotifySocket:
    """A bound AF_UNIX datagram socket, read by a thread so arrival times stay true
    even while the test's own event loop is blocked."""

    address: str
    """As NOTIFY_SOCKET spells it: a path, or ``@name`` in the abstract namespace."""
    sock: socket.socket
    messages: list[Message] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines())
            self.messages.append(Message(time.monotonic(), fields))

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)

    def with_key(self, key: str, value: str | None = None) -> list[Message]:
        return [
            m
            for m in list(self.messages)
            if key in m.fields and (value is None or m.fields[key] == value)
        ]

    def pings(self, start: float = 0.0, end: float = float("inf")) -> list[Message]:
        return [m for m in self.with_key("WATCHDOG", "1") if start <= m.at < end]

    async def wait(self, key: str, value: str | None = None, count: int = 1) -> Message:
        await until(
            lambda: len(self.with_key(key, value)) >= count, 15.0, f"{count}x {key}={value}"
        )
        return self.with_key(key, value)[count - 1]


def bind(address: str) -> NotifySocket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    listener = NotifySocket(address, sock)
    listener.start()
    return listener


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # Short: a socket path may not exceed 107 bytes, and tmp_path can.
    directory = tempfile.mkdtemp(prefix="vigild-sd-")
    listener = bind(os.path.join(directory, "notify"))
    yield listener
    listener.close()
    shutil.rmtree(directory, ignore_errors=True)


def write_config(tmp_path: Path, target: TargetServer) -> tuple[Path, str]:
    listen = f"127.0.0.1:{closed_port()}"
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\ninterval = "1s"\nlisten = "{listen}"\n'
        f'state_path = "{tmp_path / "state.db"}"\n'
        f'[[targets]]\nname = "api"\ntype = "http"\nurl = "{target.url()}"\n'
    )
    return path, listen
