"""A SIGHUP storm while a firing waits in delivery backoff: reloads run one at a
time, delivery never runs twice for one notifier, and no task dies unnoticed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from faultkit import accepted, crashes, told, watch
from process import listen_address, start, until
from receivers import Receiver
from targets import TargetServer

HUPS = 50
APART = 0.02


async def test_fifty_hups_while_a_firing_backs_off_deliver_it_exactly_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    receiver.status = 503
    listen = listen_address()
    daemon = await start(watch(tmp_path, listen, receiver, {"api": target_server.url()}), listen)
    await daemon.wait_log("notification retry")  # the firing was refused: it backs off

    for _ in range(HUPS):
        daemon.signal(signal.SIGHUP)
        await asyncio.sleep(APART)
    receiver.status = 200
    await until(lambda: accepted(receiver), within=30, what="the firing accepted")
    await daemon.wait_log("config reloaded")
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 3, what="probing goes on after the storm")
    code, _ = await daemon.get("/readyz")
    assert code == 200
    assert told(accepted(receiver)) == {("api", "firing"): 1}

    target_server.status = 200
    await until(lambda: len(accepted(receiver)) >= 2, within=10, what="the resolved accepted")
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 2, what="two quiet cycles")
    assert await daemon.stop() == 0
    assert told(accepted(receiver)) == {("api", "firing"): 1, ("api", "resolved"): 1}
    assert crashes(daemon.log) == []
