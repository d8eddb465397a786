"""systemd's notify protocol, against a real datagram socket the test binds.

The blocked-loop tests run the daemon in this process, so the test can block its
event loop; ``vigild run`` as systemd starts it is in tests/system/test_sdnotify.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from process import until
from sdnotify_socket import NotifySocket, write_config
from targets import TargetServer

from vigild.assembly import load
from vigild.daemon.app import STALL_AFTER
from vigild.daemon.app import Daemon as InProcessDaemon
from vigild.daemon.sdnotify import SystemdNotify, status_line
from vigild.model import Severity
from vigild.testing import FakeClock

PING_USEC = 100_000
"""WatchdogSec=100ms for the in-process daemon: a ping every 50 ms, so a blocked or
stalled stretch of a few tenths of a second misses several."""


async def start_in_process(
    tmp_path: Path,
    target: TargetServer,
    listener: NotifySocket,
    monotonic: Callable[[], float] = time.monotonic,
) -> InProcessDaemon:
    config, _ = write_config(tmp_path, target)
    daemon = InProcessDaemon(
        load(config), notify=SystemdNotify(listener.address, PING_USEC), monotonic=monotonic
    )
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
        time.sleep(0.4)  # a stuck probe library, a runaway computation: eight pings' time
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
    tmp_path: Path, target_server: TargetServer, notify_socket: NotifySocket
) -> None:
    clock = FakeClock()
    daemon = await start_in_process(tmp_path, target_server, notify_socket, monotonic=clock)
    stalled_after = 3 * 1.0 + STALL_AFTER  # three of write_config's 1 s intervals, the slack
    try:
        daemon.scheduler.pause()  # the loop lives on; no cycle starts any more
        clock.advance(stalled_after - 0.1)
        still = len(notify_socket.pings())
        await until(lambda: len(notify_socket.pings()) >= still + 2, what="pings within the slack")

        clock.advance(0.2)
        stalled = time.monotonic()
        await asyncio.sleep(0.5)  # ten pings' time
        # A ping sent just before the stall may still be on its way to the reader thread.
        assert notify_socket.pings(stalled + 0.2) == []
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
