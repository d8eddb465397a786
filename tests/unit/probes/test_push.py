"""Push targets: their keys, and how a job's pings are judged against the schedule.

Time is the ``now`` the probe is given: the tests walk through days without waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from vigild.alerting.notifiers import text
from vigild.assembly import load
from vigild.config import ConfigError
from vigild.model import AlertEvent, Notification, Severity
from vigild.probes.base import ProbeContext, build_probe
from vigild.probes.push import MAX_OUTPUT, PushTarget, due_after, judge, keep_output
from vigild.storage import Database, Ping, PushRun
from vigild.thresholds import evaluate

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
"""A Thursday, noon UTC."""


def write(tmp_path: Path, body: str, listen: str = "127.0.0.1:9469") -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(
        f'[daemon]\nlisten = "{listen}"\nstate_path = "{tmp_path / "state.db"}"\n'
        f'[[targets]]\nname = "backup"\ntype = "push"\n{body}\n'
    )
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, body))
    return info.value.problems


def target(**keys: object) -> PushTarget:
    return PushTarget.model_validate({"name": "backup", **keys})


def at(run: PushRun | None, now: float, **keys: object) -> tuple[bool, str | None]:
    pushed = target(**keys) if keys else target(period="1d", grace="1h")
    seen = judge(pushed, run, watching_since=START, now=now, due_after=due_after(pushed))
    return seen.up, seen.error


# -- keys ----------------------------------------------------------------------


def test_a_push_target_loads_with_its_keys(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            'schedule = "0 3 * * *"\ntimezone = "Europe/Berlin"\ngrace = "30m"\n'
            'max_duration = "2h"\nping_key = "k-3x_9"',
        )
    )
    pushed = config.targets[0]
    assert isinstance(pushed, PushTarget)
    assert (pushed.grace, pushed.max_duration, pushed.key) == (30 * MINUTE, 2 * HOUR, "k-3x_9")
    # max_duration is the critical line of latency_seconds; the web defaults do not apply.
    latency = config.rules["backup"]["latency_seconds"]
    assert (latency.warning, latency.critical) == (None, 2 * HOUR)
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", 'targets[0] "backup": a push target needs schedule (cron) or period, not both'),
        (
            'schedule = "0 3 * * *"\nperiod = "1d"',
            'targets[0] "backup": a push target needs schedule',
        ),
        ('schedule = "0 25 * * *"', 'targets[0] "backup".schedule: not a cron expression'),
        ('schedule = "0 3 * *"', 'targets[0] "backup".schedule: not a cron expression'),
        (
            'period = "1d"\ntimezone = "Mars/Olympus"',
            'targets[0] "backup".timezone: unknown time zone',
        ),
        ('period = "1d"\ngrace = "forever"', 'targets[0] "backup".grace: '),
        ('period = "0s"', 'targets[0] "backup".period: '),
        (
            'period = "1d"\nping_key = "a/b"',
            'targets[0] "backup".ping_key: ping_key must be letters',
        ),
        (
            'period = "1d"\nthresholds.exit_code = { critical = 0 }',
            'targets[0] "backup".thresholds',
        ),
    ],
)
def test_a_broken_push_target_names_its_key(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, body)
    assert len(found) == 1, found
    assert expected in found[0], found


def test_listening_beyond_the_host_without_a_ping_key_is_a_warning(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'period = "1d"', listen="0.0.0.0:9469"))
    assert config.warnings == (
        "push target 'backup' has no ping_key and vigild listens on 0.0.0.0:9469: "
        "anyone who can reach it can ping /ping/backup",
    )
    keyed = load(write(tmp_path, 'period = "1d"\nping_key = "s3cr3t-key"', listen=":9469"))
    assert keyed.warnings == ()


# -- the schedule --------------------------------------------------------------


def test_a_cron_slot_is_read_in_the_targets_zone() -> None:
    next_slot = due_after(target(schedule="0 3 * * *", timezone="Europe/Berlin"))
    # 03:00 in Berlin is 02:00 UTC in December; a success at the slot itself waits for the next.
    assert next_slot(START) == datetime(2026, 12, 4, 2, 0, tzinfo=UTC).timestamp()
    slot = datetime(2026, 12, 4, 2, 0, tzinfo=UTC).timestamp()
    assert next_slot(slot) == slot + DAY


def test_never_pinged_is_late_once_a_slot_and_its_grace_have_passed() -> None:
    assert at(None, START + DAY + HOUR) == (True, None)
    up, error = at(None, START + DAY + HOUR + 1)
    assert not up and error is not None
    first, *rest = error.splitlines()
    assert first == "late: due 2026-12-04 12:00:00 UTC, no success within 1h grace"
    assert rest == ["due: 2026-12-04 12:00:00 UTC", "last success: never"]


def test_a_success_moves_the_due_time_and_reports_its_age() -> None:
    run = PushRun().after(Ping("success", START + DAY))
    pushed = target(period="1d", grace="1h")
    seen = judge(
        pushed, run, watching_since=START, now=START + DAY + 2 * HOUR, due_after=due_after(pushed)
    )
    assert seen.up
    assert seen.metrics["last_success_age_seconds"] == 2 * HOUR
    assert seen.metrics["exit_status"] == 0
    assert seen.no_data == {"latency_seconds"}  # no start ping: no duration, and no UNKNOWN
    assert not at(run, START + 2 * DAY + HOUR + 1)[0]


def test_a_failed_run_is_down_at_once_with_its_status_and_output() -> None:
    output = "".join(f"line {i}\n" for i in range(30)) + "rsync: No space left on device\n"
    run = (
        PushRun()
        .after(Ping("success", START))
        .after(Ping("fail", START + HOUR, exit_status=23, output=output))
    )
    up, error = at(run, START + HOUR + 1)
    assert not up and error is not None
    lines = error.splitlines()
    assert lines[0] == "failed with exit status 23 at 2026-12-03 13:00:00 UTC"
    assert lines[1:4] == [
        "due: 2026-12-04 12:00:00 UTC",
        "last success: 2026-12-03 12:00:00 UTC (1h ago)",
        "last output:",
    ]
    assert lines[4:] == [f"  line {i}" for i in range(21, 30)] + [
        "  rsync: No space left on device"
    ]
    # The next success resolves it.
    assert at(run.after(Ping("success", START + 2 * HOUR)), START + 2 * HOUR)[0]


def test_a_run_started_in_time_may_take_up_to_max_duration() -> None:
    keys = {"period": "1d", "grace": "10m", "max_duration": "2h"}
    run = PushRun().after(Ping("success", START)).after(Ping("start", START + DAY))
    assert at(run, START + DAY + HOUR, **keys) == (True, None)  # past due + grace, still running
    pushed = target(**keys)
    late = judge(
        pushed, run, watching_since=START, now=START + DAY + 3 * HOUR, due_after=due_after(pushed)
    )
    assert not late.up
    # Past max_duration a hung run shows its running time as latency_seconds.
    assert late.metrics["latency_seconds"] == 3 * HOUR


def test_start_to_success_over_max_duration_is_critical(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'period = "1d"\nmax_duration = "2h"'))
    run = (
        PushRun().after(Ping("start", START)).after(Ping("success", START + 2 * HOUR + 5 * MINUTE))
    )
    pushed = config.targets[0]
    assert isinstance(pushed, PushTarget)
    seen = judge(
        pushed, run, watching_since=START, now=START + 3 * HOUR, due_after=due_after(pushed)
    )
    assert seen.up and seen.metrics["latency_seconds"] == 2 * HOUR + 5 * MINUTE
    verdicts = {v.metric: v.severity for v in evaluate(seen, config.rules["backup"])}
    assert verdicts["latency_seconds"] is Severity.CRITICAL
    assert verdicts["up"] is Severity.OK


# -- a body, as kept -----------------------------------------------------------


def test_a_body_keeps_its_last_10_kib_redacted() -> None:
    secret = "hunter2-hunter2-hunter2"
    body = b"x" * (3 * MAX_OUTPUT) + f"\nlogin with {secret} failed\n".encode()
    kept = keep_output(body, frozenset({secret}))
    assert len(kept.encode()) <= MAX_OUTPUT
    assert kept.endswith("login with *** failed\n")
    assert secret not in kept


def test_a_secret_cut_in_half_by_the_10_kib_bound_is_masked_too() -> None:
    secret = "hunter2-hunter2-hunter2"
    body = secret.encode() + b"y" * (MAX_OUTPUT - 10)
    kept = keep_output(body, frozenset({secret}))
    assert secret[-10:] not in kept


# -- the probe on a real state file ---------------------------------------------


async def test_the_probe_reads_the_pings_the_state_file_holds(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        async with aiohttp.ClientSession() as session:
            context = ProbeContext(session, push_runs=db.push_runs)
            pushed = target(period="1h", grace="5m")
            probe = build_probe(pushed, context, 1.0)
            (first,) = await probe.observe(START)
            assert first.up
            state = probe.unsaved_state()
            assert state == {"watching_since": START}
            assert probe.unsaved_state() is None  # written once, not every cycle
            db.push_runs.record("backup", Ping("fail", START + 60, exit_status=2))
            (failed,) = await probe.observe(START + 61)
            assert not failed.up and failed.metrics["exit_status"] == 2
            # A restarted vigild (or the next --once) counts from when it first watched.
            again = build_probe(pushed, context, 1.0)
            again.restore_state(state)
            db.push_runs.record("backup", Ping("success", START + 120))
            assert (await again.observe(START + 120 + HOUR + 5 * MINUTE))[0].up
            assert not (await again.observe(START + 120 + HOUR + 5 * MINUTE + 1))[0].up
    finally:
        db.close()


# -- what a page says ------------------------------------------------------------


def test_a_page_says_when_it_was_due_the_last_success_and_the_last_output(
    tmp_path: Path,
) -> None:
    run = PushRun().after(Ping("success", START)).after(Ping("fail", START + HOUR, 3, "disk full"))
    _up, note = at(run, START + HOUR + 1)
    event = AlertEvent(
        fingerprint="f" * 16,
        target="backup",
        metric="up",
        kind="firing",
        severity=Severity.CRITICAL,
        previous=None,
        value=0.0,
        threshold=None,
        since=START + HOUR + 1,
        note=note,
    )
    message = Notification("ops", START + HOUR + 1, (event,))
    assert text.title(message, "nas") == (
        "backup is DOWN on nas: failed with exit status 3 at 2026-12-03 13:00:00 UTC"
    )
    body = text.body(message, markdown=False)
    assert "due: 2026-12-04 12:00:00 UTC" in body
    assert "last success: 2026-12-03 12:00:00 UTC (1h ago)" in body
    assert body.endswith("last output:\n  disk full")
