"""The interface an action implements, and the registry that finds one by ``type``.

A third party adds a backend by publishing an ``Action`` subclass under the
``vigild.actions`` entry-point group; the config then accepts its ``type`` and
validates its keys with the backend's own ``Options`` model. A backend only
runs: when to run, and whether it may, is the runner's business.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from vigild.model import Severity, rfc3339

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import ActionConfig

__all__ = [
    "OUTPUT_LIMIT",
    "Action",
    "ActionContext",
    "ActionResult",
    "Options",
    "Outcome",
    "backend",
    "own_options",
]

GROUP = "vigild.actions"

OUTPUT_LIMIT = 64 * 1024
"""The tail of an action's output that is kept: enough for a script's last words."""

Outcome = Literal["succeeded", "failed", "timeout", "skipped", "dry_run"]


class Options(BaseModel):
    """Base for a backend's own keys; unknown keys are errors like everywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ActionContext:
    """The alert an action answers, and what it may use from the daemon."""

    action: str
    fingerprint: str
    target: str
    metric: str
    severity: Severity
    value: float | None
    threshold: float | None
    since: float
    """When the alert reached the severity that triggered the action (unix seconds)."""
    timeout: float
    session: aiohttp.ClientSession
    redact: Callable[[str], str]
    dry_run: bool = False

    def alert_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "target": self.target,
            "metric": self.metric,
            "severity": self.severity.label,
            "value": self.value,
            "threshold": self.threshold,
            "since": rfc3339(self.since),
        }


@dataclass(frozen=True)
class ActionResult:
    outcome: Literal["succeeded", "failed", "timeout"]
    detail: str
    """One line for people: ``exit code 0``, ``answered 502``, ``restarted web``."""
    exit_code: int | None = None
    output: str = ""
    """The tail of what it printed (at most ``OUTPUT_LIMIT`` bytes), secrets redacted."""


class Action(ABC):
    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, config: ActionConfig) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    def describe(self) -> str:
        """What a run does, in one line (shown for a dry run and in notifications)."""

    @abstractmethod
    async def run(self, context: ActionContext) -> ActionResult:
        """Do it within ``context.timeout``; failures are results, never exceptions.

        Cancellation (vigild stopping) must undo what is under way (a process
        group is killed) and then propagate.
        """


_O = TypeVar("_O", bound=BaseModel)


def own_options(config: ActionConfig, model: type[_O]) -> _O:
    """A backend's own keys, typed as its ``Options`` model (the config validated them)."""
    options = config.options
    return options if isinstance(options, model) else model.model_validate(options.model_dump())


@functools.cache
def backend(kind: str) -> type[Action]:
    found = entry_points(group=GROUP, name=kind)
    if not found:
        known = sorted({ep.name for ep in entry_points(group=GROUP)})
        raise LookupError(f"unknown action type {kind!r} (known: {', '.join(known)})")
    cls = next(iter(found)).load()
    if not (isinstance(cls, type) and issubclass(cls, Action)):
        raise LookupError(f"action type {kind!r} does not name a vigild Action class")
    return cls
