"""A cycle: the targets that share an interval, probed together.

Probes run concurrently through a fixed number of workers pulling from one
iterator (no task per target per tick). Each result is evaluated and handed
to the engine as it completes; the engine's transitions are flushed as one
message per notifier when the cycle is done or ``group_wait`` after its first
transition, whichever comes first, so a slow target never holds others back.

Cycles may overlap: a target whose previous probe is still in flight is
skipped in the next cycle (that target only), and every other one is probed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from vigild.alerting import pipeline
from vigild.alerting.engine import Engine
from vigild.config import TargetConfig
from vigild.model import Observation
from vigild.probes.base import Probe
from vigild.storage.database import Database
from vigild.thresholds import Rule, Verdict, evaluate

__all__ = ["Pipeline", "Watched"]

log = structlog.get_logger("vigild.cycle")


@dataclass(frozen=True, slots=True)
class Watched:
    target: TargetConfig
    probe: Probe
    rules: Mapping[str, Rule]


ResultListener = Callable[[Watched, Observation, list[Verdict]], None]


class Pipeline:
    """probe → evaluate → engine, for any set of targets, then flush and wake delivery."""

    def __init__(
        self,
        engine: Engine,
        db: Database,
        *,
        clock: Callable[[], float],
        concurrency: int,
        group_wait: float,
        on_result: ResultListener,
        on_queued: Callable[[], None],
        on_skipped: Callable[[str], None] = lambda target: None,
        first: str | None = None,
    ) -> None:
        self.engine = engine
        self.db = db
        self.clock = clock
        self.concurrency = concurrency
        self.group_wait = group_wait
        self.on_result = on_result
        self.on_queued = on_queued
        self.on_skipped = on_skipped
        self.first = first
        """A target probed before the others (the connectivity check): its result
        decides whether the others' alerts are told, so it must be known first."""
        self._probing: set[str] = set()
        """Targets whose probe is in flight, in any cycle."""
        self._lagging: dict[str, bool] = {}
        """Targets in a streak of skips (logged once per streak), each with whether the
        last cycle probed it: two cycles in a row that do end the streak."""

    async def run_cycle(self, watched: Sequence[Watched]) -> bool:
        """Probe, evaluate and flush ``watched``; True when everything was recorded."""
        now = self.clock()
        watched = self._not_in_flight(watched)
        loop = asyncio.get_running_loop()
        pending = iter(watched)
        timer: asyncio.TimerHandle | None = None

        def group_due() -> None:
            nonlocal timer
            timer = None
            self.flush()

        async def worker() -> None:
            nonlocal timer
            for item in pending:
                name = item.target.name
                self._probing.add(name)
                try:
                    observations = await item.probe.observe(now)
                finally:
                    self._probing.discard(name)
                for observation in observations:
                    try:
                        verdicts = evaluate(observation, item.rules)
                        moved = self.engine.observe(observation.target, verdicts, now)
                        self.on_result(item, observation, verdicts)
                    except Exception:
                        log.exception("evaluation failed", target=observation.target)
                        continue
                    if not observation.up:
                        log.info(
                            "probe failed",
                            target=observation.target,
                            metric="up",
                            severity="critical",
                            error=observation.error,
                        )
                    if moved and timer is None:
                        timer = loop.call_later(self.group_wait, group_due)

        try:
            if any(item.target.name == self.first for item in watched):
                pending = iter([item for item in watched if item.target.name == self.first])
                await worker()
                pending = iter([item for item in watched if item.target.name != self.first])
            # `concurrency` bounds the probes in flight across overlapping cycles, but a
            # cycle always gets one worker: hung targets must not starve the others.
            free = max(1, self.concurrency - len(self._probing))
            await asyncio.gather(*(worker() for _ in range(min(free, len(watched)))))
        finally:
            if timer is not None:
                timer.cancel()
            recorded = self.flush()
            self.save_probe_states(watched)
        return recorded

    def _not_in_flight(self, watched: Sequence[Watched]) -> Sequence[Watched]:
        if not self._probing and not self._lagging:
            return watched
        ready = []
        for item in watched:
            name = item.target.name
            if name not in self._probing:
                ready.append(item)
                if self._lagging.get(name):
                    del self._lagging[name]
                    log.info("probes on time again", target=name)
                elif name in self._lagging:
                    self._lagging[name] = True
                continue
            self.on_skipped(name)
            if name not in self._lagging:
                log.warning("probe skipped: the previous one is still running", target=name)
            self._lagging[name] = False
        return ready

    def save_probe_states(self, watched: Sequence[Watched]) -> None:
        states = [
            (item.target.name, state)
            for item in watched
            if item.probe.keeps_state and (state := item.probe.unsaved_state()) is not None
        ]
        if not states:
            return
        try:
            self.db.probe_states.save(states)
        except Exception:
            # Only a rate's previous sample is lost: the next scrape starts it again.
            log.exception("cannot record probe state")

    def flush(self) -> bool:
        try:
            queued = pipeline.flush(self.engine, self.db, self.clock())
        except Exception:
            # The state stays in memory and is written by the next flush.
            log.exception("cannot record alert state")
            return False
        if queued:
            self.on_queued()
        return True
