"""The action log: every run, skip and dry run of an action, for its guards, for
the runs a restarted vigild must finish, and for ``vigild actions history``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vigild.storage.errors import StateFileError
from vigild.storage.file import StateFile

__all__ = ["ActionLog", "ActionRun", "read_action_history"]


@dataclass(frozen=True, slots=True)
class ActionRun:
    """One run (or skip, or dry run) of an action; ``outcome`` is "running" until it ends."""

    id: int
    action: str
    fingerprint: str
    target: str
    metric: str
    incident: float
    """The alert's ``started``: with the fingerprint, the incident this run answered."""
    started: float
    finished: float | None
    outcome: str
    detail: str
    exit_code: int | None
    output: str
    verified: str | None
    """After a successful run: "helped" or "did not help", once ``verify_after`` passed."""
    timeout: float | None = None
    pgid: int | None = None
    """A command's process group, with its leader's start time (psutil ``create_time``):
    a vigild restarted while it runs tells it from a process that reused the pid."""
    process_started: float | None = None


_HISTORY_COLUMNS = (
    "id, action, fingerprint, target, metric, incident, started, finished, outcome, detail, "
    "exit_code, output, verified"
)
_COLUMNS = _HISTORY_COLUMNS + ", timeout, pgid, process_started"


def read_action_history(path: Path, limit: int) -> list[ActionRun]:
    """The latest ``limit`` action runs, oldest first, read-only: a daemon may hold the file."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StateFileError(f"cannot read state file {path}: {exc}") from None
    try:
        rows = db.execute(
            # Not the process columns: a file not yet migrated to schema 4 lacks them.
            f"SELECT {_HISTORY_COLUMNS} FROM action_runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # written by a vigild from before actions
        raise StateFileError(f"cannot read state file {path}: {exc}") from None
    except sqlite3.Error as exc:
        raise StateFileError(f"cannot read state file {path}: {exc}") from None
    finally:
        db.close()
    return [ActionRun(*row) for row in reversed(rows)]


class ActionLog:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def add(
        self,
        *,
        action: str,
        fingerprint: str,
        target: str,
        metric: str,
        incident: float,
        started: float,
        outcome: str,
        detail: str = "",
        timeout: float | None = None,
    ) -> int:
        """Record a run as it starts ("running"), or a skip or dry run, which end at once."""
        finished = None if outcome == "running" else started
        cursor = self._file.db.execute(
            "INSERT INTO action_runs (action, fingerprint, target, metric, incident, started, "
            "finished, outcome, detail, timeout) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                action,
                fingerprint,
                target,
                metric,
                incident,
                started,
                finished,
                outcome,
                detail,
                timeout,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish(
        self,
        run_id: int,
        *,
        finished: float,
        outcome: str,
        detail: str,
        exit_code: int | None,
        output: str,
    ) -> None:
        self._file.db.execute(
            "UPDATE action_runs SET finished = ?, outcome = ?, detail = ?, exit_code = ?, "
            "output = ? WHERE id = ?",
            (finished, outcome, detail, exit_code, output, run_id),
        )

    def record_process(self, run_id: int, pgid: int, started: float) -> None:
        self._file.db.execute(
            "UPDATE action_runs SET pgid = ?, process_started = ? WHERE id = ?",
            (pgid, started, run_id),
        )

    def verify(self, run_id: int, verdict: str) -> None:
        self._file.db.execute("UPDATE action_runs SET verified = ? WHERE id = ?", (verdict, run_id))

    def runs(self, action: str, since: float, fingerprint: str, incident: float) -> list[ActionRun]:
        """What the guards of ``action`` need: its runs since ``since``, any still running,
        and every run of the incident, oldest first."""
        return self._select(
            "action = ? AND (started >= ? OR outcome = 'running' OR "
            "(fingerprint = ? AND incident = ?))",
            (action, since, fingerprint, incident),
        )

    def to_verify(self) -> list[ActionRun]:
        return self._select("outcome IN ('succeeded', 'finished') AND verified IS NULL")

    def running(self) -> list[ActionRun]:
        return self._select("outcome = 'running'")

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[ActionRun]:
        rows = self._file.db.execute(
            f"SELECT {_COLUMNS} FROM action_runs WHERE {where} ORDER BY id", args
        )
        return [ActionRun(*row) for row in rows]
