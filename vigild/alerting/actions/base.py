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
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel

from vigild import plugins
from vigild.model import Severity, rfc3339
from vigild.plugins import Options, own_options

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import ActionConfig

__all__ = [
    "OUTPUT_LIMIT",
    "READ_LIMIT",
    "Action",
    "ActionContext",
    "ActionResult",
    "Options",
    "Outcome",
    "backend",
    "output_tail",
    "own_options",
]

GROUP = "vigild.actions"

OUTPUT_LIMIT = 64 * 1024
"""The tail of an action's output that is kept: enough for a script's last words."""
READ_LIMIT = 2 * OUTPUT_LIMIT
"""The tail read before redaction: a secret cut by the final cut is still whole here."""

Outcome = Literal["succeeded", "failed", "timeout", "finished", "skipped", "dry_run"]
"""``finished``: a command that ended after the vigild that started it was killed;
only its parent could learn its exit code, so whether it succeeded is unknown."""


def _ignore(group: int, started: float) -> None:
    return None


def output_tail(raw: bytes | bytearray, redact: Callable[[str], str]) -> str:
    """The last ``OUTPUT_LIMIT`` characters of ``raw``, redacted first: cut first, a
    secret across the cut would no longer match and its other half would be kept."""
    return redact(raw[-READ_LIMIT:].decode("utf-8", errors="replace"))[-OUTPUT_LIMIT:]


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
    run_id: int = 0
    """The run's id in ``vigild actions history``."""
    on_process: Callable[[int, float], None] = _ignore
    """Told a started process group and its leader's start time, so that a vigild
    restarted while it runs finds it (and does not start a second copy)."""

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
    outcome: Literal["succeeded", "failed", "timeout", "finished"]
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


@functools.cache
def backend(kind: str) -> type[Action]:
    found: type[Action] = plugins.find(GROUP, kind, Action, "action")
    return found
