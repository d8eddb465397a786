"""The interface every probe implements, and the one place that builds them."""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vigild.model import Observation
from vigild.redaction import one_line

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import TargetConfig
    from vigild.engine_api import EngineClient

__all__ = ["MAX_ERROR", "Probe", "ProbeContext", "build_probe"]

MAX_ERROR = 200
"""The longest error of an observation: one line an operator reads at a glance."""


class Probe(ABC):
    """Reads one target. Built once per config; ``observe`` runs every cycle.

    Subclasses implement ``probe``; ``observe`` guarantees that nothing but
    cancellation escapes, so one broken target never breaks a cycle.

    A probe that computes rates keeps its previous sample: ``saved_state`` and
    ``restore_state`` carry it through the state file, so ``--once`` from cron
    computes a rate between two runs and a restart does not lose it.
    """

    keeps_state = False

    def __init__(
        self, target: TargetConfig, timeout: float, context: ProbeContext | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._context = context

    @property
    def secrets(self) -> frozenset[str]:
        """What an error must not quote, masked before the error is shortened (a reload
        may change them, so they are read when needed)."""
        return self._context.secrets if self._context is not None else frozenset()

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
            error = one_line(f"probe failed: {type(exc).__name__}: {exc}", MAX_ERROR, self.secrets)
            observations = (Observation(self.target.name, now, up=False, error=error),)
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
    """What the probes of one run share: its ClientSession, one client per container
    engine (a unix-socket connection pool each), closed with the run, and the secrets
    of the running config."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        secrets: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        """``secrets``: read at each use, so a reload's new ones apply to every probe."""
        self.session = session
        self._secrets = secrets
        self._engines: dict[str | None, EngineClient] = {}

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets()

    def engine(self, url: str | None) -> EngineClient:
        """The client of ``url``, or of the engine found on this host for None."""
        client = self._engines.get(url)
        if client is None:
            from vigild.engine_api import connect

            client = self._engines[url] = connect(url, secrets=self._secrets)
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
