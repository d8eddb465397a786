"""Silences: mute notifications (never evaluation) for matching alerts for a while.

A silence comes from the config (``[[silences]]``, fixed ``starts``/``ends``
or a weekly maintenance ``schedule``) or from the API at runtime, which keeps
it in the state file. The engine asks ``Silences.covering`` before it tells a
notifier anything; when a silence ends, alerts still open are told at the
next cycle, because each cycle's reading touches them again.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from vigild.model import rfc3339

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

    from vigild.config import SilenceConfig

__all__ = ["MaintenanceWindow", "Silence", "Silences", "parse_schedule"]

_DAYS = {
    "mon": "monday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
}
_SCHEDULE = re.compile(
    r"^\s*(?P<days>[A-Za-z*][A-Za-z,\-]*|\*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def _minutes(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def _days(text: str) -> str:
    """ "Sun", "sat,sun", "Mon-Fri", "*" or "daily" as APScheduler's ``day_of_week``."""
    lowered = text.lower()
    if lowered in ("*", "daily"):
        return "*"
    return ",".join("-".join(_day(d) for d in span.split("-")) for span in lowered.split(","))


def _day(token: str) -> str:
    for short, full in _DAYS.items():
        if token in (short, full):
            return short
    raise ValueError(f"{token!r} is not a day (Mon, Tue, ... Sun)")


_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly window such as ``"Sun 02:00-04:00"`` in a named time zone.

    Active when the window's latest start lies within its length before now:
    the cron trigger finds the first start after ``now - length``.
    """

    trigger: CronTrigger
    length: timedelta
    text: str

    def active(self, now: float) -> bool:
        moment = datetime.fromtimestamp(now, UTC)
        # The end is exclusive: at 04:00 a 02:00-04:00 window is over.
        start = self.trigger.get_next_fire_time(None, moment - self.length + _TICK)
        return start is not None and start <= moment


def parse_schedule(text: str, timezone: str) -> MaintenanceWindow:
    """``"Sun 02:00-04:00"``, ``"Mon-Fri 22:00-23:30"``, ``"daily 23:00-01:00"``."""
    match = _SCHEDULE.match(text)
    if match is None:
        raise ValueError(
            f'invalid schedule {text!r}: expected days and a time range, e.g. "Sun 02:00-04:00"'
        )
    start, end = _minutes(match["start"]), _minutes(match["end"])
    length = (end - start) % (24 * 60)
    if length == 0:
        raise ValueError(f"schedule {text!r} has an empty time range")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from apscheduler.triggers.cron import CronTrigger

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    trigger = CronTrigger(
        day_of_week=_days(match["days"]), hour=start // 60, minute=start % 60, timezone=zone
    )
    return MaintenanceWindow(trigger, timedelta(minutes=length), text)


@dataclass(frozen=True)
class Silence:
    """Matchers are globs (``covabot*``) on target, metric and severity."""

    id: str
    target: str = "*"
    metric: str = "*"
    severity: str = "*"
    starts: float | None = None
    ends: float | None = None
    window: MaintenanceWindow | None = None
    comment: str = ""
    created_by: str = ""
    source: str = "api"
    """``config`` or ``api``: only API silences can be expired through the API."""

    def active(self, now: float) -> bool:
        if self.window is not None:
            return self.window.active(now)
        return (self.starts is None or self.starts <= now) and (
            self.ends is None or now < self.ends
        )

    def expired(self, now: float) -> bool:
        return self.window is None and self.ends is not None and now >= self.ends

    def matches(self, target: str, metric: str, severity: str) -> bool:
        return (
            fnmatch.fnmatchcase(target, self.target)
            and fnmatch.fnmatchcase(metric, self.metric)
            and fnmatch.fnmatchcase(severity, self.severity)
        )

    def to_json(self, now: float) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "matchers": {"target": self.target, "metric": self.metric, "severity": self.severity},
            "starts": rfc3339(self.starts) if self.starts is not None else None,
            "ends": rfc3339(self.ends) if self.ends is not None else None,
            "schedule": self.window.text if self.window is not None else None,
            "comment": self.comment,
            "created_by": self.created_by,
            "source": self.source,
            "active": self.active(now),
        }
        if self.window is not None:
            document["timezone"] = str(self.window.trigger.timezone)
        return document


def new_id() -> str:
    return secrets.token_hex(8)


class SilenceStore(Protocol):
    def save(self, silence_id: str, row: dict[str, Any]) -> None: ...
    def delete(self, silence_id: str) -> None: ...


@dataclass
class Silences:
    """The config's silences and the runtime ones, which the store keeps."""

    store: SilenceStore
    configured: tuple[Silence, ...] = ()
    runtime: dict[str, Silence] = field(default_factory=dict)

    def covering(self, target: str, metric: str, severity: str, now: float) -> Silence | None:
        for silence in self:
            if silence.active(now) and silence.matches(target, metric, severity):
                return silence
        return None

    def __iter__(self) -> Iterator[Silence]:
        yield from self.configured
        yield from self.runtime.values()

    def add(self, spec: SilenceConfig, now: float) -> Silence:
        """A new runtime silence, kept in the state file in its config form, with a
        ``duration`` turned into ``ends`` so it means the same after a restart."""
        silence = spec.silence(new_id(), now, "api")
        if spec.duration is not None:
            spec = spec.model_copy(
                update={
                    "starts": datetime.fromtimestamp(silence.starts or now, UTC),
                    "ends": datetime.fromtimestamp(silence.ends or now, UTC),
                    "duration": None,
                }
            )
        self.store.save(silence.id, spec.model_dump(mode="json", by_alias=True))
        self.runtime[silence.id] = silence
        return silence

    def expire(self, silence_id: str) -> bool:
        """End an API silence now; False if there is no such (API) silence."""
        silence = self.runtime.pop(silence_id, None)
        if silence is None:
            return False
        self.store.delete(silence_id)
        return True

    def prune(self, now: float) -> None:
        """Forget API silences that have ended: the file must not grow forever."""
        for silence in [s for s in self.runtime.values() if s.expired(now)]:
            self.expire(silence.id)

    def listing(self, now: float) -> list[dict[str, Any]]:
        return [s.to_json(now) for s in self]

    @staticmethod
    def from_rows(rows: Iterable[tuple[str, dict[str, Any]]], now: float) -> dict[str, Silence]:
        from pydantic import ValidationError

        from vigild.config import SilenceConfig

        silences = {}
        for silence_id, row in rows:
            try:
                spec = SilenceConfig.model_validate(row)
            except ValidationError:
                continue  # a row this vigild cannot read is not a silence it can honour
            silences[silence_id] = spec.silence(silence_id, now, "api")
        return silences
