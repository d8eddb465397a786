"""Push checks: a job (a backup, a certificate renewal) tells vigild it ran.

The job pings (``POST /ping/<key>``, ``vigild ping``, ``vigild wrap``); the pings
land in the state file's ``push_runs``. The probe reads nothing over the network:
each cycle it judges the target's last run against its schedule. The run is due
at the schedule's next slot after the last success (or, before any, after vigild
began watching the target); it is late when no success came by due + ``grace``.
A run that failed is down at once; a run that took longer than ``max_duration``
(or still runs past it) makes ``latency_seconds`` critical.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from vigild.config import DaemonConfig, TargetConfig, ThresholdSpec
from vigild.fields import DAY, HOUR, SECOND, duration_between, is_loopback, split_listen
from vigild.model import Observation
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.redaction import one_line, printable, shorten
from vigild.wording import duration, timestamp

if TYPE_CHECKING:
    from vigild.storage.pings import PingKind, PushRun

__all__ = [
    "MAX_OUTPUT",
    "OUTPUT_LINES",
    "PushProbe",
    "PushTarget",
    "Tail",
    "due_after",
    "judge",
    "keep_output",
    "parse_ping",
]

MAX_OUTPUT = 10 * 1024
"""Bytes of a ping's body kept as the run's output: the end, where a failing job says why."""

OUTPUT_LINES = 10
"""The last lines of the output a message quotes."""

_LINE = 200
"""The longest output line a message quotes."""

_KEY = re.compile(r"[A-Za-z0-9._~-]+")


class PushTarget(TargetConfig):
    """A job that pings vigild: on a cron ``schedule`` or every ``period``."""

    REPORTED = frozenset({"up", "last_success_age_seconds", "latency_seconds", "exit_status"})

    type: Literal["push"] = "push"
    timezone: str = "UTC"
    """The zone ``schedule`` is read in."""
    schedule: str | None = None
    """A cron expression (``0 3 * * *``), as APScheduler's ``CronTrigger.from_crontab``."""
    period: Annotated[float, duration_between(SECOND, 366 * DAY)] | None = None
    grace: Annotated[float, duration_between(0, 30 * DAY)] = HOUR
    """How late the success may come after the slot it is due at."""
    max_duration: Annotated[float, duration_between(SECOND, 30 * DAY)] | None = None
    """Start to end longer than this is critical (``latency_seconds``)."""
    ping_key: str | None = None
    """The ``<key>`` of ``/ping/<key>``; without one, the target's name."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            zone = info.data.get("timezone")
            if zone is not None:  # else the zone's own problem is reported
                _trigger(value, zone)
        return value

    @field_validator("ping_key")
    @classmethod
    def _url_safe(cls, value: str | None) -> str | None:
        if value is not None and not _KEY.fullmatch(value):
            raise ValueError(
                "ping_key must be letters, digits and . _ ~ - only (it is a part of a URL)"
            )
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> PushTarget:
        if (self.schedule is None) == (self.period is None):
            raise ValueError("a push target needs schedule (cron) or period, not both")
        return self

    @property
    def key(self) -> str:
        return self.ping_key or self.name

    def implied_thresholds(
        self, defaults: Mapping[str, ThresholdSpec]
    ) -> Iterable[tuple[tuple[str | int, ...], str, ThresholdSpec]]:
        # Always: the default latency lines are for a web request, not a backup.
        spec = ThresholdSpec(critical=self.max_duration)
        return [(("max_duration",), "latency_seconds", spec)]

    def warnings(self, daemon: DaemonConfig) -> Iterable[str]:
        host, _port = split_listen(daemon.listen)
        if self.ping_key is None and not is_loopback(host):
            yield (
                f"push target {self.name!r} has no ping_key and vigild listens on "
                f"{daemon.listen}: anyone who can reach it can ping /ping/{self.name}"
            )


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _trigger(expression: str, zone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(expression, timezone=_zone(zone))
    except ValueError as exc:
        raise ValueError(f"not a cron expression ({exc})") from None


def due_after(target: PushTarget) -> Callable[[float], float]:
    """When a success is due after one at ``anchor``: the next cron slot, or anchor + period."""
    if target.period is not None:
        period = target.period
        return lambda anchor: anchor + period
    assert target.schedule is not None
    trigger = _trigger(target.schedule, target.timezone)

    def next_slot(anchor: float) -> float:
        after = datetime.fromtimestamp(anchor, UTC) + timedelta(microseconds=1)
        found = trigger.get_next_fire_time(None, after)
        # A schedule with no slot left (a 31st of February) is never due.
        return found.timestamp() if found is not None else float("inf")

    return next_slot


class PushProbe(Probe):
    """Judges one ``type = "push"`` target from the pings recorded for it."""

    Options = PushTarget
    target: PushTarget
    keeps_state = True

    def __init__(
        self, target: PushTarget, timeout: float, context: ProbeContext | None = None
    ) -> None:
        super().__init__(target, timeout, context)
        self._due_after = due_after(target)
        self._watching_since: float | None = None
        self._saved = False

    async def probe(self, now: float) -> tuple[Observation]:
        runs = self._context.push_runs if self._context is not None else None
        if runs is None:  # `check-config --probe` reads no state file
            reason = "pings are read from the state file, which this run does not open"
            metrics = PushTarget.REPORTED - {"up"}
            return (
                Observation(
                    self.target.name,
                    now,
                    True,
                    no_data=metrics,
                    reasons=dict.fromkeys(metrics, reason),
                ),
            )
        if self._watching_since is None:
            self._watching_since = now
        run = runs.get(self.target.name)
        return (
            judge(
                self.target,
                run,
                watching_since=self._watching_since,
                now=now,
                due_after=self._due_after,
                secrets=self.secrets,
            ),
        )

    def saved_state(self) -> dict[str, Any] | None:
        if self._watching_since is None:
            return None
        return {"watching_since": self._watching_since}

    def unsaved_state(self) -> dict[str, Any] | None:
        if self._saved:
            return None
        state = self.saved_state()
        self._saved = state is not None
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        since = state.get("watching_since")
        if isinstance(since, int | float):
            self._watching_since = float(since)
            self._saved = True


def judge(
    target: PushTarget,
    run: PushRun | None,
    *,
    watching_since: float,
    now: float,
    due_after: Callable[[float], float],
    secrets: frozenset[str] = frozenset(),
) -> Observation:
    """The target's observation at ``now``: pure, so tests walk through days at once."""
    from vigild.storage.pings import PushRun

    run = run if run is not None else PushRun()
    due = due_after(run.succeeded if run.succeeded is not None else watching_since)
    metrics: dict[str, float] = {}
    reasons: dict[str, str] = {}
    if run.succeeded is not None:
        metrics["last_success_age_seconds"] = max(0.0, now - run.succeeded)
    else:
        reasons["last_success_age_seconds"] = "no success recorded yet"
    latency = run.duration
    overdue_run = (
        run.running
        and run.started is not None
        and target.max_duration is not None
        and now - run.started > target.max_duration
    )
    if overdue_run and run.started is not None:
        latency = now - run.started  # a hung job pages before it ends, if it ever does
    if latency is not None:
        metrics["latency_seconds"] = latency
    else:
        reasons["latency_seconds"] = "no run pinged both its start and its end yet"
    if run.exit_status is not None:
        metrics["exit_status"] = float(run.exit_status)
    else:
        reasons["exit_status"] = "no ping gave an exit status yet"
    # A run that started in time and may still take up to max_duration is not late.
    in_time = (
        run.running
        and run.started is not None
        and target.max_duration is not None
        and run.started <= due + target.grace
        and not overdue_run
    )
    problem = None
    if run.failed and run.ended is not None:
        status = f" with exit status {run.exit_status}" if run.exit_status is not None else ""
        problem = f"failed{status} at {timestamp(run.ended)}"
    elif now > due + target.grace and not in_time:
        problem = f"late: due {timestamp(due)}, no success within {duration(target.grace)} grace"
    observation = Observation(
        target.name,
        now,
        problem is None,
        metrics=metrics,
        no_data=frozenset(reasons),
        reasons=reasons,
    )
    if problem is not None:
        observation.error = "\n".join(
            [one_line(problem, MAX_ERROR, secrets), *_story(run, due, now, secrets)]
        )
    return observation


def _story(run: PushRun, due: float, now: float, secrets: frozenset[str]) -> list[str]:
    """The lines under a failed or late run's first: when due, the last success, its output."""
    lines = [f"due: {timestamp(due)}"]
    if run.succeeded is not None:
        ago = duration(now - run.succeeded)
        lines.append(f"last success: {timestamp(run.succeeded)} ({ago} ago)")
    else:
        lines.append("last success: never")
    shown = [
        printable(shorten(line, _LINE, secrets))
        for line in run.output.splitlines()[-OUTPUT_LINES:]
        if line.strip()
    ]
    if shown:
        lines.append("last output:")
        lines += (f"  {line}" for line in shown)
    return lines


class Tail:
    """The last ``MAX_OUTPUT`` bytes of a stream read through, holding at most twice that."""

    def __init__(self) -> None:
        self._kept = bytearray()

    def add(self, chunk: bytes) -> None:
        self._kept += chunk
        if len(self._kept) > 2 * MAX_OUTPUT:
            del self._kept[:-MAX_OUTPUT]

    def value(self) -> bytes:
        return bytes(self._kept[-MAX_OUTPUT:])


def keep_output(body: bytes, secrets: frozenset[str]) -> str:
    """A ping's body as kept: its last ``MAX_OUTPUT`` bytes as text, redacted.

    The cut comes first, then the redaction, which also masks a piece of a secret
    the cut left at the start.
    """
    from vigild.redaction import redact

    text = body[-MAX_OUTPUT:].decode("utf-8", "replace")
    return redact(text, secrets)


def parse_ping(what: str) -> tuple[PingKind, int | None]:
    """The part after ``/ping/<key>``: "" (success), ``start``, ``fail`` or an exit status
    (0 a success, 1-255 a failure with that status), as (kind, exit status)."""
    words: dict[str, PingKind] = {"": "success", "start": "start", "fail": "fail"}
    if what in words:
        return words[what], None
    if what.isdigit() and len(what) <= 3 and int(what) <= 255:
        status = int(what)
        return ("success" if status == 0 else "fail"), status
    raise ValueError(f"{what!r} is not start, fail or an exit status 0-255")
