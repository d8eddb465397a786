"""The interface every probe implements, and the one place that builds them."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from vigild.model import Observation

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import TargetConfig

__all__ = ["Probe", "build_probe"]


class Probe(ABC):
    """Reads one target. Built once per config; ``observe`` runs every cycle.

    Subclasses implement ``probe``; ``observe`` guarantees that nothing but
    cancellation escapes, so one broken target never breaks a cycle.
    """

    def __init__(self, target: TargetConfig, timeout: float) -> None:
        self.target = target
        self.timeout = timeout

    @abstractmethod
    async def probe(self, now: float) -> Observation:
        """Read the target once; ``now`` is the cycle's tick, the observation's time."""

    async def observe(self, now: float) -> Observation:
        started = time.perf_counter()
        try:
            observation = await self.probe(now)
        except Exception as exc:  # a bug in a probe must not stop the cycle
            error = f"probe failed: {type(exc).__name__}: {exc}"
            observation = Observation(self.target.name, now, up=False, error=error[:200])
        observation.duration = time.perf_counter() - started
        return observation


def build_probe(target: TargetConfig, session: aiohttp.ClientSession, timeout: float) -> Probe:
    if target.type == "http":
        from vigild.probes.http import HttpProbe

        return HttpProbe(target, timeout, session)
    from vigild.probes.host import HostProbe

    return HostProbe(target, timeout)
