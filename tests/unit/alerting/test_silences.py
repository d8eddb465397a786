"""What keeps a notification back, and what lets it go: silences, dependencies,
a lost network, and the cap on alerts per message. Engine on a real state file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import filters, flush
from vigild.alerting.silences import Silence, Silences, parse_schedule
from vigild.alerting.stages.route import Route
from vigild.config import SilenceConfig, ThresholdSpec
from vigild.model import AlertEvent, Severity
from vigild.storage import Database
from vigild.testing import FakeClock
from vigild.thresholds import Rule, Verdict

UP = Rule.from_spec("up", ThresholdSpec())
CPU = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80))
ROUTE = Route("all", min_rank=1, send_resolved=True, repeat_interval=4 * 3600.0)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class World:
    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.clock = FakeClock(at("2026-11-22T00:00:00+00:00"))
        self.db = Database(tmp_path / "state.db")
        self.silences = Silences(self.db.silences)
        self.engine = Engine(
            self.db.alerts.load(),
            (ROUTE,),
            flap_limit=4,
            silences=self.silences,
            **settings,  # type: ignore[arg-type]
        )

    def cycle(self, readings: dict[str, float | None], step: float = 30.0) -> list[AlertEvent]:
        """One cycle: target → cpu value (None: the probe failed). The events told."""
        now = self.clock.advance(step)
        for target, value in readings.items():
            if value is None:
                verdicts = [Verdict("up", Severity.CRITICAL, 0.0, None, UP, "refused")]
            else:
                verdicts = [
                    Verdict("up", Severity.OK, 1.0, None, UP),
                    CPU.judge("cpu_percent", value),
                ]
            self.engine.observe(target, verdicts, now)
        return [e for n in flush(self.engine, self.db, now) for e in n.events]


def told(events: list[AlertEvent]) -> list[tuple[str, str, str]]:
    return [(e.target, e.metric, e.kind) for e in events]


# -- silences -----------------------------------------------------------------


def test_a_silence_mutes_telling_never_evaluating(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = SilenceConfig.model_validate(
        {"matchers": {"target": "api*", "metric": "cpu_*"}, "duration": "10m", "comment": "deploy"}
    )
    silence = world.silences.add(spec, world.clock())
    events = world.cycle({"api-1": 95, "db": 95})
    assert told(events) == [("db", "cpu_percent", "firing")]
    alert = next(a for a in world.engine.alerts() if a.target == "api-1")
    assert alert.severity is Severity.CRITICAL  # evaluated all along
    _, silencer = filters(world.engine)
    assert silencer.covering(alert, world.clock()) is silence


def test_silence_lifecycle_in_order(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = world.cycle({"db": 95})
    assert told(first) == [("db", "cpu_percent", "firing")]
    spec = SilenceConfig.model_validate({"matchers": {"target": "api*"}, "duration": "5m"})
    world.silences.add(spec, world.clock())
    muted = [told(world.cycle({"api-1": 95})) for _ in range(9)]  # 4.5 minutes
    assert muted == [[]] * 9
    released = [told(world.cycle({"api-1": 95})) for _ in range(2)]
    assert [("api-1", "cpu_percent", "firing")] in released
    assert sum(len(r) for r in released) == 1


def test_a_runtime_silence_survives_a_restart_with_its_end_fixed(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = SilenceConfig.model_validate({"matchers": {"target": "api"}, "duration": "1h"})
    silence = world.silences.add(spec, world.clock())
    world.db.close()
    reopened = Database(tmp_path / "state.db")
    [(silence_id, row)] = reopened.silences.load()
    assert silence_id == silence.id and row["duration"] is None
    # Read back an hour later than it was made, it still ends when it was meant to.
    later = world.clock() + 1800
    restored = Silences.from_rows(reopened.silences.load(), later)[silence_id]
    assert restored.ends == silence.ends == world.clock() + 3600
    assert restored.active(later) and not restored.active(world.clock() + 3600)


def test_expired_runtime_silences_are_pruned(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = SilenceConfig.model_validate({"duration": "1m"})
    silence = world.silences.add(spec, world.clock())
    world.silences.prune(world.clock() + 30)
    assert silence.id in world.silences.runtime
    world.silences.prune(world.clock() + 60)
    assert world.silences.runtime == {} and world.db.silences.load() == []


@pytest.mark.parametrize(
    ("schedule", "zone", "moment", "active"),
    [
        ("Sun 02:00-04:00", "Europe/Berlin", "2026-11-22T01:30:00+00:00", True),  # 02:30 CET
        ("Sun 02:00-04:00", "Europe/Berlin", "2026-11-22T03:00:00+00:00", False),  # 04:00 CET
        ("Sun 02:00-04:00", "Europe/Berlin", "2026-11-22T00:59:00+00:00", False),  # 01:59 CET
        ("Sun 02:00-04:00", "UTC", "2026-11-23T02:30:00+00:00", False),  # a Monday
        ("Sat,Sun 23:00-01:00", "UTC", "2026-11-23T00:30:00+00:00", True),  # Sun 23:00 + 1h30
        ("Sat,Sun 23:00-01:00", "UTC", "2026-11-21T00:30:00+00:00", False),  # Fri 23:00 + 1h30
        ("Mon-Fri 22:00-23:30", "America/New_York", "2026-11-24T03:15:00+00:00", True),
        ("daily 12:00-12:05", "UTC", "2026-11-25T12:04:59+00:00", True),
        ("daily 12:00-12:05", "UTC", "2026-11-25T12:05:00+00:00", False),
    ],
)
def test_maintenance_windows(schedule: str, zone: str, moment: str, active: bool) -> None:
    assert parse_schedule(schedule, zone).active(at(moment)) is active


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("Sun", "expected days and a time range"),
        ("Funday 02:00-04:00", "'funday' is not a day"),
        ("Sun 25:00-26:00", "is not a time of day"),
        ("Sun 02:00-02:00", "empty time range"),
    ],
)
def test_bad_schedules_say_why(schedule: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_schedule(schedule, "UTC")


def test_a_config_silence_with_a_schedule_mutes_only_inside_its_window(tmp_path: Path) -> None:
    world = World(tmp_path)
    spec = SilenceConfig.model_validate({"schedule": "Sun 00:00-00:10", "timezone": "UTC"})
    world.silences.configured = (Silence.from_config(spec, "config-0", world.clock(), "config"),)
    # The clock starts at Sunday 00:00 UTC: the first 10 minutes are muted.
    assert [told(world.cycle({"api": 95})) for _ in range(19)] == [[]] * 19
    assert told(world.cycle({"api": 95})) == [("api", "cpu_percent", "firing")]


# -- dependencies and connectivity ----------------------------------------------


def test_a_dependency_down_holds_back_its_dependents_until_it_recovers(tmp_path: Path) -> None:
    world = World(tmp_path, dependencies={"api": ("db",)})
    events = world.cycle({"db": None, "api": None})
    assert told(events) == [("db", "up", "firing")]  # one outage, one page
    api = next(a for a in world.engine.alerts() if a.target == "api")
    inhibitor, _ = filters(world.engine)
    assert inhibitor.reason(api) == "depends on db, which is down"
    assert told(world.cycle({"db": None, "api": None})) == []
    # db recovers, api is still down: now api's own alert is worth telling.
    events = world.cycle({"db": 10, "api": None})
    assert sorted(told(events)) == [("api", "up", "firing"), ("db", "up", "resolved")]


def test_a_dependency_that_recovers_together_tells_nothing_of_its_dependents(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, dependencies={"api": ("db",)})
    world.cycle({"db": None, "api": None})
    events = world.cycle({"db": 10, "api": 10})
    assert told(events) == [("db", "up", "resolved")]


def test_lost_network_holds_everything_back_and_says_so_once(tmp_path: Path) -> None:
    world = World(tmp_path, connectivity="router")
    events = world.cycle({"router": None, "api": None, "db": 99})
    assert told(events) == [("router", "up", "firing")]
    assert events[0].note is not None and "vigild lost its network" in events[0].note
    assert told(world.cycle({"router": None, "api": None, "db": 99})) == []
    events = world.cycle({"router": 1, "api": None, "db": 99})
    assert sorted(told(events)) == [
        ("api", "up", "firing"),
        ("db", "cpu_percent", "firing"),
        ("router", "up", "resolved"),
    ]


def test_a_label_selected_dependency_is_down_when_any_container_is(tmp_path: Path) -> None:
    world = World(tmp_path, dependencies={"api": ("db",)})
    events = world.cycle({"db/db-1": 10, "db/db-2": None, "api": None})
    assert told(events) == [("db/db-2", "up", "firing")]


# -- grouping -------------------------------------------------------------------


def test_a_cycle_is_one_message_until_the_cap(tmp_path: Path) -> None:
    world = World(tmp_path, max_per_message=50)
    now = world.clock.advance(30)
    for i in range(120):
        world.engine.observe(f"t{i}", [Verdict("up", Severity.CRITICAL, 0.0, None, UP)], now)
    notifications = flush(world.engine, world.db, now)
    assert [len(n.events) for n in notifications] == [50, 50, 20]
    assert len({e.target for n in notifications for e in n.events}) == 120


def test_silence_matchers_are_globs_on_target_metric_and_severity() -> None:
    spec = SilenceConfig.model_validate(
        {
            "matchers": {"target": "covabot*", "metric": "disk_percent:*", "severity": "warning"},
            "ends": datetime(2030, 1, 1, tzinfo=UTC).isoformat(),
        }
    )
    silence = Silence.from_config(spec, "s", 0.0, "config")
    assert silence.matches("covabot-db", "disk_percent:/var", "warning")
    assert not silence.matches("covabot-db", "disk_percent:/var", "critical")
    assert not silence.matches("covabot-db", "cpu_percent", "warning")
    assert not silence.matches("other", "disk_percent:/", "warning")
