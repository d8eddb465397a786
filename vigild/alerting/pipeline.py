"""From the engine's alert transitions to the outbox, the whole path in one place.

    verdicts ─▶ Engine.observe ─▶ transitions
      ─▶ inhibit   an alert about something a down target explains is not told (yet)
      ─▶ silence   nor is one a silence covers
      ─▶ route     each notifier is owed the difference between what it was told and
                   the alert now, if the alert reaches its min_severity
      ─▶ group     one message per notifier, max_per_message events each
      ─▶ record    alert state and messages in one transaction; "told" only then
                   (``rehearse``: the same, with nothing written, for ``vigild backtest``)

An action's report joins at ``route``: it changes no alert, so nothing filters it
(the runner asks ``inhibit`` and ``silence`` before it runs an action at all).
"""

from __future__ import annotations

from collections.abc import Sequence

from vigild.alerting.engine import Engine
from vigild.alerting.policy import Policy
from vigild.alerting.stages.base import Batch, Stage
from vigild.alerting.stages.group import Grouper
from vigild.alerting.stages.inhibit import Inhibitor, down_targets
from vigild.alerting.stages.record import Recorder, Rehearsal
from vigild.alerting.stages.route import Router
from vigild.alerting.stages.silence import Silencer
from vigild.model import AlertEvent, Notification
from vigild.storage.database import Database

__all__ = ["filters", "flush", "rehearse", "report"]


def filters(engine: Engine) -> tuple[Inhibitor, Silencer]:
    """The stages that decide whether an alert is told now: the same for the
    notifications, the action runner and the status page."""
    policy = engine.policy
    down = down_targets(engine.alerts())
    return Inhibitor(down, policy.dependencies, policy.connectivity), Silencer(policy.silences)


def _delivery(policy: Policy, record: Stage) -> tuple[Stage, ...]:
    return (
        Router(
            policy.routes,
            labels=policy.labels,
            connectivity=policy.connectivity,
            addresses=policy.addresses,
        ),
        Grouper(policy.max_per_message),
        record,
    )


def _recorder(policy: Policy, db: Database) -> Recorder:
    return Recorder(db, (route.name for route in policy.routes))


def _run(stages: Sequence[Stage], batch: Batch) -> Batch:
    for stage in stages:
        batch = stage(batch)
    return batch


def flush(engine: Engine, db: Database, now: float) -> list[Notification]:
    """Record what changed and queue the notifications it causes, in one transaction.

    Raises what the state file raises; the transitions then stay, for the next flush.
    """
    return _flush(engine, _recorder(engine.policy, db), now)


def rehearse(engine: Engine, now: float) -> list[Notification]:
    """What ``flush`` would queue now, with no state file and nothing queued: the
    engine moves on as if it had been recorded (``vigild backtest``)."""
    return _flush(engine, Rehearsal(route.name for route in engine.policy.routes), now)


def _flush(engine: Engine, record: Stage, now: float) -> list[Notification]:
    touched = engine.transitions()
    if not touched:
        return []
    batch = _run(
        (*filters(engine), *_delivery(engine.policy, record)),
        Batch(now, touched=touched, alerts=list(touched)),
    )
    engine.recorded(batch.deleted)
    return batch.notifications


def report(engine: Engine, db: Database, event: AlertEvent, now: float) -> list[Notification]:
    """Queue an event that changes no alert (an action's report) for the notifiers it reaches."""
    return _run(
        _delivery(engine.policy, _recorder(engine.policy, db)), Batch(now, reports=[event])
    ).notifications
