"""The alert state machine, walked through hours with a fake clock, on a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import filters, flush
from vigild.alerting.stages.route import Route
from vigild.config import ThresholdSpec
from vigild.model import AlertEvent, Identity, Notification, Severity
from vigild.storage import Database
from vigild.testing import FakeClock
from vigild.thresholds import Rule, Verdict

HOUR = 3600.0
UP = Rule.from_spec("up", ThresholdSpec())
CPU = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80))
EVERYONE = Route("all", min_rank=1, send_resolved=True, repeat_interval=4 * HOUR)
PAGER = Route("pager", min_rank=2, send_resolved=True, repeat_interval=4 * HOUR)
HOST = Identity("web-1")


class Harness:
    """An engine on a real state file, read like a sequence of probe results."""

    def __init__(
        self,
        path: Path,
        routes: tuple[Route, ...] = (EVERYONE,),
        flap_limit: int = 4,
        clock: FakeClock | None = None,
    ) -> None:
        self.path = path
        self.routes = routes
        self.flap_limit = flap_limit
        self.clock = clock or FakeClock()
        self.db = Database(path)
        self.engine = Engine(self.db.alerts.load(), routes, flap_limit=flap_limit, identity=HOST)

    def read(
        self,
        value: float | None,
        *,
        rule: Rule = CPU,
        metric: str | None = None,
        target: str = "api",
        step: float = 30.0,
    ) -> list[AlertEvent]:
        """Advance the clock by ``step``, feed one reading (None: probe failed), flush."""
        now = self.clock.advance(step)
        verdicts: list[Verdict]
        if value is None:
            verdicts = [Verdict("up", Severity.CRITICAL, 0.0, None, UP)]
        else:
            verdicts = [Verdict("up", Severity.OK, 1.0, None, UP)]
            verdicts.append(rule.judge(metric or rule.metric, value))
        self.engine.observe(target, verdicts, now)
        return [e for n in flush(self.engine, self.db, now) for e in n.events]

    def restart(self) -> None:
        self.db.close()
        self.db = Database(self.path)
        self.engine = Engine(
            self.db.alerts.load(), self.routes, flap_limit=self.flap_limit, identity=HOST
        )

    def outbox(self, notifier: str = "all") -> list[Notification]:
        entries = []
        while (entry := self.db.outbox.head(notifier)) is not None:
            entries.append(Notification.from_json(json.loads(entry.payload)))
            self.db.outbox.remove(entry.id)
        return entries


def kinds(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.severity.label) for e in events]


def test_breach_fires_only_after_it_held_for_for(tmp_path: Path) -> None:
    rule = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80, for_=60))
    h = Harness(tmp_path / "s.db")
    assert h.read(78, rule=rule) == []  # t=30: first breach, pending
    assert h.read(78, rule=rule) == []  # t=60: held 30 s
    events = h.read(78, rule=rule)  # t=90: held 60 s
    assert kinds(events) == [("firing", "warning")]
    assert events[0].value == 78 and events[0].threshold == 75
    assert h.read(78, rule=rule) == []  # no repeat before repeat_interval


def test_one_good_reading_restarts_the_for_clock(tmp_path: Path) -> None:
    rule = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80, for_=60))
    h = Harness(tmp_path / "s.db")
    h.read(78, rule=rule)
    h.read(78, rule=rule)
    assert h.read(50, rule=rule) == []
    assert h.read(78, rule=rule) == []
    assert h.read(78, rule=rule) == []
    assert kinds(h.read(78, rule=rule)) == [("firing", "warning")]


def test_comparisons_are_strict(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    assert h.read(75) == []
    assert kinds(h.read(75.01)) == [("firing", "warning")]


def test_each_level_has_its_own_for_clock(tmp_path: Path) -> None:
    rule = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80, for_=60))
    h = Harness(tmp_path / "s.db")
    h.read(78, rule=rule)  # t=30 warning breach starts
    h.read(78, rule=rule)
    assert kinds(h.read(85, rule=rule)) == [("firing", "warning")]  # t=90; critical since 90
    assert h.read(85, rule=rule) == []  # critical held 30 s
    events = h.read(85, rule=rule)  # critical held 60 s
    assert kinds(events) == [("escalated", "critical")]
    assert events[0].previous is Severity.WARNING
    assert events[0].threshold == 80


def test_escalation_deescalation_and_one_resolved(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    fired = h.read(78)
    assert kinds(fired) == [("firing", "warning")]
    escalated = h.read(90)
    assert kinds(escalated) == [("escalated", "critical")]
    assert (
        escalated[0].fingerprint == fired[0].fingerprint == HOST.fingerprint("api", "cpu_percent")
    )
    assert kinds(h.read(77)) == [("deescalated", "warning")]
    resolved = h.read(10)
    assert kinds(resolved) == [("resolved", "critical")]  # the highest it reached
    assert resolved[0].ended is not None and resolved[0].since == fired[0].since
    assert h.read(10) == []
    assert h.read(10) == []


def test_recover_for_delays_resolution_and_deescalation(tmp_path: Path) -> None:
    rule = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80, recover_for=90))
    h = Harness(tmp_path / "s.db")
    assert kinds(h.read(90, rule=rule)) == [("firing", "critical")]
    assert h.read(77, rule=rule) == []  # t=60: below critical for 0 s
    assert h.read(10, rule=rule) == []  # t=90: calm 30 s, good 0 s
    assert h.read(10, rule=rule) == []  # calm 60 s
    assert kinds(h.read(10, rule=rule)) == [("deescalated", "warning")]  # calm 90 s, good 60 s
    assert kinds(h.read(10, rule=rule)) == [("resolved", "critical")]  # good 90 s


def test_repeat_interval_reminds_no_more_often(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    assert kinds(h.read(90)) == [("firing", "critical")]
    repeats = []
    for _ in range(int(9 * HOUR / 60)):
        repeats += h.read(90, step=60)
    assert kinds(repeats) == [("repeat", "critical"), ("repeat", "critical")]


def test_notifier_repeat_interval_override(tmp_path: Path) -> None:
    hourly = Route("hourly", min_rank=1, send_resolved=True, repeat_interval=HOUR)
    h = Harness(tmp_path / "s.db", routes=(EVERYONE, hourly))
    h.read(90)
    for _ in range(int(2 * HOUR / 60)):
        h.read(90, step=60)
    sent = {name: [e.kind for n in h.outbox(name) for e in n.events] for name in ("all", "hourly")}
    assert sent == {"all": ["firing"], "hourly": ["firing", "repeat", "repeat"]}


def test_min_severity_routes_what_each_notifier_sees(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db", routes=(EVERYONE, PAGER))
    h.read(78)
    h.read(90)
    h.read(78)
    h.read(10)
    everyone = [(e.kind, e.severity.label) for n in h.outbox("all") for e in n.events]
    pager = [(e.kind, e.severity.label) for n in h.outbox("pager") for e in n.events]
    assert everyone == [
        ("firing", "warning"),
        ("escalated", "critical"),
        ("deescalated", "warning"),
        ("resolved", "critical"),
    ]
    # The pager never heard of the warning: it sees critical begin and end.
    assert pager == [("firing", "critical"), ("resolved", "critical")]


def test_send_resolved_false(tmp_path: Path) -> None:
    quiet = Route("quiet", min_rank=1, send_resolved=False, repeat_interval=4 * HOUR)
    h = Harness(tmp_path / "s.db", routes=(quiet,))
    h.read(90)
    h.read(10)
    h.read(90)
    assert [e.kind for n in h.outbox("quiet") for e in n.events] == ["firing", "firing"]


def test_a_failed_probe_says_why_and_resolving_does_not(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    now = h.clock.advance(30)
    down = Verdict("up", Severity.CRITICAL, 0.0, None, UP, note="connection refused")
    h.engine.observe("api", [down], now)
    [fired] = [e for n in flush(h.engine, h.db, now) for e in n.events]
    assert fired.note == "connection refused"
    h.restart()
    assert [e.note for e in h.read(10)] == [None]  # the resolution carries no stale reason


def test_down_target_inhibits_its_other_alerts(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    assert kinds(h.read(78)) == [("firing", "warning")]
    events = h.read(None)
    assert [(e.metric, e.kind, e.severity.label) for e in events] == [("up", "firing", "critical")]
    cpu = next(a for a in h.engine.alerts() if a.metric == "cpu_percent")
    inhibitor, _ = filters(h.engine)
    assert inhibitor.reason(cpu) == "target down"
    for _ in range(int(5 * HOUR / 60)):  # no repeat for an inhibited alert
        assert all(e.metric == "up" for e in h.read(None, step=60))
    events = h.read(78)
    assert [(e.metric, e.kind) for e in events] == [("up", "resolved"), ("cpu_percent", "repeat")]


def test_unknown_reaches_warning_routes_only(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db", routes=(EVERYONE, PAGER))
    assert kinds(h.read(math.nan)) == [("firing", "unknown")]
    assert h.outbox("pager") == []
    assert kinds(h.read(10)) == [("resolved", "unknown")]


def test_flapping_is_said_once_then_quiet_until_stable(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db", flap_limit=2)
    seen: list[tuple[str, str]] = []
    for _ in range(6):
        seen += kinds(h.read(90, step=60))
        seen += kinds(h.read(10, step=60))
    assert seen == [
        ("firing", "critical"),
        ("resolved", "critical"),
        ("firing", "critical"),
        ("resolved", "critical"),
        ("flapping", "critical"),
    ]
    quiet: list[AlertEvent] = []
    for _ in range(59):
        quiet += h.read(10, step=60)
    assert quiet == []
    assert kinds(h.read(10, step=60)) == [("resolved", "critical")]
    assert kinds(h.read(90, step=60)) == [("firing", "critical")]


def test_a_keepalive_receiver_hears_of_a_flapping_alert_every_interval(tmp_path: Path) -> None:
    keepalive = Route("am", min_rank=1, send_resolved=True, repeat_interval=60, keepalive=True)
    h = Harness(tmp_path / "s.db", routes=(EVERYONE, keepalive), flap_limit=2)
    for _ in range(3):
        h.read(90, step=60)
        h.read(10, step=60)
    h.read(90, step=60)  # flapping now
    h.outbox("all")
    h.outbox("am")
    for _ in range(10):
        h.read(10, step=60)
    assert h.outbox("all") == []  # quiet, as flapping is
    repeats = [e.kind for n in h.outbox("am") for e in n.events]
    assert repeats == ["repeat"] * 10


def test_a_resolution_names_the_level_the_notifier_last_heard(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    h.read(90)
    h.read(77)  # de-escalated to warning
    [resolved] = h.read(10)
    assert resolved.kind == "resolved" and resolved.previous is Severity.WARNING
    assert resolved.severity is Severity.CRITICAL  # the highest it reached


def test_state_survives_a_restart_exactly(tmp_path: Path) -> None:
    rule = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80, for_=60))
    h = Harness(tmp_path / "s.db")
    h.read(90, rule=rule)
    h.restart()  # the pending clock is on disk
    h.read(90, rule=rule)
    assert kinds(h.read(90, rule=rule)) == [("firing", "critical")]
    h.restart()
    assert h.read(90, rule=rule) == []  # no second firing after a restart
    h.restart()
    assert kinds(h.read(10, rule=rule)) == [("resolved", "critical")]
    h.restart()
    assert h.read(10, rule=rule) == []
    # Fires are remembered for an hour (flap detection), then nothing is left.
    assert len(h.db.alerts.load()) == 1
    h.read(10, rule=rule, step=HOUR)
    assert h.db.alerts.load() == []


def test_notifications_are_in_the_outbox_with_the_transition(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    events = h.read(90)
    h.restart()
    queued = h.outbox()
    assert [e for n in queued for e in n.events] == events
    assert queued[0].notifier == "all"


def test_one_message_per_notifier_per_flush(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    now = h.clock.advance(30)
    for target in ("a", "b", "c"):
        h.engine.observe(target, [Verdict("up", Severity.CRITICAL, 0.0, None, UP)], now)
    notifications = flush(h.engine, h.db, now)
    assert len(notifications) == 1
    assert sorted(e.target for e in notifications[0].events) == ["a", "b", "c"]


def test_retain_resolves_alerts_of_removed_targets(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    h.read(90)
    h.engine.retain(lambda target, metric: target != "api", h.clock.advance(1))
    events = [e for n in flush(h.engine, h.db, h.clock()) for e in n.events]
    assert kinds(events) == [("resolved", "critical")]


# ---------------------------------------------------------------------------
# The delivery guarantee as a property: whatever the readings, restarts and
# timing, an alert is never announced twice at one severity without a resolve
# or a repeat_interval in between.

READINGS = st.sampled_from([10.0, 77.0, 90.0, math.nan, None])
STEPS = st.sampled_from([1.0, 15.0, 30.0, 60.0, 600.0, HOUR])
SPECS = st.builds(
    ThresholdSpec,
    warning=st.just(75.0),
    critical=st.sampled_from([80.0, None]),
    for_=st.sampled_from([0.0, 30.0, 120.0]),
    recover_for=st.sampled_from([0.0, 30.0, 120.0]),
)


RESTART = st.sampled_from([False, False, False, True])
"""A restart before one reading in four: each is a close and an open of the state
file, the costly part of an example; a few per script are as telling as many."""


# 60 scripts of up to 40 readings take under a second on a quiet machine; a restart or
# a slow disk makes an example's time vary, so no per-example deadline.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spec=SPECS,
    script=st.lists(st.tuples(READINGS, STEPS, RESTART), min_size=1, max_size=40),
    flap_limit=st.integers(1, 5),
)
def test_never_announced_twice_without_resolve_or_repeat(
    tmp_path_factory: object, spec: ThresholdSpec, script: list, flap_limit: int
) -> None:
    path = tmp_path_factory.mktemp("prop") / "s.db"  # type: ignore[attr-defined]
    rule = Rule.from_spec("cpu_percent", spec)
    h = Harness(path, routes=(EVERYONE, PAGER), flap_limit=flap_limit)
    announced: dict[tuple[str, str], tuple[str, float] | None] = {}
    for value, step, restart in script:
        if restart:
            h.restart()
        h.read(value, rule=rule, step=step)
        for route in ("all", "pager"):
            for notification in h.outbox(route):
                for event in notification.events:
                    key = (route, event.metric)
                    last = announced.get(key)
                    if event.kind == "resolved":
                        assert last is not None, "resolved without a firing"
                        announced[key] = None
                    elif event.kind == "repeat":
                        assert last is not None and last[0] == event.severity.label
                        assert notification.created - last[1] >= EVERYONE.repeat_interval
                        announced[key] = (last[0], notification.created)
                    else:
                        label = "flapping" if event.kind == "flapping" else event.severity.label
                        assert last is None or last[0] != label, (
                            f"{event.kind} {label} announced twice to {route}"
                        )
                        announced[key] = (label, notification.created)


# ---------------------------------------------------------------------------
# Fleet identity


def test_fingerprint_is_sha256_of_instance_target_metric_and_sorted_external_labels() -> None:
    identity = Identity.of("unraid", {"site": "eu-1", "env": "prod"})
    text = "unraid\0db\0up\0env=prod\0site=eu-1"
    assert identity.fingerprint("db", "up") == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert identity.labels == (("instance", "unraid"), ("env", "prod"), ("site", "eu-1"))
    others = {
        Identity.of("nas", {"site": "eu-1", "env": "prod"}).fingerprint("db", "up"),
        Identity.of("unraid", {"site": "eu-2", "env": "prod"}).fingerprint("db", "up"),
        Identity("unraid").fingerprint("db", "up"),
    }
    assert identity.fingerprint("db", "up") not in others and len(others) == 3


def test_events_carry_the_host_labels(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db")
    [fired] = h.read(None)
    assert (fired.fingerprint, fired.origin) == (HOST.fingerprint("api", "up"), HOST.labels)


def test_an_open_alert_keeps_the_identity_it_was_announced_with_until_it_resolves(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "s.db")
    [fired] = h.read(None)
    renamed = Identity.of("web-1.example", {"env": "prod"})
    h.engine = h.engine.successor(
        h.routes, flap_limit=4, labels=lambda _: (), redact=str, identity=renamed
    )
    assert h.read(None) == []  # the renamed host's alert is the same alert: nothing to say
    h.restart()
    [resolved] = h.read(50)
    assert resolved.kind == "resolved"
    assert (resolved.fingerprint, resolved.origin) == (fired.fingerprint, HOST.labels)

    h.engine = h.engine.successor(
        h.routes, flap_limit=4, labels=lambda _: (), redact=str, identity=renamed
    )
    [again] = h.read(None)
    assert again.kind == "firing"
    assert (again.fingerprint, again.origin) == (renamed.fingerprint("api", "up"), renamed.labels)
    # Stored under its new fingerprint only: a restart finds one alert, the new one.
    assert [r.fingerprint for r in h.db.alerts.load()] == [again.fingerprint]
    h.restart()
    [alert] = h.engine.alerts()
    assert (alert.fingerprint, alert.origin) == (again.fingerprint, renamed.labels)
