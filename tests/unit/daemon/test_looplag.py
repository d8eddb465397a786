"""vigild_event_loop_lag_seconds: a blocked loop shows up as a late timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigild.daemon.looplag import LoopLag
from vigild.daemon.metrics import Metrics
from vigild.storage import Database


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[Metrics]:
    db = Database(tmp_path / "state.db")
    yield Metrics(frozenset, state_file=db.file)
    db.close()


def sample(exposition: bytes, name: str) -> float:
    [value] = [
        float(line.rsplit(" ", 1)[1])
        for line in exposition.decode().splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    ]
    return value


async def test_a_blocking_call_on_the_loop_is_recorded_as_lag(metrics: Metrics) -> None:
    seen: list[float] = []
    late = asyncio.Event()

    def observe(lag: float) -> None:
        seen.append(lag)
        metrics.loop_lag.observe(lag)
        if lag >= 0.15:
            late.set()

    lag = LoopLag(observe, period=0.01)
    lag.start()
    try:
        await asyncio.sleep(0.03)  # a few quiet samples first
        quiet = len(seen)
        # vigild's own work that forgot to yield
        asyncio.get_running_loop().call_soon(time.sleep, 0.2)
        await asyncio.wait_for(late.wait(), 5)
    finally:
        lag.stop()

    assert quiet > 0
    assert seen[quiet] >= 0.15
    exposition = b"".join(metrics.exposition())
    assert sample(exposition, "vigild_event_loop_lag_seconds_count") == len(seen)
    assert sample(exposition, 'vigild_event_loop_lag_seconds_bucket{le="0.1"}') < len(seen)
    assert sample(exposition, "vigild_event_loop_lag_seconds_sum") >= 0.15


async def test_stopped_it_samples_no_more() -> None:
    seen: list[float] = []
    lag = LoopLag(seen.append, period=0.005)
    lag.start()
    await asyncio.sleep(0.02)
    lag.stop()
    count = len(seen)
    await asyncio.sleep(0.02)
    assert count > 0
    assert len(seen) == count
