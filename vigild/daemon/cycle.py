"""A cycle: the targets that share an interval, probed together. The one layer
that runs one, for ``vigild run`` (one per scheduler tick) and ``--once``.

Probes run concurrently through a fixed number of workers pulling from one
iterator (no task per target per tick). Each result is evaluated and handed
to the engine as it completes; the engine's transitions are flushed as one
message per notifier when the cycle is done or ``group_wait`` after its first
transition, whichever comes first, so a slow target never holds others back.
A recorded cycle then lets the actions decide, and says so in a
``CycleCompleted``; everything else that follows a cycle subscribes to that.

Cycles may overlap: a target whose previous probe is still in flight is
skipped in the next cycle (that target only), and every other one is probed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from vigild.alerting import pipeline
from vigild.alerting.engine import Engine
from vigild.daemon.parts import Parts, Watched
from vigild.events import CycleCompleted, CycleMissed, ObservationRetired, ProbeResult
from vigild.storage.database import Database
from vigild.thresholds import evaluate

__all__ = ["Cycles"]

log = structlog.get_logger("vigild.cycle")


class Cycles:
    """Runs each cycle on the parts it is given, and keeps what outlives a reload:
    the probes in flight and the streaks of skipped targets."""

    def __init__(
        self, db: Database, *, clock: Callable[[], float], wake: Callable[[], None]
    ) -> None:
        """``wake``: new messages are in the outbox (for the delivery running now,
        which after a reload is not the one a cycle started with)."""
        self.db = db
        self.clock = clock
        self.wake = wake
        self._probing: set[str] = set()
        """Targets whose probe is in flight, in any cycle."""
        self._lagging: dict[str, bool] = {}
        """Targets in a streak of skips (logged once per streak), each with whether the
        last cycle probed it: two cycles in a row that do end the streak."""

    async def run(
        self,
        parts: Parts,
        watched: Sequence[Watched],
        *,
        interval: float = 0.0,
        lateness: float = 0.0,
    ) -> None:
        """Probe, evaluate and flush ``watched``, then tell the subscribers."""
        started = time.monotonic()
        # Also when this cycle writes nothing: a state file deleted during a quiet
        # outage must be back before a restart reads it.
        self.db.check()
        engine, publish = parts.engine, parts.subscribers.publish
        settings = parts.config
        # The connectivity check goes first: its result decides whether the others'
        # alerts are told, so it must be known first.
        first = settings.daemon.connectivity_check
        now = self.clock()
        watched = self._not_in_flight(watched, interval, publish)
        loop = asyncio.get_running_loop()
        pending = iter(watched)
        timer: asyncio.TimerHandle | None = None

        def group_due() -> None:
            nonlocal timer
            timer = None
            self.flush(engine)

        async def worker() -> None:
            nonlocal timer
            for item in pending:
                name = item.target.name
                self._probing.add(name)
                try:
                    observations = await item.probe.observe(now)
                finally:
                    self._probing.discard(name)
                derived = item.derived
                for observation in observations:
                    observed = observation.target
                    if observation.retired is not None:
                        _close(engine, observed, observation.retired, now)
                        publish(ObservationRetired(name, observed))
                        if timer is None:
                            timer = loop.call_later(settings.alerting.group_wait, group_due)
                        continue
                    try:
                        if derived is not None:
                            derived(observation)
                        verdicts = evaluate(observation, item.rules)
                        moved = engine.observe(observed, verdicts, now)
                        severities = engine.severities(observed, verdicts)
                        publish(
                            ProbeResult(name, item.target.type, observation, verdicts, severities)
                        )
                    except Exception:
                        log.exception("evaluation failed", target=observed)
                        continue
                    if not observation.up:
                        log.info(
                            "probe failed",
                            target=observed,
                            metric="up",
                            severity="critical",
                            error=observation.error,
                        )
                    if moved and timer is None:
                        timer = loop.call_later(settings.alerting.group_wait, group_due)

        try:
            if any(item.target.name == first for item in watched):
                pending = iter([item for item in watched if item.target.name == first])
                await worker()
                pending = iter([item for item in watched if item.target.name != first])
            # `concurrency` bounds the probes in flight across overlapping cycles, but a
            # cycle always gets one worker: hung targets must not starve the others.
            free = max(1, settings.daemon.concurrency - len(self._probing))
            await asyncio.gather(*(worker() for _ in range(min(free, len(watched)))))
        finally:
            if timer is not None:
                timer.cancel()
            recorded = self.flush(engine)
            self.save_probe_states(watched)
        end = self.clock()
        if recorded:
            engine.policy.silences.prune(end)
            parts.actions.evaluate(end)
        publish(CycleCompleted(interval, end, lateness, time.monotonic() - started, recorded))

    def _not_in_flight(
        self, watched: Sequence[Watched], interval: float, publish: Callable[[object], None]
    ) -> Sequence[Watched]:
        if not self._probing and not self._lagging:
            return watched
        ready = []
        skipped = []
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
            skipped.append(name)
            if name not in self._lagging:
                log.warning("probe skipped: the previous one is still running", target=name)
            self._lagging[name] = False
        if skipped:
            publish(CycleMissed(interval, tuple(skipped)))
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

    def flush(self, engine: Engine) -> bool:
        """Record the engine's transitions and queue their notifications; True when done."""
        try:
            queued = pipeline.flush(engine, self.db, self.clock())
        except Exception:
            # The state stays in memory and is written by the next flush.
            log.exception("cannot record alert state")
            return False
        if queued:
            self.wake()
        return True


def _close(engine: Engine, observed: str, note: str, now: float) -> None:
    """Resolve every alert of ``observed``, gone for good, saying why."""
    engine.retain(lambda target, _metric: target != observed, now, {observed: note})
