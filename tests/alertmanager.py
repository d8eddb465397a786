"""Real Alertmanager processes on 127.0.0.1, one or an HA cluster, for tests.

Debian's ``prometheus-alertmanager`` (installed by scripts/test) runs with its
data, config and log in the test's tmp directory; the fixture kills every
process it started at teardown. Every wait is bounded.

    async with running_alertmanagers(tmp_path) as start:
        peers = await start(2, route_to=receiver.url("/am"))
        ...POST to peers[0].url + "/api/v2/alerts"...
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import aiohttp
import pytest
from targets import closed_port

__all__ = ["Alertmanager", "StartAlertmanagers", "alertmanager_binary", "running_alertmanagers"]

PEER_TIMEOUT = 1.0
"""``--cluster.peer-timeout``: the n-th peer waits n times this before it notifies, so
the first peer's notification log has reached it by gossip and it stays quiet."""
GOSSIP_INTERVAL = "50ms"
"""Fast gossip: settling takes about 4 polls of 10 gossip intervals each (2 s)."""
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def alertmanager_binary() -> str:
    """The installed binary (Debian names it ``prometheus-alertmanager``); fails if missing."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        pytest.fail("Alertmanager is not installed: run scripts/test, which installs it")
    return found


def config_yaml(
    route_to: str,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> str:
    """One route to one webhook receiver, grouped per alert name and target."""
    return f"""
route:
  receiver: hook
  group_by: [alertname, target]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
  - name: hook
    webhook_configs:
      - url: {route_to}
        send_resolved: true
"""


@dataclass
class Alertmanager:
    """One running Alertmanager; ``url`` is its API base."""

    name: str
    web_port: int
    cluster_port: int
    directory: Path
    process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log(self) -> str:
        path = self.directory / "alertmanager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self, binary: str, config: Path, peers: list[int]) -> None:
        cluster = [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}"]
        if peers:
            cluster += [
                f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
                *(f"--cluster.peer=127.0.0.1:{port}" for port in peers),
                f"--cluster.peer-timeout={PEER_TIMEOUT:g}s",
                f"--cluster.gossip-interval={GOSSIP_INTERVAL}",
                "--cluster.pushpull-interval=1s",
                "--cluster.reconnect-interval=1s",
                "--cluster.settle-timeout=10s",
            ]
        else:
            cluster = ["--cluster.listen-address="]  # no HA: no gossip to wait for
        self._log = (self.directory / "alertmanager.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.web_port}",
            *cluster,
            "--log.level=debug",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )

    async def get(self, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url + path) as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def alerts(self) -> list[dict[str, Any]]:
        """What this peer holds, firing or not (``GET /api/v2/alerts``)."""
        found: list[dict[str, Any]] = await self.get("/api/v2/alerts")
        return found

    async def ready(self, peers: int) -> bool:
        """Serving, and (in a cluster) gossip settled with all ``peers`` known."""
        if self.process is None or self.process.returncode is not None:
            raise AssertionError(f"alertmanager {self.name} exited:\n{self.log[-3000:]}")
        try:
            status = await self.get("/api/v2/status")
        except (aiohttp.ClientError, TimeoutError):
            return False
        if peers <= 1:
            return True
        cluster = status.get("cluster") or {}
        return cluster.get("status") == "ready" and len(cluster.get("peers") or []) == peers

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class StartAlertmanagers(Protocol):
    async def __call__(
        self, count: int, *, route_to: str = "", yaml: str | None = None, **route: str
    ) -> list[Alertmanager]: ...


@contextlib.asynccontextmanager
async def running_alertmanagers(tmp_path: Path) -> AsyncIterator[StartAlertmanagers]:
    """Start ``count`` Alertmanagers as one cluster routing to ``route_to``; all ready.

    ``route`` overrides the route's ``group_wait``, ``group_interval`` and
    ``repeat_interval``; ``yaml``, a whole config, replaces that one route.
    Everything started is stopped on leaving the block.
    """
    binary = alertmanager_binary()
    started: list[Alertmanager] = []

    async def start(
        count: int, *, route_to: str = "", yaml: str | None = None, **route: str
    ) -> list[Alertmanager]:
        config = tmp_path / f"alertmanager-{len(started)}.yml"
        config.write_text(yaml if yaml is not None else config_yaml(route_to, **route))
        peers = []
        for _ in range(count):
            index = len(started) + len(peers)
            directory = tmp_path / f"alertmanager-{index}"
            directory.mkdir()
            peers.append(Alertmanager(f"am{index}", closed_port(), closed_port(), directory))
        for peer in peers:
            started.append(peer)
            others = [p.cluster_port for p in peers if p is not peer] if count > 1 else []
            await peer.start(binary, config, others)
        deadline = time.monotonic() + READY_TIMEOUT
        for peer in peers:
            while not await peer.ready(count):
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"alertmanager {peer.name} not ready in {READY_TIMEOUT:g}s:\n"
                        + peer.log[-3000:]
                    )
                await asyncio.sleep(0.1)
        return peers

    try:
        yield start
    finally:
        for peer in started:
            with contextlib.suppress(ProcessLookupError):
                await peer.stop()
