"""A restarted service is not an incident: lazily created series are absent, never UNKNOWN.

Client libraries (Go's, Python's) create a label set at its first use: after a
restart the family is on the page with its other label sets, and the one a
target selects appears with the first request. Driven through real parts: a
page served on 127.0.0.1, ``vigild run`` and ``vigild --once`` as processes, a
webhook receiver, the state file; and Debian's Prometheus, restarted. (The same
driven cycle by cycle in this process: tests/unit/daemon/test_runtime.py.)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from go_page import go_page, write_config
from process import Daemon, run, until
from prometheus_server import scraping
from receivers import Receiver
from targets import TargetServer, closed_port

from vigild.assembly import load


def status_of(document: dict[str, Any]) -> dict[str, Any]:
    [app] = document["targets"]
    return app  # type: ignore[no-any-return]


async def test_a_restart_without_traffic_is_no_data_then_values_with_traffic(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.body = go_page({"/api": (1000, 10, [900, 990, 1000, 1010])})
    config = write_config(tmp_path, target_server.url("/metrics"), receiver)
    daemon = await Daemon(config, load(config).daemon.listen).start()
    try:
        await daemon.wait_ready()
        await until(lambda: target_server.hits >= 2, what="two scrapes before the restart")

        # The restart: /api's label sets are gone until its first request.
        target_server.body = go_page({})
        seen = target_server.hits
        await until(lambda: target_server.hits >= seen + 3, what="scrapes after the restart")
        _, text = await daemon.get("/api/status")
        document = json.loads(text)
        assert document["worst"] == "ok"
        no_data = status_of(document)["observation"]["no_data"]
        assert no_data == {
            "error_rate_percent": 'no series of app_requests_total{handler="/api"} yet',
            "latency_p95_seconds": 'no series of app_request_seconds{handler="/api"} yet',
            "latency_p99_seconds": 'no series of app_request_seconds{handler="/api"} yet',
        }
        assert document["alerts"] == []

        # Traffic: 100 requests, 1 of them failed; 96 fast, 4 slower.
        target_server.body = go_page({"/api": (99, 1, [96, 99, 100, 100])})
        metrics: dict[str, float] = {}
        for _ in range(100):  # bounded: 10 s; the next scrape sees no new traffic again
            _, text = await daemon.get("/api/status")
            metrics = status_of(json.loads(text))["observation"]["metrics"]
            if "error_rate_percent" in metrics:
                break
            await asyncio.sleep(0.1)
        # The label sets appeared between two scrapes: all of their counts are new.
        assert metrics["error_rate_percent"] == 1.0
        # p95: rank 95 ≤ 96 in the first bucket → 0.1 * 95/96.
        assert abs(metrics["latency_p95_seconds"] - 0.1 * 95 / 96) < 1e-9
    finally:
        assert await daemon.stop() == 0
    # Not one notification: nothing was ever wrong.
    assert receiver.requests == []


async def test_once_from_cron_across_a_restart_exits_0_then_reads_the_traffic(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    config = str(write_config(tmp_path, target_server.url("/metrics"), receiver))
    target_server.body = go_page({"/api": (1000, 10, [900, 990, 1000, 1010])})
    assert (await run("--once", "--config", config)).returncode == 0
    target_server.body = go_page({})  # restarted, nothing served yet
    restarted = await run("--once", "--format", "json", "--config", config)
    assert restarted.returncode == 0, restarted.stdout  # not 3: no data is not UNKNOWN
    observation = status_of(restarted.json)["observation"]
    assert observation["no_data"]["error_rate_percent"] == (
        'no series of app_requests_total{handler="/api"} yet'
    )
    target_server.body = go_page({"/api": (99, 1, [96, 99, 100, 100])})
    served = await run("--once", "--format", "json", "--config", config)
    assert served.returncode == 0, served.stdout
    assert status_of(served.json)["observation"]["metrics"]["error_rate_percent"] == 1.0
    assert receiver.requests == []


async def test_a_restarted_prometheus_pages_nobody(tmp_path: Path, receiver: Receiver) -> None:
    web = f"127.0.0.1:{closed_port()}"
    handler = 'handler="/api/v1/query"'
    config = write_config(
        tmp_path,
        f"http://{web}/metrics",
        receiver,
        requests=f"prometheus_http_requests_total{{{handler}}}",
        errors=f'prometheus_http_requests_total{{{handler},code=~"5.."}}',
        latency_histogram=f"prometheus_http_request_duration_seconds{{{handler}}}",
    )
    daemon = await Daemon(config, load(config).daemon.listen).start()
    try:
        await daemon.wait_ready()
        for run_ in range(2):  # the first start, then the restart
            async with scraping(tmp_path, f"127.0.0.1:{closed_port()}", web=web) as api:
                await until_ready(web)
                before = await scrapes(daemon)
                await until_scraped(daemon, before + 3)
                document = json.loads((await daemon.get("/api/status"))[1])
                assert document["worst"] in ("ok", "warning") and document["alerts"] == []
                if run_ == 1:  # nothing queried since the restart: no data, with the reason
                    no_data = status_of(document)["observation"]["no_data"]
                    assert "error_rate_percent" in no_data, no_data
                for _ in range(20):
                    assert (await api("query", query="up"))["status"] == "success"
                await until_scraped(daemon, await scrapes(daemon) + 2)
    finally:
        assert await daemon.stop() == 0
    assert receiver.requests == []


async def until_ready(web: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(300):  # bounded: 30 s
            try:
                async with session.get(f"http://{web}/-/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("Prometheus never became ready")


async def scrapes(daemon: Daemon) -> int:
    _, text = await daemon.get("/metrics")
    for line in text.splitlines():
        if line.startswith("vigild_probe_duration_seconds_count{") and 'target="app"' in line:
            return int(float(line.split()[-1]))
    return 0


async def until_scraped(daemon: Daemon, count: int) -> None:
    for _ in range(150):  # bounded: 15 s
        if await scrapes(daemon) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"vigild did not scrape {count} times")
