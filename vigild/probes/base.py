"""The interface every probe implements, and the one place that builds them."""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vigild.model import Observation

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import TargetConfig
    from vigild.engine_api import EngineClient

__all__ = ["Probe", "ProbeContext", "build_probe"]


class Probe(ABC):
    """Reads one target. Built once per config; ``observe`` runs every cycle.

    Subclasses implement ``probe``; ``observe`` guarantees that nothing but
    cancellation escapes, so one broken target never breaks a cycle.

    A probe that computes rates keeps its previous sample: ``saved_state`` and
    ``restore_state`` carry it through the state file, so ``--once`` from cron
    computes a rate between two runs and a restart does not lose it.
    """

    keeps_state = False

    def __init__(self, target: TargetConfig, timeout: float) -> None:
        self.target = target
        self.timeout = timeout

    @abstractmethod
    async def probe(self, now: float) -> Sequence[Observation]:
        """Read the target once; ``now`` is the cycle's tick, the observations' time.

        One observation, or for a target that expands (containers selected by
        label) one per thing it found, each named ``target/thing``.
        """

    async def observe(self, now: float) -> Sequence[Observation]:
        started = time.perf_counter()
        try:
            observations = await self.probe(now)
        except Exception as exc:  # a bug in a probe must not stop the cycle
            error = f"probe failed: {type(exc).__name__}: {exc}"
            observations = (Observation(self.target.name, now, up=False, error=error[:200]),)
        duration = time.perf_counter() - started
        for observation in observations:
            observation.duration = duration
        return observations

    def saved_state(self) -> dict[str, Any] | None:
        """What the next run needs (JSON-able), when ``keeps_state``."""
        return None

    def unsaved_state(self) -> dict[str, Any] | None:
        """``saved_state`` if the state file may not have it yet, else None: what a cycle
        writes. A probe that knows when its state changed says None when it did not."""
        return self.saved_state()

    def restore_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (most probes keep none)
        """Take back ``saved_state`` from an earlier run; a state that does not fit is ignored."""


_PROBES = {
    "http": "vigild.probes.http:HttpProbe",
    "host": "vigild.probes.host:HostProbe",
    "prometheus": "vigild.probes.prometheus:PrometheusProbe",
    "container": "vigild.probes.container:ContainerProbe",
    "tls": "vigild.probes.tls:TlsProbe",
    "tcp": "vigild.probes.tcp:TcpProbe",
}
"""Imported when a config uses the type: ``--once`` pays only for what it watches."""


class ProbeContext:
    """What the probes of one run share: its ClientSession, and one client per container
    engine (a unix-socket connection pool each), closed with the run."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._engines: dict[str | None, EngineClient] = {}

    def engine(self, url: str | None) -> EngineClient:
        """The client of ``url``, or of the engine found on this host for None."""
        client = self._engines.get(url)
        if client is None:
            from vigild.engine_api import connect

            client = self._engines[url] = connect(url)
        return client

    async def close(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for client in engines:
            await client.close()


def build_probe(target: TargetConfig, context: ProbeContext, timeout: float) -> Probe:
    module, _, name = _PROBES[target.type].partition(":")
    probe_class: Any = getattr(importlib.import_module(module), name)
    probe: Probe = probe_class(target, timeout, context)
    return probe
