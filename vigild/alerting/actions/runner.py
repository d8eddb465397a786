"""Runs actions for the alerts that call for them, under the guards, and reports.

After each completed cycle the runtime calls ``evaluate``: for every open alert
and every action, ``guards`` decides; a run starts as a task (cycles never
wait for it) and is recorded as "running" before the task starts, so the next
evaluation, or the next vigild after a crash, sees it. When it ends, its
outcome, exit code and output go to SQLite, to ``vigild_actions_total`` and,
as an "action" event about the alert, to every notifier's outbox.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from vigild.alerting.actions import base, guards
from vigild.alerting.notifiers.text import duration
from vigild.model import AlertEvent, Notification, Severity

if TYPE_CHECKING:
    import aiohttp

    from vigild.alerting.engine import Alert, Engine
    from vigild.alerting.store import ActionRun, Store
    from vigild.config import ActionConfig

__all__ = ["ActionRunner"]

log = structlog.get_logger("vigild.actions")

OVERRUN = 70.0
"""Past its ``timeout``, how long a backend may take before the runner cancels it: a
command's kill grace fits in it; a third-party backend that ignores its timeout does not."""
NOTE_OUTPUT = 1000
"""The output's tail shown in a notification: chat services cut messages near 2,000."""

OutcomeListener = Callable[[str, str], None]


class ActionRunner:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        on_queued: Callable[[], None] = lambda: None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._store = store
        self._engine = engine
        self._session = session
        self._clock = clock
        self.on_queued = on_queued
        self._redact = redact
        self.listeners: list[OutcomeListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._actions: dict[str, tuple[ActionConfig, base.Action]] = {}
        self.enabled = True
        interrupted = store.interrupt_action_runs(clock(), "interrupted: vigild stopped")
        if interrupted:
            log.warning("action runs interrupted by a previous stop", runs=interrupted)

    def configure(
        self, actions: Sequence[ActionConfig], *, enabled: bool, redact: Callable[[str], str]
    ) -> None:
        """Take a (reloaded) config's actions; runs under way finish as they started."""
        self.enabled = enabled
        self._redact = redact
        self._actions = {a.name: (a, base.backend(a.type)(a)) for a in actions}
        if actions and not enabled:
            log.info("actions are turned off", actions=sorted(self._actions))

    @property
    def running(self) -> int:
        return len(self._tasks)

    # -- deciding ---------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """Start, skip or verify, for every open alert; never waits for a run."""
        if not self.enabled or not self._actions:
            return
        alerts = [a for a in self._engine.alerts() if a.severity is not None]
        self._verify(alerts, now)
        down = self._engine.down_targets()
        for alert in alerts:
            for config, action in self._actions.values():
                found = guards.incident(config.when, alert, now)
                if found is None:
                    continue
                # Held back: the readings say more about something else that is down.
                if self._engine.held_back(alert, down) is not None:
                    continue
                if self._engine.silenced(alert, now) is not None:
                    continue
                runs = self._store.action_runs(
                    config.name, now - guards.DAY, found.fingerprint, found.started
                )
                decision = guards.decide(config, found, runs, now)
                if decision.verdict == "run":
                    self._start(config, action, found, now)
                elif decision.verdict == "skip" and not guards.already_skipped(
                    runs, found, decision.guard
                ):
                    self._skip(config, found, decision, now)

    def _skip(
        self, config: ActionConfig, found: guards.Incident, decision: guards.Decision, now: float
    ) -> None:
        self._store.add_action_run(
            **_identity(config, found, now),
            outcome="skipped",
            detail=f"{decision.guard}: {decision.reason}",
        )
        log.warning(
            "action skipped",
            action=config.name,
            target=found.target,
            metric=found.metric,
            reason=decision.reason,
        )
        self._count(config.name, "skipped")

    def _verify(self, alerts: Iterable[Alert], now: float) -> None:
        by_fingerprint = {a.fingerprint: a for a in alerts}
        for run in self._store.action_runs_to_verify():
            known = self._actions.get(run.action)
            if known is None:
                continue
            config = known[0]
            alert = by_fingerprint.get(run.fingerprint)
            verdict = guards.verdict(run, config, alert, now)
            if verdict is None:
                continue
            self._store.verify_action_run(run.id, verdict)
            log.info("action verified", action=run.action, target=run.target, verdict=verdict)
            if verdict == guards.DID_NOT_HELP and alert is not None:
                severity = alert.severity or Severity.CRITICAL
                self._notify(
                    run,
                    severity,
                    f"rollback did not help: action {run.action} ran "
                    f"{duration(now - run.started)} ago and {run.target} {run.metric} is "
                    f"still {severity.name}; no further run for this incident",
                    now,
                )

    # -- running ----------------------------------------------------------

    def _start(
        self, config: ActionConfig, action: base.Action, found: guards.Incident, now: float
    ) -> None:
        what = action.describe()
        if config.dry_run:
            run_id = self._store.add_action_run(
                **_identity(config, found, now), outcome="dry_run", detail=f"would run: {what}"
            )
            log.warning(
                "action dry run: nothing ran",
                action=config.name,
                target=found.target,
                metric=found.metric,
                would_run=self._redact(what),
            )
            self._count(config.name, "dry_run")
            self._report(config, run_id, found, f"(dry run) would run `{what}`; nothing ran", now)
            return
        run_id = self._store.add_action_run(
            **_identity(config, found, now), outcome="running", detail=what
        )
        log.warning(
            "action started",
            action=config.name,
            target=found.target,
            metric=found.metric,
            run=self._redact(what),
        )
        task = asyncio.get_running_loop().create_task(self._run(config, action, found, run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, config: ActionConfig, action: base.Action, found: guards.Incident, run_id: int
    ) -> None:
        context = base.ActionContext(
            action=config.name,
            fingerprint=found.fingerprint,
            target=found.target,
            metric=found.metric,
            severity=found.severity,
            value=found.value,
            threshold=found.threshold,
            since=found.since,
            timeout=config.timeout,
            session=self._session,
            redact=self._redact,
        )
        try:
            result = await asyncio.wait_for(action.run(context), config.timeout + OVERRUN)
        except TimeoutError:
            result = base.ActionResult("timeout", f"cancelled after {config.timeout:g}s")
        except asyncio.CancelledError:
            self._store.finish_action_run(
                run_id,
                finished=self._clock(),
                outcome="failed",
                detail="interrupted: vigild stopped",
                exit_code=None,
                output="",
            )
            self._count(config.name, "failed")
            log.warning("action interrupted by vigild stopping", action=config.name)
            raise
        except Exception as exc:  # a third-party backend's bug must not end the daemon
            log.exception("action failed with an error", action=config.name)
            result = base.ActionResult("failed", f"error: {type(exc).__name__}: {exc}")
        now = self._clock()
        detail = self._redact(result.detail)
        output = self._redact(result.output)
        self._store.finish_action_run(
            run_id,
            finished=now,
            outcome=result.outcome,
            detail=detail,
            exit_code=result.exit_code,
            output=output,
        )
        self._count(config.name, result.outcome)
        report = log.info if result.outcome == "succeeded" else log.error
        report(
            "action finished",
            action=config.name,
            target=found.target,
            metric=found.metric,
            outcome=result.outcome,
            detail=detail,
            exit_code=result.exit_code,
            output=output,
        )
        text = f"{result.outcome}: ran `{action.describe()}`, {detail}"
        tail = output[-NOTE_OUTPUT:].strip()
        if tail:
            text += f"\noutput (tail):\n```\n{tail}\n```"
        self._report(config, run_id, found, text, now)

    def _report(
        self,
        config: ActionConfig,
        run_id: int,
        found: guards.Incident,
        text: str,
        now: float,
    ) -> None:
        """The run's notification, then, if it spent the daily budget, the call for a human."""
        runs = self._store.action_runs(config.name, now - guards.DAY, found.fingerprint, 0.0)
        run = next(r for r in runs if r.id == run_id)
        self._notify(run, found.severity, f"action {config.name} {text}", now)
        today = guards.daily_runs(runs, now)
        if today == config.max_runs_per_day:
            log.error("action disabled: a human must look", action=config.name, runs=today)
            self._notify(
                run,
                Severity.CRITICAL,
                f"action {config.name} is disabled: it ran {today} times in 24h "
                "(max_runs_per_day); a human must look",
                now,
            )

    def _notify(self, run: ActionRun, severity: Severity, text: str, now: float) -> None:
        event = AlertEvent(
            fingerprint=run.fingerprint,
            target=run.target,
            metric=run.metric,
            kind="action",
            severity=severity,
            previous=None,
            value=None,
            threshold=None,
            since=run.incident,
            note=self._redact(text),
            origin=self._engine.identity.labels,
        )
        rows = [
            (route.name, now, json.dumps(Notification(route.name, now, (event,)).to_json()))
            for route in self._engine.routes
        ]
        if rows:
            self._store.queue_notifications(rows)
            self.on_queued()

    def _count(self, action: str, outcome: str) -> None:
        for listener in self.listeners:
            listener(action, outcome)

    # -- ending -----------------------------------------------------------

    async def wait_idle(self) -> None:
        """Until every started run has ended (each is bounded by its timeout)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop runs under way (a command's process group is killed), recording each."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _identity(config: ActionConfig, found: guards.Incident, now: float) -> dict[str, Any]:
    return {
        "action": config.name,
        "fingerprint": found.fingerprint,
        "target": found.target,
        "metric": found.metric,
        "incident": found.started,
        "started": now,
    }
