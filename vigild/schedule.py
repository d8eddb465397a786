"""Weekly maintenance windows such as ``"Sun 02:00-04:00"``: parsed once when the
config (or an API silence) is read, asked whether they are open on every cycle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

__all__ = ["MaintenanceWindow", "parse_schedule"]

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
