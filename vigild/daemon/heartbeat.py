"""The dead-man's switch: a ping to ``[daemon] heartbeat_url`` after every completed cycle.

healthchecks.io, Uptime Kuma's push monitors and Cronitor all alert when the
pings stop, which is how a user learns that vigild itself is dead. A ping
never delays a cycle: it runs beside it, and one still in flight is not
doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
import structlog

from vigild.events import CycleCompleted, HeartbeatOutcome, Publish
from vigild.probes._net import describe_client_error
from vigild.tasks import spawn

__all__ = ["Heartbeat"]

log = structlog.get_logger("vigild.heartbeat")

TIMEOUT = 10.0


class Heartbeat:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str | None,
        *,
        redact: Callable[[str], str],
        publish: Publish,
    ) -> None:
        self._url = url
        self._session = session
        self._redact = redact
        self._publish = publish
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None

    def cycle_completed(self, event: CycleCompleted) -> None:
        """Ping for a cycle that reached the state file: one that did not is no sign of life."""
        if not event.recorded or self._url is None:
            return
        if self._task is not None and not self._task.done():
            return
        self._task = spawn(self._send(self._url), name="heartbeat")

    async def _send(self, url: str) -> None:
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as resp:
                if resp.status >= 400:
                    raise _Refused(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError, _Refused) as exc:
            reason = self._redact(_describe(exc))
            # One warning per new reason: a dead endpoint must not fill the log every cycle.
            if reason != self._failing:
                log.warning("heartbeat failed", error=reason)
            self._failing = reason
            self._publish(HeartbeatOutcome("failed"))
            return
        if self._failing is not None:
            log.info("heartbeat delivered again")
        self._failing = None
        self._publish(HeartbeatOutcome("sent"))

    async def settle(self) -> None:
        """Wait for a ping in flight (``--once`` exits only after its ping)."""
        if self._task is not None:
            await asyncio.wait([self._task], timeout=TIMEOUT)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Refused(Exception):
    pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timeout after {TIMEOUT:g}s"
    if isinstance(exc, aiohttp.ClientError):
        return describe_client_error(exc)
    return str(exc)
