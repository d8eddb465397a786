"""Hostile targets all at once, beside a healthy one of the same interval: each
hostile one pages once, and the healthy one is still probed every interval.

The hostile ones: a target that hangs until the probe's timeout, a body of
endless megabytes sent as fast as read, a 1 GB chunked body trickled slowly,
binary garbage declared as JSON, headers trickled a byte at a time (slowloris),
a connection closed in the middle of the headers, and a 1 MiB header line.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from faultkit import INTERVAL, accepted, told, watch
from process import Samples, listen_address, sample, scrape, start, until
from receivers import Receiver
from targets import StreamServerFactory, TargetServerFactory

WINDOW = 12.0
"""Seconds over which the healthy target's probes are counted."""
SHARE = 0.95


async def test_hostile_targets_page_once_each_and_the_healthy_one_keeps_its_rate(
    tmp_path: Path,
    target_server_factory: TargetServerFactory,
    stream_server_factory: StreamServerFactory,
    receiver: Receiver,
) -> None:
    server = target_server_factory()
    server.route("/hang", delay=3600)
    server.route("/flood", body=b"x" * 2**16, endless=True)
    server.route("/garbage", body=os.urandom(4096), content_type="application/json")
    trickle = stream_server_factory()
    trickle.banner = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    trickle.filler, trickle.pace, trickle.endless = b"400\r\n" + b"y" * 1024 + b"\r\n", 0.05, True
    slowloris = stream_server_factory()
    slowloris.banner = b"HTTP/1.1 200 OK\r\nX-Slow: "
    slowloris.filler, slowloris.pace, slowloris.endless = b"z", 0.05, True
    cut = stream_server_factory()
    cut.banner, cut.close_after_banner = b"HTTP/1.1 200 OK\r\nContent-Ty", True
    huge = stream_server_factory()
    huge.banner = b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 2**20 + b"\r\nContent-Length: 0\r\n\r\n"
    huge.close_after_banner = True
    hostile = {
        "hang": server.url("/hang"),
        "flood": server.url("/flood"),
        "garbage": server.url("/garbage"),
        **{
            name: f"http://127.0.0.1:{stream.port}/health"
            for name, stream in [
                ("trickle", trickle),
                ("slowloris", slowloris),
                ("cut", cut),
                ("huge", huge),
            ]
        },
    }
    listen = listen_address()
    config = watch(tmp_path, listen, receiver, {"healthy": server.url("/ok"), **hostile})
    daemon = await start(config, listen)
    paged = {(name, "firing"): 1 for name in hostile}
    await until(lambda: told(accepted(receiver)) == paged, within=20, what="every hostile paged")

    def probes(samples: Samples) -> float:
        return sample(samples, "vigild_probe_duration_seconds_count", target="healthy", type="http")

    before, began = probes(await scrape(daemon)), time.monotonic()
    await asyncio.sleep(WINDOW)
    after, ended = probes(await scrape(daemon)), time.monotonic()
    ticks = (ended - began) / INTERVAL
    # One tick of slack: the two scrapes fall anywhere between two cycles.
    assert after - before >= SHARE * ticks - 1, f"{after - before:g} probes in {ticks:.1f} ticks"
    code, _ = await daemon.get("/readyz")
    assert code == 200
    assert told(accepted(receiver)) == paged  # each once; the healthy one never
    assert await daemon.stop() == 0
