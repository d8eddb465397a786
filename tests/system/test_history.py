"""The metrics history with a real daemon: /api/history, restarts, --once, a broken file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from process import Daemon, listen_address, run, wait_metrics, write_config
from receivers import Receiver
from targets import TargetServer


def _config(tmp_path: Path, target: TargetServer, receiver: Receiver | None = None) -> Path:
    notifier = (
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url()}"\n'
        if receiver is not None
        else ""
    )
    return write_config(
        tmp_path,
        listen_address(),
        f"""
[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{target.url()}"
interval = "1s"

{notifier}""",
    )


async def _history(daemon: Daemon, query: str) -> tuple[int, Any]:
    code, text = await daemon.get(f"/api/history?{query}")
    assert code != 500, "\n".join(daemon.log)
    return code, json.loads(text)


async def _points(daemon: Daemon, metric: str = "up") -> list[list[Any]]:
    code, document = await _history(daemon, f"target=api&metric={metric}&from={time.time() - 600}")
    assert code == 200, document
    assert document["tier"] == "raw"
    points: list[list[Any]] = document["points"]
    return points


async def test_api_history_serves_every_observation_across_restarts_and_once(
    tmp_path: Path, target_server: TargetServer
) -> None:
    config = _config(tmp_path, target_server)
    listen = config.read_text().split('listen = "')[1].split('"')[0]
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    found: list[list[Any]] = []

    async def grown(count: int) -> None:
        nonlocal found
        for _ in range(200):
            found = await _points(daemon)
            if len(found) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"history holds {len(found)} points, not {count}")

    await grown(3)
    assert all(value == 1.0 for _, value in found)
    assert [t for t, _ in found] == sorted(t for t, _ in found)
    latency = await _points(daemon, "latency_seconds")
    assert latency and all(0 < value < 5 for _, value in latency)

    since = time.time() - 600
    code, document = await _history(daemon, f"target=api&metric=up&from={since}&step=1h")
    assert code == 200
    (bucket,) = document["buckets"]
    assert document["step"] == 3600 and bucket["count"] >= 3 and bucket["sum"] == bucket["count"]

    code, document = await _history(daemon, "metric=up")
    assert code == 400 and "target" in document["error"]
    code, document = await _history(daemon, "target=api&metric=up&from=soon")
    assert code == 400 and "not a time" in document["error"]

    samples = await wait_metrics(daemon, lambda s: s.get(("vigild_history_bytes", ()), 0) > 0)
    assert samples[("vigild_history_dropped_total", (("reason", "queue_full"),))] == 0
    assert await daemon.stop() == 0
    before = len(await _points_of_file(tmp_path))

    once = await run("--once", "--config", str(config))
    assert once.returncode == 0, once.stderr

    restarted = await Daemon(config, listen).start()
    await restarted.wait_ready()
    after = await _points(restarted)
    assert len(after) >= before + 1  # what the first run and --once wrote is still there
    assert after[: len(found)] == found
    assert await restarted.stop() == 0


async def _points_of_file(tmp_path: Path) -> list[Any]:
    """The stored points of up, read while no daemon runs (as backtest will)."""
    from vigild.config_sections import HistoryConfig
    from vigild.daemon.recorder import history_document

    document = history_document(
        tmp_path / "state-history.db",
        HistoryConfig(),
        {"target": "api", "metric": "up", "from": str(time.time() - 600)},
        now=time.time(),
    )
    points: list[Any] = document["points"]
    return points


async def test_an_unreadable_history_file_is_moved_aside_and_alerting_goes_on(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    (tmp_path / "state-history.db").write_bytes(b"garbage, not SQLite " * 500)
    config = _config(tmp_path, target_server, receiver)
    listen = config.read_text().split('listen = "')[1].split('"')[0]
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    target_server.status = 503
    await receiver.wait_for(1)
    assert receiver.requests[0].json["status"] == "firing"
    await daemon.wait_log(
        "history file is unreadable: moved it aside and started a new one; alerting is not affected"
    )
    (aside,) = list(await asyncio.to_thread(tmp_path.glob, "state-history.db.corrupt-*"))
    assert aside.read_bytes().startswith(b"garbage")
    points = []
    for _ in range(100):
        points = await _points(daemon)
        if points:
            break
        await asyncio.sleep(0.05)
    assert points and points[-1][1] == 0.0  # the new file holds the outage
    assert await daemon.stop() == 0
