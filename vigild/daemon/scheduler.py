"""One APScheduler job per cycle (per distinct interval), never one per target.

An APScheduler run costs more CPU than a probe, and paced wake-ups dominate a
monitor's CPU; so the targets sharing an interval fire together as one job.
Cycles of different intervals start at different offsets (the golden-ratio
sequence), so a 30 s and a 60 s cycle do not wake in the same instant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from vigild.daemon.cycle import Watched

__all__ = ["CycleScheduler"]

log = structlog.get_logger("vigild.scheduler")

_GOLDEN = 0.6180339887498949

RunCycle = Callable[[Sequence[Watched]], Awaitable[None]]


class CycleScheduler:
    def __init__(self, run_cycle: RunCycle) -> None:
        self._run_cycle = run_cycle
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self, cycles: dict[float, list[Watched]]) -> None:
        self._scheduler.start()
        self.replace(cycles)

    def replace(self, cycles: dict[float, list[Watched]]) -> None:
        """Swap in a reloaded config's cycles; a cycle already running finishes on the old."""
        self._scheduler.remove_all_jobs()
        shortest = min(cycles, default=0.0)
        now = datetime.now(UTC)
        for index, (interval, watched) in enumerate(sorted(cycles.items())):
            offset = (index * _GOLDEN) % 1.0 * shortest
            self._scheduler.add_job(
                self._run_cycle,
                IntervalTrigger(seconds=interval, start_date=now + timedelta(seconds=offset)),
                args=[watched],
                id=f"cycle-{interval:g}s",
                name=f"cycle of {len(watched)} targets every {interval:g}s",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=now + timedelta(seconds=offset),
            )
        log.info("cycles scheduled", cycles={f"{i:g}s": len(w) for i, w in cycles.items()})

    def pause(self) -> None:
        """No new cycles; running ones go on (a shutdown would cancel them at once)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _on_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("cycle failed", job=event.job_id, error=repr(event.exception))
        else:
            log.warning("cycle skipped: the previous one is still running", job=event.job_id)
