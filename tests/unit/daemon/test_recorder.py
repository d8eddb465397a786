"""The history writer: off the loop, bounded, and never in the loop's way."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

from vigild.config_sections import HistoryConfig
from vigild.daemon.recorder import QUEUE_BATCHES, HistoryWriter
from vigild.events import CycleCompleted, ProbeResult
from vigild.model import Observation
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import Retention

START = 1_800_000_000.0


def test_a_writer_that_falls_behind_drops_whole_batches_and_counts_them(tmp_path: Path) -> None:
    gate = threading.Event()

    def stuck_clock() -> float:
        # The writer reads the clock while writing: held here, it stops as a slow disk would.
        gate.wait(10)
        return START + 600

    writer = HistoryWriter(tmp_path / "h.db", HistoryConfig(), clock=stuck_clock)
    cycles = QUEUE_BATCHES + 5
    started = time.monotonic()
    for i in range(cycles):
        writer.probe_result(ProbeResult("api", "http", Observation("api", START + i, True), [], []))
        writer.cycle_completed(CycleCompleted(30.0, START + i, 0.0, 0.1, recorded=True))
    assert time.monotonic() - started < 0.5  # the loop never waited for the writer
    dropped = writer.dropped["queue_full"]
    # One batch in the writer's hands (or about to be), QUEUE_BATCHES waiting.
    assert dropped in (cycles - QUEUE_BATCHES - 1, cycles - QUEUE_BATCHES)
    gate.set()
    writer.close()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        found = reader.values("api", "up", START, START + cycles, now=START + 600)
    assert len(found.points) == cycles - dropped
    assert writer.dropped["write_failed"] == 0


def test_a_path_that_cannot_be_opened_is_counted_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.mkdir()  # not a file SQLite can open, and not ours to move aside
    writer = HistoryWriter(path, HistoryConfig(), clock=lambda: START)
    for i in range(3):
        writer.probe_result(ProbeResult("api", "http", Observation("api", START + i, True), [], []))
        writer.cycle_completed(CycleCompleted(30.0, START + i, 0.0, 0.1, recorded=True))
    writer.close()
    # The first batch tried to open it; the next two waited for the retry a minute later.
    assert writer.dropped == {"queue_full": 0, "write_failed": 3, "late": 0}
    assert path.is_dir() and [p.name for p in tmp_path.iterdir()] == ["h.db"]


class _Metrics(dict[str, float]):
    """A metrics dict that a weak reference can watch."""


def test_a_written_batch_is_let_go_before_the_next_cycle(tmp_path: Path) -> None:
    # Held until the next batch arrives, a cycle's observations would live through
    # the next cycle: twice the memory of the board at 10,000 targets.
    writer = HistoryWriter(tmp_path / "h.db", HistoryConfig(), clock=lambda: START)
    metrics = _Metrics(latency_seconds=0.1)
    watched = weakref.ref(metrics)
    writer.probe_result(
        ProbeResult("api", "http", Observation("api", START, True, metrics=metrics), [], [])
    )
    del metrics
    writer.cycle_completed(CycleCompleted(30.0, START, 0.0, 0.1, recorded=True))
    deadline = time.monotonic() + 10
    while watched() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert watched() is None
        assert writer.dropped == {"queue_full": 0, "write_failed": 0, "late": 0}
    finally:
        writer.close()
