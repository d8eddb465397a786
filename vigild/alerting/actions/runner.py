"""Runs actions for the alerts that call for them, under the guards, and reports.

After each completed cycle the runtime calls ``evaluate``: for every open alert
and every action, ``guards`` decides; a run starts as a task (cycles never
wait for it) and is recorded as "running" before the task starts, so the next
evaluation, or the next vigild after a crash, sees it. When it ends, its
outcome, exit code and output go to SQLite, to ``vigild_actions_total`` and,
as an "action" event about the alert, to the outbox of every notifier whose
``min_severity`` the alert's severity reaches (``pipeline.report``).

A run a killed vigild left "running" is taken over at the next start when its
process group still lives (``adopted``); one whose process is gone, or that had
none, ended with that vigild.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from vigild.alerting import pipeline
from vigild.alerting.actions import adopted, base, guards
from vigild.alerting.notifiers.text import subject
from vigild.events import ActionOutcome, Publish
from vigild.model import AlertEvent, Severity
from vigild.tasks import spawn
from vigild.wording import duration

if TYPE_CHECKING:
    import aiohttp

    from vigild.alerting.alert import Alert
    from vigild.alerting.engine import Engine
    from vigild.config import ActionConfig
    from vigild.storage.actions import ActionRun
    from vigild.storage.database import Database

__all__ = ["ActionRunner"]

log = structlog.get_logger("vigild.actions")

OVERRUN = 70.0
"""Past its ``timeout``, how long a backend may take before the runner cancels it: a
command's kill grace fits in it; a third-party backend that ignores its timeout does not."""
NOTE_OUTPUT = 1000
"""The output's tail shown in a notification: chat services cut messages near 2,000."""


class ActionRunner:
    def __init__(
        self,
        db: Database,
        engine: Engine,
        session: aiohttp.ClientSession,
        *,
        actions: Sequence[ActionConfig] = (),
        enabled: bool = True,
        redact: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.time,
        on_queued: Callable[[], None] = lambda: None,
        publish: Publish = lambda event: None,
        subreaper: bool = False,
        previous: ActionRunner | None = None,
    ) -> None:
        """``subreaper``: once a run starts, adopt its orphans (for the rest of the
        process's life) so a timeout finds them; only where vigild forks nothing else.

        ``previous``: the runner of the config before a reload. Its runs under way
        finish as they started, and this runner waits for them and closes them too.
        """
        self._db = db
        self._log = db.actions
        self._engine = engine
        self._session = session
        self._clock = clock
        self._on_queued = on_queued
        self._publish = publish
        self._redact = redact
        self.enabled = enabled
        self._actions = {a.name: (a, base.backend(a.type)(a)) for a in actions}
        self._subreaper = subreaper
        self._tasks: set[asyncio.Task[None]] = previous._tasks if previous else set()
        self._reaping: bool = previous._reaping if previous else False
        self._resumed: bool = previous._resumed if previous else False
        if actions and not enabled:
            log.info("actions are turned off", actions=sorted(self._actions))

    @property
    def running(self) -> int:
        return len(self._tasks)

    # -- deciding ---------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """Start, skip or verify, for every open alert; never waits for a run."""
        if not self._resumed:
            self._resumed = True
            self._resume()
        self._reap()
        if not self.enabled or not self._actions:
            return
        alerts = [a for a in self._engine.alerts() if a.severity is not None]
        self._verify(alerts, now)
        inhibitor, silencer = pipeline.filters(self._engine)
        for alert in alerts:
            for config, action in self._actions.values():
                found = guards.incident(config.when, alert, now)
                if found is None:
                    continue
                # Held back: the readings say more about something else that is down.
                if inhibitor.reason(alert) is not None:
                    continue
                if silencer.covering(alert, now) is not None:
                    continue
                runs = self._log.runs(
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
        self._log.add(
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
        for run in self._log.to_verify():
            known = self._actions.get(run.action)
            if known is None:
                continue
            config = known[0]
            alert = by_fingerprint.get(run.fingerprint)
            verdict = guards.verdict(run, config, alert, now)
            if verdict is None:
                continue
            self._log.verify(run.id, verdict)
            log.info("action verified", action=run.action, target=run.target, verdict=verdict)
            if verdict == guards.DID_NOT_HELP and alert is not None:
                severity = alert.severity or Severity.CRITICAL
                self._notify(
                    run,
                    severity,
                    f"{run.action} did not help: it ran {duration(now - run.started)} ago "
                    f"and {subject(run.target, run.metric)} is still {severity.label}; "
                    "no further run for this incident",
                    now,
                )

    # -- running ----------------------------------------------------------

    def _start(
        self, config: ActionConfig, action: base.Action, found: guards.Incident, now: float
    ) -> None:
        what = action.describe()
        if config.dry_run:
            run_id = self._log.add(
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
            self._report(
                config.name, run_id, found, f"(dry run) would run `{what}`; nothing ran", now
            )
            return
        run_id = self._log.add(
            **_identity(config, found, now), outcome="running", detail=what, timeout=config.timeout
        )
        if self._subreaper and not self._reaping:
            from vigild.alerting.actions import processes

            self._reaping = processes.become_subreaper()
        log.warning(
            "action started",
            action=config.name,
            target=found.target,
            metric=found.metric,
            run=self._redact(what),
        )
        self._track(self._run(config, action, found, run_id))

    def _track(self, run: Coroutine[Any, Any, None]) -> None:
        task = spawn(run, name="action")
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
            run_id=run_id,
            on_process=lambda group, started: self._log.record_process(run_id, group, started),
        )
        try:
            result = await asyncio.wait_for(action.run(context), config.timeout + OVERRUN)
        except TimeoutError:
            result = base.ActionResult("timeout", f"cancelled after {config.timeout:g}s")
        except asyncio.CancelledError:
            self._interrupted(run_id, config.name)
            raise
        except Exception as exc:  # a third-party backend's bug must not end the daemon
            log.exception("action failed with an error", action=config.name)
            result = base.ActionResult("failed", f"error: {type(exc).__name__}: {exc}")
        self._reap()
        self._finish(config.name, run_id, found, action.describe(), result)

    def _finish(
        self,
        name: str,
        run_id: int,
        found: guards.Incident,
        what: str,
        result: base.ActionResult,
    ) -> None:
        now = self._clock()
        detail = self._redact(result.detail)
        output = self._redact(result.output)
        self._log.finish(
            run_id,
            finished=now,
            outcome=result.outcome,
            detail=detail,
            exit_code=result.exit_code,
            output=output,
        )
        self._count(name, result.outcome)
        report = log.info if result.outcome in ("succeeded", "finished") else log.error
        report(
            "action finished",
            action=name,
            target=found.target,
            metric=found.metric,
            outcome=result.outcome,
            detail=detail,
            exit_code=result.exit_code,
            output=output,
        )
        text = f"{result.outcome}: ran `{what}`, {detail}"
        # The output was redacted whole above; only then is its tail cut off.
        tail = output[-NOTE_OUTPUT:].strip()
        if tail:
            text += f"\noutput (tail):\n```\n{tail}\n```"
        self._report(name, run_id, found, text, now)

    def _report(
        self,
        name: str,
        run_id: int,
        found: guards.Incident,
        text: str,
        now: float,
    ) -> None:
        """The run's notification, then, if it spent the daily budget, the call for a human."""
        runs = self._log.runs(name, now - guards.DAY, found.fingerprint, 0.0)
        run = next(r for r in runs if r.id == run_id)
        # The title reads "ACTION for db on unraid: rollback succeeded: ran ...".
        self._notify(run, found.severity, f"{name} {text}", now)
        known = self._actions.get(name)
        today = guards.daily_runs(runs, now)
        if known is not None and today == known[0].max_runs_per_day:
            log.error("action disabled: a human must look", action=name, runs=today)
            self._notify(
                run,
                Severity.CRITICAL,
                f"action {name} is disabled: it ran {today} times in 24h "
                "(max_runs_per_day); a human must look",
                now,
            )

    # -- runs a previous vigild left ------------------------------------------

    def _resume(self) -> None:
        """Take over the runs a vigild that died left "running": the state lock says
        no other vigild watches them."""
        for run in self._log.running():
            if run.pgid is None or run.process_started is None or run.timeout is None:
                # Nothing outside vigild was started (a webhook, a restart call), or
                # vigild died before it was: the run ended with it.
                self._log.finish(run.id, **_INTERRUPTED, finished=self._clock())
                log.warning("action run interrupted by a previous stop", action=run.action)
                continue
            log.warning(
                "action run of a previous vigild: watching it",
                action=run.action,
                target=run.target,
                metric=run.metric,
                pgid=run.pgid,
            )
            self._track(self._watch(run))

    async def _watch(self, run: ActionRun) -> None:
        found = adopted.incident(run, self._engine.alerts())
        known = self._actions.get(run.action)
        try:
            result = await adopted.watch(
                run,
                clock=self._clock,
                kill_grace=adopted.kill_grace(known[0] if known is not None else None),
            )
        except asyncio.CancelledError:
            self._interrupted(run.id, run.action)
            raise
        self._finish(run.action, run.id, found, run.detail, result)

    def _interrupted(self, run_id: int, name: str) -> None:
        self._log.finish(run_id, **_INTERRUPTED, finished=self._clock())
        self._count(name, "failed")
        log.warning("action interrupted by vigild stopping", action=name)

    def _reap(self) -> None:
        if self._reaping:
            from vigild.alerting.actions import processes

            processes.reap()

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
            address=self._engine.policy.addresses(run.target),
        )
        # Routed as alerts are: a notifier hears of an action about an alert it would hear of.
        if pipeline.report(self._engine, self._db, event, now):
            self._on_queued()

    def _count(self, action: str, outcome: str) -> None:
        self._publish(ActionOutcome(action, outcome))

    # -- ending -----------------------------------------------------------

    async def wait_idle(self) -> None:
        """Until every started run has ended (each is bounded by its timeout)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop runs under way (a command's processes are killed), recording each."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._reap()


_INTERRUPTED: dict[str, Any] = {
    "outcome": "failed",
    "detail": "interrupted: vigild stopped",
    "exit_code": None,
    "output": "",
}


def _identity(config: ActionConfig, found: guards.Incident, now: float) -> dict[str, Any]:
    return {
        "action": config.name,
        "fingerprint": found.fingerprint,
        "target": found.target,
        "metric": found.metric,
        "incident": found.started,
        "started": now,
    }
