"""vigild's /metrics as Prometheus itself sees it: promtool's lint and a real scrape.

promtool and prometheus come from Debian's ``prometheus`` package, which the
test script installs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
from process import environment, until
from receivers import Receiver
from targets import TargetServer, closed_port
from test_daemon import start_daemon

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
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: scripts/test installs Debian's prometheus package"
    daemon = await start_daemon(tmp_path, target_server, receiver, ENV)

    web = f"127.0.0.1:{closed_port()}"
    (tmp_path / "prometheus.yml").write_text(
        f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vigild
    static_configs:
      - targets: ["{daemon.listen}"]
"""
    )
    server = await asyncio.create_subprocess_exec(
        prometheus,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={web}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        result: list[dict[str, object]] = []

        async def query() -> None:
            nonlocal result
            url = f"http://{web}/api/v1/query"
            params = {"query": 'vigild_probe_success{job="vigild",target="api"}'}
            try:
                async with aiohttp.ClientSession() as session, session.get(url, params=params) as r:
                    result = json.loads(await r.text())["data"]["result"]
            except (aiohttp.ClientError, KeyError, ValueError):
                result = []

        for _ in range(300):  # bounded: 30 s at most
            await query()
            if result:
                break
            await asyncio.sleep(0.1)
        assert result, "Prometheus never stored vigild_probe_success"
        assert result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        await daemon.stop()
