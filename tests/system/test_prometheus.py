"""vigild's /metrics as Prometheus itself sees it: promtool's lint and a real scrape.

promtool and prometheus come from Debian's ``prometheus`` package, which the
test script installs.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from process import environment, until
from prometheus_server import scraping
from receivers import Receiver
from standard_daemon import start_daemon
from targets import TargetServer

ENV = environment(API_TOKEN="t")


async def test_metrics_pass_promtool_check_metrics(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test installs Debian's prometheus package"
    daemon = await start_daemon(tmp_path, target_server, receiver, ENV)
    await until(lambda: target_server.hits >= 1, what="a probe")
    _, text = await daemon.get("/metrics")
    await daemon.stop()
    check = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(check.communicate(text.encode()), 30)
    assert "vigild_probe_success" in text
    assert check.returncode == 0, output.decode()
    assert output.decode().strip() == ""  # no lint complaints either


async def test_prometheus_scrapes_vigild(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver, ENV)
    try:
        async with scraping(tmp_path, daemon.listen) as api:
            result: list[Any] = []
            for _ in range(300):  # bounded: 30 s at most
                answer = await api("query", query='vigild_probe_success{job="vigild",target="api"}')
                result = answer.get("data", {}).get("result", [])
                if result:
                    break
                await asyncio.sleep(0.1)
            assert result, "Prometheus never stored vigild_probe_success"
            assert result[0]["value"][1] == "1"
    finally:
        await daemon.stop()
