"""What the status page, a target's 7-day view, ``/api/status`` and ``/api/history``
show, read from the running parts: a snapshot on the loop, for the server to build and
render in a thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vigild.assembly import Config
from vigild.daemon.history import PageHistory
from vigild.daemon.recorder import history_document
from vigild.daemon.runtime import Runtime
from vigild.status import Moment
from vigild.storage.history_reader import HistoryReader

if TYPE_CHECKING:
    from vigild.daemon.page import Snapshot, WeekSnapshot

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

    def moment(self) -> Moment:
        """The board and the open alerts as they stand: cheap, on the loop."""
        runtime = self._runtime
        return runtime.board.moment(self._config(), runtime.parts.engine, self._clock())

    def _refresh(self) -> float:
        # The pages' code (sparklines, markupsafe) loads with the first page asked for.
        from vigild.daemon.page import refresh_seconds

        return refresh_seconds(self._config().daemon.interval)

    def page(self, number: int, target: str | None = None) -> Snapshot:
        # The pages' code (sparklines, markupsafe) loads with the first page asked for.
        from vigild.daemon.page import Snapshot

        return Snapshot(self.moment(), self._page_history, self._refresh(), number, target)

    def week(self, target: str) -> WeekSnapshot:
        from vigild.daemon.page import WeekSnapshot

        writer = self._runtime.history_writer
        return WeekSnapshot(
            self.moment(),
            target,
            lambda: HistoryReader(writer.path, writer.retention),
            self._refresh(),
        )

    def history(self, query: Mapping[str, str], now: float) -> dict[str, Any]:
        path = self._runtime.history_writer.path
        return history_document(path, self._config().history, query, now)
