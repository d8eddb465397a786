"""What the status page, a target's 7-day view and ``/api/history`` show, read from
the running parts: a snapshot on the loop, for the server to render in a thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vigild.assembly import Config
from vigild.daemon.history import PageHistory
from vigild.daemon.page import Snapshot, WeekSnapshot, refresh_seconds, snapshot, week
from vigild.daemon.recorder import history_document
from vigild.daemon.runtime import Runtime
from vigild.storage.history_reader import HistoryReader

__all__ = ["Views"]


class Views:
    def __init__(
        self, runtime: Runtime, config: Callable[[], Config], clock: Callable[[], float]
    ) -> None:
        """``config``: the running config, which a reload replaces."""
        self._runtime = runtime
        self._config = config
        self._clock = clock
        writer = runtime.history_writer
        # The status page's sparklines: a cache of the history file the writer fills.
        self._page_history = PageHistory(writer.path, writer.retention)

    def _document(self, now: float) -> dict[str, Any]:
        return self._runtime.board.document(self._config(), self._runtime.parts.engine, now)

    def _refresh(self) -> float:
        return refresh_seconds(self._config().daemon.interval)

    def page(self) -> Snapshot:
        now = self._clock()
        board = self._runtime.board
        return snapshot(
            self._document(now), board, self._page_history, refresh=self._refresh(), now=now
        )

    def week(self, target: str) -> WeekSnapshot | None:
        now = self._clock()
        writer = self._runtime.history_writer
        return week(
            self._document(now),
            target,
            lambda: HistoryReader(writer.path, writer.retention),
            refresh=self._refresh(),
            now=now,
        )

    def history(self, query: Mapping[str, str], now: float) -> dict[str, Any]:
        path = self._runtime.history_writer.path
        return history_document(path, self._config().history, query, now)
