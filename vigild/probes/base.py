"""The interface every probe implements, and the registry that finds one by ``type``.

A third party adds a probe by publishing a ``Probe`` subclass under the
``vigild.probes`` entry-point group; its ``Options`` model (a ``TargetConfig``
subclass) holds the target's own keys and the metrics it reports.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from vigild import plugins
from vigild.model import Observation
from vigild.redaction import one_line

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import TargetConfig
    from vigild.engine_api import EngineClient
    from vigild.storage.pings import PushRuns

__all__ = ["GROUP", "MAX_ERROR", "Probe", "ProbeContext", "backend", "build_probe"]

GROUP = "vigild.probes"

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

    Options: ClassVar[type[TargetConfig]]
    """The target's keys: a ``TargetConfig`` subclass whose ``type`` is the probe's
    entry-point name and whose ``REPORTED`` lists the metrics it can report."""

    keeps_state = False

    # Built once per target: a probe of a type that has thousands of targets declares
    # slots of its own as well (a subclass without them still gets a __dict__).
    __slots__ = ("_context", "target", "timeout")

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


class ProbeContext:
    """What the probes of one run share: its ClientSession, one client per container
    engine (a unix-socket connection pool each), closed with the run, the secrets
    of the running config, and the pings recorded in its state file."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        secrets: Callable[[], frozenset[str]] = frozenset,
        push_runs: PushRuns | None = None,
    ) -> None:
        """``secrets``: read at each use, so a reload's new ones apply to every probe.
        ``push_runs``: the state file's record of pings, which push targets judge."""
        self.session = session
        self.push_runs = push_runs
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


def backend(kind: str) -> type[Probe]:
    """The probe registered as ``kind``; imported when a config uses the type, so
    ``--once`` pays only for what it watches."""
    found: type[Probe] = plugins.find(GROUP, kind, Probe, "probe")
    return found


def build_probe(target: TargetConfig, context: ProbeContext, timeout: float) -> Probe:
    return backend(target.type)(target, timeout, context)
