"""Each stage of the alerting pipeline on its own, fed a hand-made batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vigild.alerting.alert import Alert
from vigild.alerting.silences import Silences
from vigild.alerting.stages.base import Batch
from vigild.alerting.stages.group import Grouper
from vigild.alerting.stages.inhibit import Inhibitor, down_targets
from vigild.alerting.stages.record import Recorder
from vigild.alerting.stages.route import Route, Router
from vigild.alerting.stages.silence import Silencer
from vigild.config import SilenceConfig
from vigild.model import AlertEvent, Severity
from vigild.storage import Database

NOW = 1_800_000_000.0
EVERYONE = Route("all", min_rank=1, send_resolved=True, repeat_interval=3600.0)
PAGER = Route(
    "pager", min_rank=Severity.CRITICAL.routing_rank, send_resolved=True, repeat_interval=3600.0
)


def firing(
    target: str,
    metric: str = "cpu_percent",
    severity: Severity = Severity.WARNING,
    told: dict[str, tuple[str, float]] | None = None,
) -> Alert:
    return Alert(
        target,
        metric,
        f"fp-{target}-{metric}",
        severity=severity,
        peak=severity,
        started=NOW - 60,
        told=told or {},
    )


def report(severity: Severity) -> AlertEvent:
    return AlertEvent(
        "fp-api-up",
        "api",
        "up",
        "action",
        severity,
        None,
        None,
        None,
        NOW,
        note="action rollback succeeded",
    )


# -- inhibit --------------------------------------------------------------------


def test_down_targets_counts_a_label_selected_target_down_with_any_of_its_parts() -> None:
    alerts = [firing("db/db-2", "up", Severity.CRITICAL), firing("api"), firing("web", "up")]
    assert down_targets(alerts) == {"db/db-2", "db", "web"}


def test_inhibit_holds_back_what_a_down_target_explains_and_lets_the_rest_through() -> None:
    inhibitor = Inhibitor({"db"}, {"api": ("db",)}, None)
    api, db_up, db_cpu, web = firing("api"), firing("db", "up"), firing("db"), firing("web")
    assert inhibitor.reason(api) == "depends on db, which is down"
    assert inhibitor.reason(db_cpu) == "target down"
    assert inhibitor.reason(db_up) is None  # the down alert itself is told
    batch = inhibitor(Batch(NOW, alerts=[api, db_up, db_cpu, web]))
    assert batch.alerts == [db_up, web]


def test_inhibit_holds_back_everything_but_the_connectivity_check_when_it_is_down() -> None:
    inhibitor = Inhibitor({"router"}, {}, "router")
    assert inhibitor.reason(firing("api", "up")) == "vigild lost its network"
    assert inhibitor.reason(firing("router", "up")) is None


# -- silence --------------------------------------------------------------------


def test_silence_drops_the_alerts_a_silence_covers(tmp_path: Path) -> None:
    state = Database(tmp_path / "state.db")
    silences = Silences(state.silences)
    spec = SilenceConfig.model_validate({"matchers": {"target": "api*"}, "duration": "10m"})
    silence = silences.add(spec, NOW)
    silencer = Silencer(silences)
    api, db = firing("api-1"), firing("db")
    assert silencer.covering(api, NOW) is silence
    assert silencer(Batch(NOW, alerts=[api, db])).alerts == [db]
    assert silencer.covering(api, NOW + 601) is None  # ended
    state.close()


# -- route ----------------------------------------------------------------------


def test_route_tells_each_notifier_what_its_min_severity_lets_through() -> None:
    warning, critical = firing("api"), firing("db", severity=Severity.CRITICAL)
    batch = Router((EVERYONE, PAGER))(Batch(NOW, alerts=[warning, critical]))
    assert {name: [e.target for e in events] for name, events in batch.events.items()} == {
        "all": ["api", "db"],
        "pager": ["db"],
    }
    assert [(a.target, name, told) for a, name, told in batch.told] == [
        ("api", "all", ("warning", NOW)),
        ("db", "all", ("critical", NOW)),
        ("db", "pager", ("critical", NOW)),
    ]
    assert warning.told == {}  # told only once recorded


def test_route_owes_nothing_until_the_repeat_interval_then_a_repeat() -> None:
    alert = firing("api", told={"all": ("warning", NOW)})
    router = Router((EVERYONE,))
    assert router(Batch(NOW + 60, alerts=[alert])).events == {"all": []}
    [repeat] = router(Batch(NOW + 3600, alerts=[alert])).events["all"]
    assert repeat.kind == "repeat"


def test_route_resolves_only_to_notifiers_that_were_told() -> None:
    alert = firing("api", told={"all": ("warning", NOW)})
    alert.severity, alert.ended = None, NOW + 30
    batch = Router((EVERYONE, PAGER))(Batch(NOW + 30, alerts=[alert]))
    assert [(e.kind, e.previous) for e in batch.events["all"]] == [("resolved", Severity.WARNING)]
    assert batch.events["pager"] == []
    assert [(name, told) for _, name, told in batch.told] == [("all", None)]


def test_route_sends_a_report_where_its_severity_reaches() -> None:
    batch = Router((EVERYONE, PAGER))(
        Batch(NOW, reports=[report(Severity.WARNING), report(Severity.CRITICAL)])
    )
    assert [e.severity for e in batch.events["all"]] == [Severity.WARNING, Severity.CRITICAL]
    assert [e.severity for e in batch.events["pager"]] == [Severity.CRITICAL]
    assert batch.told == []


# -- group ----------------------------------------------------------------------


def test_group_makes_one_message_per_notifier_up_to_the_cap() -> None:
    events = [report(Severity.WARNING)] * 5
    batch = Grouper(2)(Batch(NOW, events={"all": events, "pager": events[:1], "quiet": []}))
    assert [(n.notifier, len(n.events)) for n in batch.notifications] == [
        ("all", 2),
        ("all", 2),
        ("all", 1),
        ("pager", 1),
    ]


# -- record ---------------------------------------------------------------------


def told_batch(alert: Alert) -> Batch:
    return Grouper(50)(Router((EVERYONE,))(Batch(NOW, touched=(alert,), alerts=[alert])))


def test_record_writes_state_and_messages_together_and_then_the_told(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    alert = firing("api", told={"gone": ("warning", NOW - 60)})
    batch = Recorder(db, ["all"])(told_batch(alert))
    assert alert.told == {"all": ("warning", NOW)}  # a removed notifier is forgotten
    assert [r.fingerprint for r in db.alerts.load()] == ["fp-api-cpu_percent"]
    assert db.outbox.pending("all") == 1
    assert batch.deleted == []
    db.close()


def test_record_forgets_the_told_when_nothing_was_recorded(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.close()  # every write now raises
    alert = firing("api")
    with pytest.raises(sqlite3.ProgrammingError):
        Recorder(db, ["all"])(told_batch(alert))
    assert alert.told == {}  # the next flush says it again


def test_record_counts_state_kept_in_memory_as_recorded(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.file.db.execute("PRAGMA query_only = ON")  # the file refuses writes (a full disk)
    alert = firing("api")
    Recorder(db, ["all"])(told_batch(alert))
    assert alert.told == {"all": ("warning", NOW)}  # told once, not again each flush
    assert db.file.write_failures == 1 and db.outbox.pending("all") == 1
    db.close()


def test_record_drops_an_idle_alert_from_the_state_file(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    alert = firing("api")
    Recorder(db, ["all"])(Batch(NOW, touched=(alert,)))
    alert.severity = alert.peak = None
    batch = Recorder(db, ["all"])(Batch(NOW + 7200, touched=(alert,)))
    assert batch.deleted == [alert] and db.alerts.load() == []
    db.close()
