"""What push targets' jobs told vigild: per target, its last run, one row each.

A ping arrives from the HTTP endpoint (the daemon) or from ``vigild ping`` (no
daemon: straight into the file, under the state lock). The push probe reads the
row at each cycle and judges it; nothing else keeps pings, so the table holds
one row per push target whatever the number of pings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from vigild.storage.file import StateFile

__all__ = ["Ping", "PingKind", "PushRun", "PushRuns"]

PingKind = Literal["start", "success", "fail"]


@dataclass(frozen=True, slots=True)
class Ping:
    kind: PingKind
    at: float
    exit_status: int | None = None
    """The job's exit status where the ping gave one (0 for ``/0``, N for ``/N``)."""
    output: str = ""
    """The body, already bounded and redacted."""


@dataclass(frozen=True, slots=True)
class PushRun:
    """A push target's last run as its pings tell it."""

    started: float | None = None
    """The last start ping."""
    ended: float | None = None
    """The last success or failure ping."""
    succeeded: float | None = None
    """The last success ping."""
    failed: bool = False
    """The last run ended in failure."""
    exit_status: int | None = None
    """Of the last run's end, where its ping gave one."""
    duration: float | None = None
    """Start to end of the last run that pinged both."""
    output: str = ""
    """What the last end ping carried."""

    @property
    def running(self) -> bool:
        """Started and not ended since."""
        return self.started is not None and (self.ended is None or self.started > self.ended)

    def after(self, ping: Ping) -> PushRun:
        if ping.kind == "start":
            return dataclasses.replace(self, started=ping.at)
        # An end without a start of its own (a plain curl at the end of a script) has
        # no duration: a start ping from the run before must not give it one.
        timed = self.running and self.started is not None and ping.at >= self.started
        success = ping.kind == "success"
        status = ping.exit_status if ping.exit_status is not None else (0 if success else None)
        return dataclasses.replace(
            self,
            ended=ping.at,
            succeeded=ping.at if success else self.succeeded,
            failed=not success,
            exit_status=status,
            duration=ping.at - self.started if timed and self.started is not None else None,
            output=ping.output,
        )


_COLUMNS = ("started", "ended", "succeeded", "failed", "exit_status", "duration", "output")


class PushRuns:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def get(self, target: str) -> PushRun | None:
        row = self._file.db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM push_runs WHERE target = ?", (target,)
        ).fetchone()
        if row is None:
            return None
        started, ended, succeeded, failed, exit_status, duration, output = row
        return PushRun(started, ended, succeeded, bool(failed), exit_status, duration, output)

    def record(self, target: str, ping: Ping) -> PushRun:
        """The target's run after ``ping``, read and written in one transaction."""
        with self._file.transaction():
            run = (self.get(target) or PushRun()).after(ping)
            self._file.db.execute(
                f"INSERT INTO push_runs (target, {', '.join(_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS),
                (
                    target,
                    run.started,
                    run.ended,
                    run.succeeded,
                    int(run.failed),
                    run.exit_status,
                    run.duration,
                    run.output,
                ),
            )
        return run
