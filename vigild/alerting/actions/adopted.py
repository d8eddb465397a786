"""Runs a previous vigild left "running", whose process group still lives.

A command outlives a vigild killed with SIGKILL. The next vigild finds its run
still under way (so no second run starts) and watches it until it ends, with
outcome "finished" (its exit code went to its parent, which is gone), or kills
it at its timeout. The state lock says no other vigild watches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from vigild.alerting.actions import base, guards
from vigild.model import Severity
from vigild.wording import duration

if TYPE_CHECKING:
    from vigild.alerting.alert import Alert
    from vigild.config import ActionConfig
    from vigild.storage.actions import ActionRun

__all__ = ["POLL", "incident", "kill_grace", "watch"]

POLL = 0.5
"""How often such a run is checked: it is not our child, so no exit to wait for."""


async def watch(
    run: ActionRun, *, clock: Callable[[], float], kill_grace: float
) -> base.ActionResult:
    """Until the run's process group ends, or its timeout kills it. Cancelled, it
    stops the group first."""
    from vigild.alerting.actions import processes

    assert run.pgid is not None and run.process_started is not None
    assert run.timeout is not None
    group, started, timeout = run.pgid, run.process_started, run.timeout
    when = "while vigild was down"
    try:
        while processes.running(group, started):
            if clock() >= run.started + timeout:
                await processes.stop(group, started, kill_grace, None)
                return base.ActionResult(
                    "timeout", f"killed after {timeout:g}s (started before a restart)"
                )
            when = f"after about {duration(clock() - run.started)}"
            await asyncio.sleep(POLL)
    except asyncio.CancelledError:
        await processes.stop(group, started, kill_grace, None)
        raise
    return base.ActionResult(
        "finished",
        f"ended {when}; it outlived the vigild that started it, so its exit code is unknown",
    )


def incident(run: ActionRun, alerts: Iterable[Alert]) -> guards.Incident:
    """The incident a run answered, as far as the state file and the engine know it."""
    alert = next((a for a in alerts if a.fingerprint == run.fingerprint), None)
    severity = alert.severity if alert is not None else None
    return guards.Incident(
        run.fingerprint,
        run.target,
        run.metric,
        severity or Severity.CRITICAL,
        run.incident,
        run.incident,
        None,
        None,
    )


def kill_grace(config: ActionConfig | None) -> float:
    """The action's as configured now; the default if it is no longer a command."""
    from vigild.alerting.actions.command import KILL_GRACE, CommandOptions

    options = config.options if config is not None else None
    return options.kill_grace if isinstance(options, CommandOptions) else KILL_GRACE
