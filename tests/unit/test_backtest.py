"""Backtest: the stored history replayed through thresholds, the engine and the
pipeline's stages, on a real history file and real configs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cli_config import write_config

from vigild import assembly
from vigild.backtest import ANY_NOTIFIER, Unusable, backtest, report, stretches, text
from vigild.daemon.recorder import retention
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_reader import HistoryReader
from vigild.testing import FakeClock

START = 1_800_000_000.0  # a whole hour

TARGET = """
[alerting]
repeat_interval = "1h"

[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:9/health"
interval = "1s"
thresholds.latency_seconds = {{ warning = {warning}, critical = 2 }}

[[targets]]
name = "db"
type = "tcp"
host = "127.0.0.1"
port = 9
interval = "1s"
{extra}
"""

HOOK = """
[[notifiers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def _config(
    tmp_path: Path, *, warning: float = 0.5, extra: str = HOOK, name: str = "vigild.toml"
) -> assembly.Config:
    path = write_config(tmp_path, TARGET.format(warning=warning, extra=extra), name=name)
    return assembly.load(path, check_notifier_urls=False)


Reading = tuple[str, float, dict[str, float]]


def _record(config: assembly.Config, readings: Iterable[Reading], clock: FakeClock) -> Path:
    """Write ``readings`` to the config's history file as the daemon's writer does."""
    path = config.history.file(config.daemon.state_path)
    history = HistoryFile(path, retention(config.history), clock=clock)
    for reading in readings:
        clock.now = max(clock.now, reading[1])
        history.append([reading])
    history.close()
    return path


def _incident(seconds: int = 60) -> list[Reading]:
    """api up with 0.1 s latency, down from 10 s to 15 s, slow (0.8 s) from 30 s to 35 s;
    db up all along."""
    readings = []
    for i in range(seconds):
        t = START + i
        if 10 <= i < 15:
            readings.append(("api", t, {"up": 0.0}))
        else:
            latency = 0.8 if 30 <= i < 35 else 0.1
            readings.append(("api", t, {"up": 1.0, "latency_seconds": latency}))
        readings.append(("db", t, {"up": 1.0, "latency_seconds": 0.01}))
    return readings


def _listed(outcome: Any) -> list[tuple[float, str, str, str, str]]:
    return [(s.at - START, s.target, s.metric, s.severity, s.kind) for s in outcome.sent]


def _replay(config: assembly.Config, clock: FakeClock, **kwargs: Any) -> Any:
    path = config.history.file(config.daemon.state_path)
    with HistoryReader(path, retention(config.history)) as reader:
        return backtest(config, reader, START - 60, clock() + 1, now=clock() + 1, **kwargs)


def test_an_outage_and_a_latency_excursion_are_replayed_as_the_engine_would_tell_them(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    clock = FakeClock(START)
    _record(config, _incident(), clock)

    outcome = _replay(config, clock)

    assert _listed(outcome) == [
        (10, "api", "up", "critical", "firing"),
        (15, "api", "up", "critical", "resolved"),
        (30, "api", "latency_seconds", "warning", "firing"),
        (35, "api", "latency_seconds", "warning", "resolved"),
    ]
    assert {s.notifiers for s in outcome.sent} == {("hook",)}
    assert {s.tier for s in outcome.sent} == {"raw"}
    summary = outcome.summary()
    assert summary["pages"] == 1
    assert summary["by_kind"] == {"firing": 2, "resolved": 2}
    assert summary["longest_open_alert"]["seconds"] == 5.0
    assert summary["targets"] == {"api": {"notifications": 4, "pages": 1}}


def test_a_lowered_threshold_lists_the_extra_notifications(tmp_path: Path) -> None:
    config = _config(tmp_path, warning=0.05)
    clock = FakeClock(START)
    _record(config, _incident(), clock)

    # 0.1 s is over 0.05 s from the first reading on; a failed probe judges no
    # latency, so the outage leaves that alert open.
    assert _listed(_replay(config, clock)) == [
        (0, "api", "latency_seconds", "warning", "firing"),
        (10, "api", "up", "critical", "firing"),
        (15, "api", "up", "critical", "resolved"),
    ]


def test_a_gap_in_the_history_is_no_reading_and_no_outage(tmp_path: Path) -> None:
    config = _config(tmp_path, extra=HOOK + '\n[thresholds]\nup = { for = "3s" }\n')
    clock = FakeClock(START)
    readings = [r for r in _incident(120) if not (40 <= r[1] - START < 100)]
    readings = [r for r in readings if r[1] - START >= 20]  # after the outage
    _record(config, readings, clock)

    assert _listed(_replay(config, clock)) == [
        (30, "api", "latency_seconds", "warning", "firing"),
        (35, "api", "latency_seconds", "warning", "resolved"),
    ]


def test_for_counts_from_the_first_breaching_reading(tmp_path: Path) -> None:
    config = _config(tmp_path, extra=HOOK + '\n[thresholds]\nup = { for = "3s" }\n')
    clock = FakeClock(START)
    _record(config, _incident(), clock)

    listed = _listed(_replay(config, clock))

    assert listed[:2] == [
        (13, "api", "up", "critical", "firing"),
        (15, "api", "up", "critical", "resolved"),
    ]


def test_a_missing_metric_is_absent_not_unknown(tmp_path: Path) -> None:
    config = _config(tmp_path)
    clock = FakeClock(START)
    readings = [("api", START + i, {"up": 1.0}) for i in range(10)]
    _record(config, readings, clock)

    assert _listed(_replay(config, clock)) == []


def test_without_notifiers_the_defaults_of_one_are_replayed(tmp_path: Path) -> None:
    config = _config(tmp_path, extra="")
    clock = FakeClock(START)
    _record(config, _incident(), clock)

    outcome = _replay(config, clock)

    assert len(outcome.sent) == 4
    assert {s.notifiers for s in outcome.sent} == {(ANY_NOTIFIER,)}


def test_a_configured_silence_and_an_inhibiting_dependency_hold_notifications_back(
    tmp_path: Path,
) -> None:
    silenced = HOOK.replace(
        "[[notifiers]]",
        '[[silences]]\nmatchers = { metric = "latency_seconds" }\n'
        'starts = "2020-01-01T00:00:00Z"\nends = "2100-01-01T00:00:00Z"\n\n[[notifiers]]',
    )
    config = _config(tmp_path, extra=silenced)
    clock = FakeClock(START)
    readings = [("db", START + i, {"up": 0.0 if 5 <= i < 20 else 1.0}) for i in range(40)] + [
        r for r in _incident(40) if r[0] == "api"
    ]
    readings.sort(key=lambda r: r[1])
    _record(config, readings, clock)
    depends = config.path.read_text().replace(
        'interval = "1s"\nthresholds', 'interval = "1s"\ndepends_on = ["db"]\nthresholds'
    )
    config.path.write_text(depends)
    config = assembly.load(config.path, check_notifier_urls=False)

    listed = _listed(_replay(config, clock))

    # api's outage falls inside db's: held back, and over before db is back. Its
    # latency is silenced.
    assert listed == [
        (5, "db", "up", "critical", "firing"),
        (20, "db", "up", "critical", "resolved"),
    ]
    # Listing api alone still replays db, which holds api's outage back.
    assert _listed(_replay(config, clock, target="api")) == []
    assert len(_listed(_replay(config, clock, target="d*"))) == 2


def test_beyond_raw_retention_the_five_minute_buckets_are_replayed_and_say_so(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, extra=HOOK + '\n[history]\nraw = "1h"\n')
    clock = FakeClock(START)
    readings = [
        ("api", t, {"up": 1.0, "latency_seconds": 0.8})
        if 400 <= t - START < 405 and n == "api"
        else (n, t, metrics)
        for n, t, metrics in _incident(900)
    ]
    _record(config, readings, clock)
    later = START + 2 * 3600  # the incident is older than raw retention now
    clock.now = later
    HistoryFile(
        config.history.file(config.daemon.state_path), retention(config.history), clock=clock
    ).maintain()

    path = config.history.file(config.daemon.state_path)
    with HistoryReader(path, retention(config.history)) as reader:
        outcome = backtest(config, reader, START, later, now=later)

    assert [s.to_json()["tier"] for s in outcome.stretches] == ["five_minute", "raw"]
    # One reading per bucket: down when a probe in it failed (the first: that hides its
    # slow spell), else its worst latency (the second).
    assert sorted(_listed(outcome)) == [
        (0, "api", "up", "critical", "firing"),
        (300, "api", "latency_seconds", "warning", "firing"),
        (300, "api", "up", "critical", "resolved"),
        (600, "api", "latency_seconds", "warning", "resolved"),
    ]
    assert {s.tier for s in outcome.sent} == {"five_minute"}


def test_report_puts_the_running_config_beside_the_new_one(tmp_path: Path) -> None:
    running = _config(tmp_path)
    new = _config(tmp_path, warning=0.05, name="new.toml")
    clock = FakeClock(START)
    _record(running, _incident(), clock)
    now = clock() + 1

    document = json.loads(report(new, running, since="5m", target=None, output="json", now=now))

    assert document["config"].endswith("new.toml")
    assert document["running"]["config"].endswith("vigild.toml")
    assert document["notifications"][0]["at"] == START
    assert document["notifications"][0]["metric"] == "latency_seconds"
    assert len(document["running"]["notifications"]) == 4
    assert set(document["notifications"][0]) == {
        "at",
        "target",
        "metric",
        "severity",
        "kind",
        "notifiers",
        "tier",
    }
    assert set(document["summary"]) == {
        "notifications",
        "by_kind",
        "pages",
        "pages_per_day",
        "repeats",
        "longest_open_alert",
        "open_at_end",
        "targets",
    }

    shown = report(new, running, since="5m", target="api", output="text", now=now)
    header = next(line for line in shown.splitlines() if "running:" in line)
    assert "new.toml" in header
    assert "api up critical firing" in shown
    assert "pages per day" in shown


def test_a_running_config_with_no_history_is_left_out_and_no_history_is_said(
    tmp_path: Path,
) -> None:
    new = _config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    running = _config(elsewhere)  # e.g. ./thresholds.toml of a checkout
    clock = FakeClock(START)
    now = clock() + 1

    with pytest.raises(Unusable, match=r"no history at .*elsewhere") as raised:
        report(new, running, since="5m", target=None, output="json", now=now)
    assert raised.value.code == 1

    _record(new, _incident(), clock)
    now = clock() + 1
    document = json.loads(report(new, running, since="5m", target=None, output="json", now=now))
    assert "running" not in document
    assert len(document["notifications"]) == 4

    with pytest.raises(Unusable, match="--since") as raised:
        report(new, None, since="a week", target=None, output="json", now=now)
    assert raised.value.code == 2


def test_text_lists_each_notification_with_its_time(tmp_path: Path) -> None:
    config = _config(tmp_path)
    clock = FakeClock(START)
    _record(config, _incident(), clock)

    shown = text([_replay(config, clock)])

    lines = shown.splitlines()
    assert any(
        line.startswith("2027-01-15 08:00:10 UTC") and "api up critical firing" in line
        for line in lines
    ), shown


def test_stretches_change_tier_on_the_coarser_tiers_bucket_edges(tmp_path: Path) -> None:
    config = _config(tmp_path, extra=HOOK + '\n[history]\nraw = "1h"\nfive_minute = "2h"\n')
    clock = FakeClock(START)
    _record(config, _incident(10), clock)
    now = START + 5 * 3600 + 123.0

    with HistoryReader(
        config.history.file(config.daemon.state_path), retention(config.history)
    ) as reader:
        found = stretches(reader, START, now, now)

    assert [(s.tier.name, s.start - START, s.end - START) for s in found] == [
        ("hourly", 0, 3 * 3600),
        ("five_minute", 3 * 3600, 4 * 3600),
        ("raw", 4 * 3600, now - START),
    ]


def test_escalation_deescalation_and_flapping_are_listed_by_kind(tmp_path: Path) -> None:
    config = _config(tmp_path)
    clock = FakeClock(START)
    latencies = [0.1, 0.8, 3.0, 0.8, 0.1]
    readings: list[Reading] = [
        ("api", START + i, {"up": 1.0, "latency_seconds": v}) for i, v in enumerate(latencies)
    ]
    # Then db goes down and up again, again and again.
    readings += [("db", START + 10 + i, {"up": float(i % 2)}) for i in range(12)]
    _record(config, readings, clock)

    listed = _listed(_replay(config, clock))

    assert listed[:4] == [
        (1, "api", "latency_seconds", "warning", "firing"),
        (2, "api", "latency_seconds", "critical", "escalated"),
        (3, "api", "latency_seconds", "warning", "deescalated"),
        (4, "api", "latency_seconds", "critical", "resolved"),  # the highest it reached
    ]
    db = [kind for _, target, _, _, kind in listed if target == "db"]
    # flap_limit is 4 fires an hour: the fifth is told as flapping, then it is quiet.
    assert db == ["firing", "resolved"] * 4 + ["flapping"]
