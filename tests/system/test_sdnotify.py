"""sd_notify from a real ``vigild run`` with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` set, as
systemd starts it: READY, STATUS, the watchdog pings, RELOADING and STOPPING."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from process import Daemon, environment, until
from sdnotify_socket import WATCHDOG_USEC, NotifySocket, bind, write_config
from targets import TargetServer


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
