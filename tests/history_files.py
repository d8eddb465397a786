"""A real history file written as the daemon's writer writes it, for tests of what reads
it: the status page, its 7-day view."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path
from typing import Any

from vigild.daemon.history import PageHistory
from vigild.model import Observation
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import Retention
from vigild.testing import FakeClock


class Recorded:
    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.path = path
        self.file = HistoryFile(path, Retention(), clock=clock)

    def record(self, observations: Iterable[Observation]) -> None:
        """One cycle's results, as ``HistoryWriter`` hands them over."""
        self.file.append([(o.target, o.time, o.metrics) for o in observations])

    def page(self) -> PageHistory:
        return PageHistory(self.path, Retention())

    def reader(self) -> HistoryReader:
        return HistoryReader(self.path, Retention())

    def close(self) -> None:
        self.file.close()


def seed(path: Path, observations: Iterable[Observation], now: float) -> None:
    """Write past observations as a daemon would have, an hour's at a time."""
    recorded = Recorded(path, FakeClock(now))
    for _, hour in groupby(observations, key=lambda o: o.time // 3600):
        recorded.record(hour)
    recorded.close()


async def wait_recorded(daemon: Any, targets: Iterable[str], tries: int = 200) -> None:
    """Until the daemon's history file holds a probe of each target: the page reads it."""
    for target in targets:
        for _ in range(tries):
            status, body = await daemon.get(f"/api/history?target={target}&metric=up")
            if status == 200 and json.loads(body)["points"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no history of {target} after {tries} tries")
