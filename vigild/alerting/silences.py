"""Silences: mute notifications (never evaluation) for matching alerts for a while.

A silence comes from the config (``[[silences]]``, fixed ``starts``/``ends``
or a weekly maintenance ``schedule``) or from the API at runtime, which keeps
it in the state file. The engine asks ``Silences.covering`` before it tells a
notifier anything; when a silence ends, alerts still open are told at the
next cycle, because each cycle's reading touches them again.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from vigild.model import rfc3339
from vigild.schedule import MaintenanceWindow, parse_schedule

if TYPE_CHECKING:
    from vigild.config import SilenceConfig

__all__ = ["MaintenanceWindow", "Silence", "Silences", "parse_schedule"]


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

    @classmethod
    def from_config(cls, spec: SilenceConfig, silence_id: str, now: float, source: str) -> Silence:
        """A ``[[silences]]`` table (or an API body); a ``duration`` counts from
        ``starts``, or from ``now`` when it has none."""
        window = parse_schedule(spec.schedule, spec.timezone) if spec.schedule is not None else None
        starts = spec.starts.timestamp() if spec.starts is not None else None
        if spec.duration is not None:
            ends: float | None = (starts if starts is not None else now) + spec.duration
        else:
            ends = spec.ends.timestamp() if spec.ends is not None else None
        return cls(
            id=silence_id,
            target=spec.matchers.target,
            metric=spec.matchers.metric,
            severity=spec.matchers.severity,
            starts=starts if window is None else None,
            ends=ends,
            window=window,
            comment=spec.comment,
            created_by=spec.created_by,
            source=source,
        )

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
        silence = Silence.from_config(spec, new_id(), now, "api")
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
            silences[silence_id] = Silence.from_config(spec, silence_id, now, "api")
        return silences
