"""Every observation's metrics into the history file, off the event loop.

On the loop a probe result costs one list append; at the end of each cycle
the batch is handed to a worker thread, which owns the history file and
writes it. The queue between them is bounded: when the writer falls behind (a
slow disk), a full queue drops the batch and counts it, and the loop never
waits. Nothing here can stop alerting: a file that cannot be opened or
written is logged, counted, and tried again.
"""

from __future__ import annotations

import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from vigild.config_sections import HistoryConfig
from vigild.events import CycleCompleted, ProbeResult
from vigild.fields import parse_duration
from vigild.model import Observation
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import RAW, Retention

__all__ = ["HistoryUnavailable", "HistoryWriter", "QueryError", "history_document", "retention"]

log = structlog.get_logger("vigild")

QUEUE_BATCHES = 16
"""Cycles' batches that may wait for the writer; one more is dropped."""
REOPEN_EVERY = 60.0
"""Seconds between attempts to open a history file that could not be opened."""

Batch = list[Observation]
"""A cycle's observations: the board holds them anyway, so a batch adds one list slot each."""


def retention(config: HistoryConfig) -> Retention:
    return Retention(config.raw, config.five_minute, config.hourly, config.max_size)


class HistoryWriter:
    def __init__(
        self, path: Path, config: HistoryConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.retention = retention(config)
        self.clock = clock
        self._pending: Batch = []
        self._queue: queue.Queue[Batch | None] = queue.Queue(QUEUE_BATCHES)
        self.dropped = {"queue_full": 0, "write_failed": 0, "late": 0}
        """Observations (for ``late``: values) not written, by why: the writer was behind,
        the file could not be written, or they came after their hour was compacted."""
        self.bytes = 0
        self.evicted: Mapping[str, int] = {}
        self._file: HistoryFile | None = None
        self._retry_at = 0.0
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Batches waiting for the writer."""
        return self._queue.qsize()

    # -- on the loop --------------------------------------------------------

    def probe_result(self, event: ProbeResult) -> None:
        """Runs for every probe, so an append and nothing more."""
        self._pending.append(event.observation)

    def cycle_completed(self, _event: CycleCompleted) -> None:
        self._hand_over()

    def _hand_over(self) -> None:
        """Hand the cycle's results to the writer, or drop them when it is behind."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.dropped["queue_full"] += len(batch)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the writer (waiting up to ``timeout`` seconds)."""
        self._hand_over()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("history writer is stuck: stopping without its last batches")
            return
        self._thread.join(timeout)

    # -- in the writer thread -------------------------------------------------

    def _run(self) -> None:
        try:
            while self._write_next():
                pass
        finally:
            if self._file is not None:
                self._file.close()

    def _write_next(self) -> bool:
        """Write the next batch; False at the end. A batch goes with this frame: held
        while the writer waits, it would keep a whole cycle's observations alive
        through the next cycle, as much memory again as the board's."""
        batch = self._queue.get()
        if batch is None:
            return False
        self._write(batch)
        return True

    def _open(self) -> HistoryFile | None:
        if self._file is None and time.monotonic() >= self._retry_at:
            try:
                self._file = HistoryFile(self.path, self.retention, clock=self.clock)
            except (OSError, sqlite3.Error) as exc:
                self._retry_at = time.monotonic() + REOPEN_EVERY
                self._fail("cannot open the history file", exc)
        return self._file

    def _write(self, batch: Batch) -> None:
        history = self._open()
        if history is None:
            self.dropped["write_failed"] += len(batch)
            return
        late = history.late
        try:
            history.append((o.target, o.time, o.metrics) for o in batch)
        except sqlite3.DatabaseError as exc:
            self.dropped["write_failed"] += len(batch)
            if isinstance(exc, sqlite3.OperationalError):
                self._fail("cannot write the history file", exc)  # full disk: try again next
            else:
                history.close()
                self._file = None
                history.move_aside(exc)
        else:
            if self._failing:
                self._failing = False
                log.warning("history file written again", path=str(self.path))
        self.dropped["late"] += history.late - late
        self.bytes = history.size()
        self.evicted = dict(history.evicted)

    def _fail(self, what: str, exc: Exception) -> None:
        if not self._failing:
            log.error(
                f"{what}: history is not kept meanwhile; alerting is not affected",
                path=str(self.path),
                error=str(exc),
            )
        self._failing = True


# -- GET /api/history ---------------------------------------------------------


class QueryError(ValueError):
    """A request the history cannot answer, in words for the caller."""

    status = 400


class HistoryUnavailable(QueryError):
    """The file is there but cannot be read (the writer is about to move it aside)."""

    status = 503


def _time(text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise QueryError(f"not a time: {text!r} (unix seconds or RFC 3339)") from None


def _number(value: float) -> float | str:
    # JSON has no NaN or infinities: spelled as Prometheus's API spells them.
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def history_document(
    path: Path, config: HistoryConfig, query: Mapping[str, str], now: float
) -> dict[str, Any]:
    """The answer to ``GET /api/history?target=&metric=&from=&to=&step=``.

    ``from``/``to`` are unix seconds or RFC 3339 (default: the last hour);
    ``step`` a duration. Without ``step``, raw values come as ``points`` and an
    older range as the tier's own ``buckets``; with it, ``buckets`` of that step.
    """
    target, metric = query.get("target"), query.get("metric")
    if not target or not metric:
        raise QueryError("target and metric are required")
    end = _time(query.get("to"), now)
    start = _time(query.get("from"), end - 3600.0)
    if start > end:
        raise QueryError("from is after to")
    step_text = query.get("step")
    try:
        step = float(parse_duration(step_text)) if step_text else None
    except ValueError as exc:
        raise QueryError(f"step: {exc}") from None
    document: dict[str, Any] = {"target": target, "metric": metric, "from": start, "to": end}
    if not path.exists():
        return document | {"tier": RAW.name, "step": None, "points": []}
    try:
        return document | _read(
            path, config, target=target, metric=metric, start=start, end=end, step=step, now=now
        )
    except sqlite3.DatabaseError as exc:
        raise HistoryUnavailable(f"the history file cannot be read: {exc}") from None


def _read(
    path: Path,
    config: HistoryConfig,
    *,
    target: str,
    metric: str,
    start: float,
    end: float,
    step: float | None,
    now: float,
) -> dict[str, Any]:
    with HistoryReader(path, retention(config)) as reader:
        if step is None:
            found = reader.values(target, metric, start, end, now=now)
            if found.tier is RAW:
                points = [[t, _number(v)] for t, v in found.points]
                return {"tier": RAW.name, "step": None, "points": points}
            step = found.tier.step / 1000
        tier, step_ms, buckets = reader.aggregates(target, metric, start, end, step, now=now)
    return {
        "tier": tier.name,
        "step": step_ms / 1000,
        "buckets": [
            {
                "start": b.start / 1000,
                "min": _number(b.min),
                "max": _number(b.max),
                "sum": _number(b.sum),
                "count": int(b.count),
                "last": _number(b.last),
            }
            for b in buckets
        ],
    }
