"""systemd's notify protocol, against a real datagram socket the test binds.

The daemon runs as ``vigild run`` in a subprocess with ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` set as systemd sets them; the blocked-loop tests run the
daemon in this process, so the test can block its event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from process import Daemon, environment, until
from targets import TargetServer, closed_port

from vigild.config import load
from vigild.daemon import app as app_module
from vigild.daemon.app import Daemon as InProcessDaemon
from vigild.daemon.sdnotify import SystemdNotify, status_line
from vigild.model import Severity

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


async def test_ready_status_watchdog_reload_and_stop_over_a_real_socket(
    tmp_path: Path, target_server: TargetServer, notify_socket: NotifySocket
) -> None:
    config, listen = write_config(tmp_path, target_server)
    env = environment(NOTIFY_SOCKET=notify_socket.address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    daemon = await Daemon(config, listen, env).start()

    ready = await notify_socket.wait("READY", "1")
    assert ready.fields["STATUS"].startswith("1 target")
    await daemon.wait_ready()  # systemd's READY=1 comes no earlier than /readyz
    await until(lambda: target_server.hits >= 2, what="probes")

    # The watchdog period asked for is 400 ms, so a ping every 200 ms.
    window_start = time.monotonic()
    await asyncio.sleep(2.0)
    pings = notify_socket.pings(window_start, window_start + 2.0)
    assert 5 <= len(pings) <= 15, [m.at - window_start for m in pings]

    target_server.status = 503
    status = await notify_socket.wait("STATUS", "1 target, 1 critical")
    assert set(status.fields) == {"STATUS"}  # a change of state, said on its own
    target_server.status = 200
    await notify_socket.wait("STATUS", "1 target, all ok", count=2)  # READY's, then this

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.signal(signal.SIGHUP)
    reloading = await notify_socket.wait("RELOADING", "1")
    stamp = int(reloading.fields["MONOTONIC_USEC"])
    assert before <= stamp < before + 10_000_000  # systemd's clock, in microseconds
    ready_again = await notify_socket.wait("READY", "1", count=2)
    assert ready_again.at >= reloading.at
    await daemon.wait_log("config reloaded")

    assert await daemon.stop() == 0
    stopping = notify_socket.with_key("STOPPING", "1")
    assert len(stopping) == 1
    assert not notify_socket.pings(stopping[0].at + 0.05)  # no pings while stopping


async def test_abstract_socket_and_a_watchdog_meant_for_another_process(
    tmp_path: Path, target_server: TargetServer
) -> None:
    listener = bind(f"@vigild-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        config, listen = write_config(tmp_path, target_server)
        env = environment(
            NOTIFY_SOCKET=listener.address,
            WATCHDOG_USEC=str(WATCHDOG_USEC),
            WATCHDOG_PID="1",  # not vigild: its wrapper's, say
        )
        daemon = await Daemon(config, listen, env).start()
        await listener.wait("READY", "1")
        await until(lambda: target_server.hits >= 3, what="probes")
        await asyncio.sleep(0.5)
        assert listener.pings() == []
        assert await daemon.stop() == 0
        await listener.wait("STOPPING", "1")
    finally:
        listener.close()


async def start_in_process(
    tmp_path: Path, target: TargetServer, listener: NotifySocket
) -> InProcessDaemon:
    config, _ = write_config(tmp_path, target)
    daemon = InProcessDaemon(load(config), notify=SystemdNotify(listener.address, WATCHDOG_USEC))
    await daemon.setup()
    await daemon.start()
    await listener.wait("WATCHDOG", "1", count=3)
    return daemon


async def test_a_blocked_event_loop_sends_no_pings(
    tmp_path: Path, target_server: TargetServer, notify_socket: NotifySocket
) -> None:
    daemon = await start_in_process(tmp_path, target_server, notify_socket)
    blocked: list[float] = []

    def block() -> None:
        blocked.append(time.monotonic())
        time.sleep(1.2)  # a stuck probe library, a runaway computation
        blocked.append(time.monotonic())

    try:
        asyncio.get_running_loop().call_soon(block)
        await asyncio.sleep(0)
        start, end = blocked
        # A ping sent just before the block may still be in flight at its start.
        assert notify_socket.pings(start + 0.05, end) == []
        await until(lambda: len(notify_socket.pings(end)) >= 3, what="pings after the block")
    finally:
        await daemon.shutdown()


async def test_a_stalled_scheduler_stops_the_pings(
    tmp_path: Path,
    target_server: TargetServer,
    notify_socket: NotifySocket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "STALL_AFTER", 0.3)
    daemon = await start_in_process(tmp_path, target_server, notify_socket)
    try:
        daemon.scheduler.pause()  # the loop lives on; no cycle starts any more
        paused = time.monotonic()
        await asyncio.sleep(3 * 1.0 + 0.3 + 0.5)  # three 1 s intervals, the slack, a margin
        quiet_since = time.monotonic() - 0.3
        await asyncio.sleep(0.6)
        assert notify_socket.pings(quiet_since) == []
        assert notify_socket.pings(paused - 1.0)  # it was pinging before
    finally:
        await daemon.shutdown()


def test_environment_is_read_once_and_unset_for_children() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notify = SystemdNotify.from_environment(env)
    assert notify.watchdog_interval == 15.0
    assert env == {}  # an action's command must not speak for vigild

    other = SystemdNotify.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_PID": "1"} | {"WATCHDOG_USEC": "30000000"}
    )
    assert other.enabled and other.watchdog_interval is None


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notify = SystemdNotify.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notify.enabled and notify.watchdog_interval is None
    assert notify.ready("x") is False and notify.stopping() is False


def test_a_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    notify = SystemdNotify(str(tmp_path / "gone"))
    assert notify.ready("1 target, all ok") is False
    notify.close()


def test_status_line() -> None:
    crit, warn, ok = Severity.CRITICAL, Severity.WARNING, Severity.OK
    assert status_line(12, [crit, ok, warn, ok]) == "12 targets, 1 critical, 1 warning"
    assert status_line(1, [ok]) == "1 target, all ok"
    assert status_line(0, []) == "0 targets, all ok"
