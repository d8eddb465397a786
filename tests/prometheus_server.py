"""A real Prometheus (Debian's package, installed by scripts/test) scraping one vigild."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from targets import closed_port

Api = Callable[..., Awaitable[dict[str, Any]]]
"""``await api("query", query="up")``: Prometheus's HTTP API answer, {} while unreachable."""


@asynccontextmanager
async def scraping(
    tmp_path: Path, listen: str, rules: Path | None = None, web: str | None = None
) -> AsyncIterator[Api]:
    """Prometheus scraping ``listen`` every second (evaluating ``rules``), serving on ``web``
    (default a free port), stopped after."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: scripts/test installs Debian's prometheus package"
    web = web or f"127.0.0.1:{closed_port()}"
    rule_files = f'rule_files: ["{rules}"]' if rules is not None else ""
    (tmp_path / "prometheus.yml").write_text(
        f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
{rule_files}
scrape_configs:
  - job_name: vigild
    static_configs:
      - targets: ["{listen}"]
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
        async with aiohttp.ClientSession() as session:

            async def api(path: str, **params: str) -> dict[str, Any]:
                try:
                    async with session.get(f"http://{web}/api/v1/{path}", params=params) as r:
                        body: dict[str, Any] = json.loads(await r.text())
                        return body
                except (aiohttp.ClientError, ValueError):
                    return {}

            yield api
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
