"""One APScheduler job per cycle (per distinct interval), never one per target.

An APScheduler run costs more CPU than a probe, and paced wake-ups dominate a
monitor's CPU; so the targets sharing an interval fire together as one job.
Cycles of different intervals start at different offsets (the golden-ratio
sequence), so a 30 s and a 60 s cycle do not wake in the same instant.

The job only *starts* a cycle and returns: a cycle still busy with a slow
target must never hold back or skip the next one (the pipeline skips just the
targets whose previous probe is still in flight).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["CycleScheduler", "Plan", "StartCycle"]

log = structlog.get_logger("vigild.scheduler")

_GOLDEN = 0.6180339887498949
EARLY = 0.05
"""The event loop may run a timer this much before its wall-clock time: such a
start counts as on time, not as one interval late."""

StartCycle = Callable[[float, float], None]
"""(interval, seconds the cycle starts after its schedule)."""


@dataclass(frozen=True, slots=True)
class _Job:
    interval: float
    targets: int
    trigger: IntervalTrigger
    first: datetime


Plan = Sequence[_Job]
"""The jobs of a config's cycles, built and checked before any running job is touched."""


class CycleScheduler:
    def __init__(self, start_cycle: StartCycle) -> None:
        self._start_cycle = start_cycle
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self, plan: Plan) -> None:
        self._scheduler.start()
        self.install(plan)

    @staticmethod
    def plan(cycles: Mapping[float, Sequence[object]]) -> Plan:
        """A job per cycle; cycles that cannot be scheduled raise here."""
        shortest = min(cycles, default=0.0)
        now = datetime.now(UTC)
        jobs = []
        for index, (interval, targets) in enumerate(sorted(cycles.items())):
            first = now + timedelta(seconds=(index * _GOLDEN) % 1.0 * shortest)
            trigger = IntervalTrigger(seconds=interval, start_date=first)
            jobs.append(_Job(interval, len(targets), trigger, first))
        return jobs

    def install(self, plan: Plan) -> None:
        """Put ``plan``'s jobs in place of the running ones; a cycle already running
        finishes on what it started with."""
        self._scheduler.remove_all_jobs()
        for job in plan:
            self._scheduler.add_job(
                self._tick,
                job.trigger,
                args=[job.interval, job.first.timestamp()],
                id=f"cycle-{job.interval:g}s",
                name=f"cycle of {job.targets} targets every {job.interval:g}s",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(job.interval)),
                next_run_time=job.first,
            )
        log.info("cycles scheduled", cycles={f"{j.interval:g}s": j.targets for j in plan})

    async def _tick(self, interval: float, origin: float) -> None:
        # A coroutine, so APScheduler calls it on the loop, not in a thread.
        now = time.time()
        scheduled = origin + math.floor((now - origin + EARLY) / interval) * interval
        self._start_cycle(interval, max(0.0, now - scheduled))

    def pause(self) -> None:
        """No new cycles; running ones go on (a shutdown would cancel them at once)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _on_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("cycle failed to start", job=event.job_id, error=repr(event.exception))
        else:
            # Only a loop blocked for longer than the grace time gets here.
            log.warning("cycle missed: the event loop was blocked", job=event.job_id)
