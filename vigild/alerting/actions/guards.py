"""Whether an action may run for an alert now: pure functions of the alert, the
action's persisted history and the time, so every guard is testable with a
fake clock and a list of past runs.

The order is the order an operator asks in: is this alert one the action
answers (severity, targets, metrics, ``for``; never pending or flapping)? Has
this incident had its runs, or did a run already fail to help? Is another run
under way, is the daily budget spent, is the action cooling down?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from vigild.alerting.alert import Alert
from vigild.config import ActionConfig, ActionWhen
from vigild.model import Severity
from vigild.storage.actions import ActionRun
from vigild.wording import duration

__all__ = [
    "DAY",
    "DID_NOT_HELP",
    "HELPED",
    "Decision",
    "Incident",
    "daily_runs",
    "decide",
    "incident",
    "verdict",
]

DAY = 86400.0
HELPED = "helped"
DID_NOT_HELP = "did not help"

_AT_LEAST = {
    "critical": frozenset({Severity.CRITICAL}),
    # UNKNOWN is left out on purpose: a reading that says nothing is no reason to act.
    "warning": frozenset({Severity.WARNING, Severity.CRITICAL}),
}


@dataclass(frozen=True, slots=True)
class Incident:
    """An open alert an action answers; fingerprint + ``started`` name the incident."""

    fingerprint: str
    target: str
    metric: str
    severity: Severity
    started: float
    since: float
    """When the alert reached the action's severity (``when.for`` counts from here)."""
    value: float | None
    threshold: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Literal["run", "wait", "skip"]
    """``wait``: nothing to do for this incident (already answered); ``skip``: it would
    run but a guard says no, which is recorded once per incident and guard."""
    guard: str = ""
    reason: str = ""


RUN = Decision("run")


def at_severity(severity: Severity | None, when: ActionWhen) -> bool:
    return severity in _AT_LEAST[when.severity]


def incident(when: ActionWhen, alert: Alert, now: float) -> Incident | None:
    """The incident ``alert`` is, if an action with ``when`` answers it now."""
    severity = alert.severity
    if severity is None or alert.flapping or not at_severity(severity, when):
        return None
    if not any(fnmatchcase(alert.target, glob) for glob in when.targets):
        return None
    if not any(fnmatchcase(alert.metric, glob) for glob in when.metrics):
        return None
    started = alert.started if alert.started is not None else now
    # Worse than asked (critical for a "warning" action): the alert has been at least
    # at the asked level since it opened, which it did at warning or above.
    exact = severity.label == when.severity
    since = alert.severity_since if exact and alert.severity_since is not None else started
    if now < since + when.for_:
        return None
    return Incident(
        alert.fingerprint,
        alert.target,
        alert.metric,
        severity,
        started,
        since,
        alert.value,
        alert.threshold,
    )


def _counts(run: ActionRun) -> bool:
    """Skips are a record of a guard, not a run; a dry run counts as the run it stands for."""
    return run.outcome != "skipped"


def daily_runs(runs: Sequence[ActionRun], now: float) -> int:
    return sum(1 for r in runs if _counts(r) and r.started > now - DAY)


def decide(
    action: ActionConfig, found: Incident, runs: Sequence[ActionRun], now: float
) -> Decision:
    """Whether ``action`` runs for ``found`` now, given its runs (``ActionLog.runs``)."""
    counted = [r for r in runs if _counts(r)]
    mine = [r for r in counted if (r.fingerprint, r.incident) == (found.fingerprint, found.started)]
    if any(r.verified == DID_NOT_HELP for r in mine):
        return Decision("wait", "verified", "an earlier run did not help this incident")
    if len(mine) >= action.max_runs:
        return Decision("wait", "max_runs", f"ran {len(mine)} time(s) for this incident")
    running = [r for r in counted if r.outcome == "running"]
    if running:
        other = running[0]
        return Decision("skip", "running", f"already running for {other.target} {other.metric}")
    today = daily_runs(counted, now)
    if today >= action.max_runs_per_day:
        return Decision(
            "skip",
            "max_runs_per_day",
            f"disabled: ran {today} times in 24h (max_runs_per_day); a human must look",
        )
    ends = [r.finished if r.finished is not None else r.started for r in counted]
    if ends and now < max(ends) + action.cooldown:
        ago = duration(now - max(ends))
        return Decision("skip", "cooldown", f"cooling down: the last run ended {ago} ago")
    return RUN


def already_skipped(runs: Sequence[ActionRun], found: Incident, guard: str) -> bool:
    """A guard's refusal is recorded (and counted) once per incident, not every cycle."""
    return any(
        r.outcome == "skipped"
        and r.fingerprint == found.fingerprint
        and r.incident == found.started
        and r.detail.partition(":")[0] == guard
        for r in runs
    )


def verdict(run: ActionRun, action: ActionConfig, alert: Alert | None, now: float) -> str | None:
    """After a successful run, once ``verify_after`` has passed: did it help?"""
    if run.finished is None or now < run.finished + action.verify_after:
        return None
    still = alert is not None and alert.started == run.incident
    still = still and at_severity(alert.severity if alert else None, action.when)
    return DID_NOT_HELP if still else HELPED
