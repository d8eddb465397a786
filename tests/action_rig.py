"""Engine and action runner on one real state file, driven by a fake clock the way the
runtime drives them (observe, flush, evaluate after each cycle); the commands they
start are real processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from vigild.alerting.actions.base import backend
from vigild.alerting.actions.runner import ActionRunner
from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import flush
from vigild.alerting.stages.route import Route
from vigild.config import ActionConfig, ThresholdSpec
from vigild.model import AlertEvent, Identity, Notification, Severity
from vigild.storage import ActionRun, Database, read_action_history
from vigild.testing import FakeClock
from vigild.thresholds import Rule, Verdict

UP = Rule.from_spec("up", ThresholdSpec())
EVERYONE = Route("all", min_rank=1, send_resolved=True, repeat_interval=4 * 3600.0)
HOST = Identity("web-1")


def action(kind: str = "command", **settings: Any) -> ActionConfig:
    """An ``[[actions]]`` table as the config loader builds it."""
    common = {k: v for k, v in settings.items() if k in ActionConfig.COMMON_KEYS}
    own = {k: v for k, v in settings.items() if k not in ActionConfig.COMMON_KEYS}
    options = backend(kind).Options.model_validate(own)
    return ActionConfig.model_validate(
        {"name": "rollback", "type": kind, **common, "options": options}
    )


class Rig:
    """Engine and runner on one state file; ``restart`` opens both again on it."""

    def __init__(self, path: Path, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.path = path
        self.session = session
        self.clock = clock
        self.outcomes: list[tuple[str, str]] = []
        self._open()

    def _open(self) -> None:
        self.db = Database(self.path)
        self.engine = Engine(self.db.alerts.load(), (EVERYONE,), flap_limit=4, identity=HOST)
        self.runner = self._runner(())

    def _runner(
        self,
        actions: Sequence[ActionConfig],
        redact: Callable[[str], str] = str,
        previous: ActionRunner | None = None,
    ) -> ActionRunner:
        return ActionRunner(
            self.db,
            self.engine,
            self.session,
            actions=actions,
            redact=redact,
            clock=self.clock,
            publish=lambda event: self.outcomes.append((event.action, event.outcome)),
            previous=previous,
        )

    def configure(self, *actions: ActionConfig, redact: Callable[[str], str] = str) -> None:
        self.runner = self._runner(actions, redact, previous=self.runner)

    async def restart(self) -> None:
        await self.runner.close()
        self.db.close()
        self._open()

    def read(self, target: str, up: bool, step: float = 30.0) -> None:
        """One cycle: a reading of ``target``, the flush, then the actions' turn."""
        now = self.clock.advance(step)
        severity = Severity.OK if up else Severity.CRITICAL
        self.engine.observe(target, [Verdict("up", severity, float(up), None, UP)], now)
        flush(self.engine, self.db, now)
        self.runner.evaluate(now)

    def history(self) -> list[ActionRun]:
        return read_action_history(self.path, 100)

    def action_events(self) -> list[AlertEvent]:
        return [
            event
            for _, payload in self.db.outbox.entries("all")
            for event in Notification.from_json(json.loads(payload)).events
            if event.kind == "action"
        ]

    def action_notes(self) -> list[str]:
        return [event.note or "" for event in self.action_events()]


@pytest.fixture
async def rig(
    tmp_path: Path, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    monkeypatch.chdir(tmp_path)  # the scripts write runs.txt where they run
    made = Rig(tmp_path / "state.db", session, FakeClock())
    yield made
    await made.runner.close()
    made.db.close()
