"""The status page as a person reads it: units, uptime, local times, outages that show.
Rendered in-process from a real config, board, engine, history and state file."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from history_files import Recorded
from local_time import central_european_time

from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import flush
from vigild.alerting.silences import Silences
from vigild.assembly import load
from vigild.config import SilenceConfig
from vigild.daemon.history import BUCKET, SLOTS, WEEK, Points
from vigild.daemon.page import Snapshot, WeekSnapshot, refresh_seconds, render, render_week
from vigild.daemon.sparklines import up_strip, uptime
from vigild.model import Observation
from vigild.status import Board
from vigild.storage import Database
from vigild.testing import FakeClock
from vigild.thresholds import evaluate

NOW = 1_800_000_000.0 + 4 * 60  # 2027-01-15 08:04 UTC: 09:04 in Central Europe
FIRST = NOW - NOW % BUCKET - (SLOTS - 1) * BUCKET
"""The start of the oldest bucket the page shows."""
OUTAGE = NOW - 3 * 3600
"""Two probes 30 s apart fail here: a one-minute outage three hours ago."""


def _probe(name: str, at: float, latency: float) -> Observation:
    up = not OUTAGE <= at < OUTAGE + 60 or name != "api"
    metrics = {"latency_seconds": latency} if up else {}
    return Observation(name, at, up, None if up else "connection refused", metrics, duration=0.01)


def _render(tmp_path: Path, target: str | None = None) -> str:
    """A day of probes every 30 s: "api" fast with a one-minute outage, "slow" slow and
    healthy, "db" down now with its alert open and silenced for an hour. The status page,
    or with ``target`` that target's 7-day view."""
    config_file = tmp_path / "vigild.toml"
    config_file.write_text(
        """
[daemon]
interval = "30s"
state_path = "state.db"
instance = "nas"

[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/health"

[[targets]]
name = "slow"
type = "http"
url = "http://127.0.0.1:2/health"
thresholds.latency_seconds = { warning = 1, critical = 3 }

[[targets]]
name = "db"
type = "tcp"
host = "127.0.0.1"
port = 5432
"""
    )
    config = load(config_file)
    clock = FakeClock(FIRST)
    db = Database(tmp_path / "state.db")
    engine = Engine(
        db.alerts.load(), (), flap_limit=4, redact=config.redact, silences=Silences(db.silences)
    )
    board = Board()
    recorded = Recorded(tmp_path / "state-history.db", clock)
    latencies = {"api": 0.0123, "slow": 1.5, "db": 0.002}
    cycles: list[Observation] = []
    while clock() <= NOW:
        for name, latency in latencies.items():
            observation = _probe(name, clock(), latency)
            if name == "db" and clock() >= NOW - 120:
                observation = Observation(name, clock(), False, "connection refused")
            verdicts = evaluate(observation, config.rules[name])
            board.record(name, observation, verdicts)
            cycles.append(observation)
            engine.observe(name, verdicts, clock())
        flush(engine, db, clock())
        if len(cycles) >= 10 * len(latencies) or clock() + 30 > NOW:
            recorded.record(cycles)  # ten cycles at a time: quicker, and read the same
            cycles = []
        clock.advance(30)
    engine.policy.silences.add(
        SilenceConfig.model_validate({"matchers": {"target": "db"}, "duration": "1h"}), NOW
    )
    moment = board.moment(config, engine, NOW)
    if target is None:
        html = render(Snapshot(moment, recorded.page(), refresh_seconds(30)), config.secrets)
    else:
        found = render_week(
            WeekSnapshot(moment, target, recorded.reader, refresh_seconds(30)), config.secrets
        )
        assert found is not None
        html = found
    recorded.close()
    db.close()
    return html


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The day rendered once, in Central European time, for the tests that only read it."""
    with central_european_time():
        return _render(tmp_path_factory.mktemp("page"))


def _row(html: str, name: str) -> str:
    match = re.search(rf'<tr class="target [^"]*" data-target="{name}"[^>]*>.*?</tr>', html, re.S)
    assert match, name
    return match.group(0)


def _text(html: str) -> str:
    """What a person reads: the markup's text, one space between words."""
    return " ".join(unescape(re.sub(r"<title>.*?</title>|<[^>]+>", " ", html)).split())


def test_values_read_in_their_units_with_thresholds_beside_them(page: str) -> None:
    html = page
    assert "latency_seconds 12.3 ms" in _text(_row(html, "api"))
    slow = _text(_row(html, "slow"))
    assert "latency_seconds 1.5 s warn > 1 s · crit > 3 s" in slow
    assert "0.0123" not in html and "1.5 warn" not in slow  # no bare seconds anywhere
    # The value and its thresholds are one phrase: the page keeps it on one line.
    assert re.search(r'<span class="value sev-warning">.*?</small></span>', _row(html, "slow"))
    assert ".value, .reading, .levels, .nowrap { white-space: nowrap; }" in html


def test_uptime_of_the_last_day_per_target(page: str) -> None:
    html = page
    assert "<th>last 24 h: latency, up</th>" in html
    # Two of the ten probes of one bucket of 288 failed: 99.93 %, rounded down.
    assert '<span class="uptime">99.93 %</span>' in _row(html, "api")
    assert '<span class="uptime">100 %</span> up' in _row(html, "slow")
    assert "up 99.93 % of the last 24 h; last down at 06:00 CET" in _row(html, "api")


def test_uptime_of_the_last_seven_days_per_target(tmp_path: Path, local_zone: str) -> None:
    html = _render(tmp_path)
    # A day of history so far: the week's figure is the day's, said as the week's.
    assert "99.93 % up in 24 h · 99.93 % in 7 d" in _text(_row(html, "api"))
    assert "100 % up in 24 h · 100 % in 7 d" in _text(_row(html, "slow"))


def test_the_7_day_view_of_a_target(tmp_path: Path, local_zone: str) -> None:
    html = _render(tmp_path, "api")
    assert "<title>vigild on nas: api, last 7 days</title>" in html
    text = _text(html)
    assert '<span class="name">api</span>: last 7 days</h2>' in html
    assert "http · http://127.0.0.1:1/health" in text
    assert "99.93 % up in the last 7 days" in text
    assert "times in CET (UTC+01:00)" in text
    # Local days, today first; units on every latency; the outage at its local time.
    days = _text(html[html.index('<table class="days">') :])
    assert "Fri 15 Jan 99.81 % 12.3 ms 06:00 CET" in days
    assert "Thu 14 Jan 100 % 12.3 ms -" in days
    assert "Wed 13 Jan - - -" in days
    rects = re.findall(r'<rect class="(\w+)" x="(\d+)" y="0" width="(\d+)"', html)
    outage = int((OUTAGE - (NOW - NOW % BUCKET + BUCKET - WEEK)) // BUCKET)  # of 2016
    assert ("down", str(outage), "1") in rects and rects[-1][0] == "down"
    assert 'viewBox="0 0 2016 10"' in html
    start = round(NOW - NOW % BUCKET + BUCKET - WEEK)
    assert f"api/history?target=api&amp;metric=up&amp;from={start}&amp;step=5m" in html
    assert '<a href="./?target=api#target-api">all targets</a>' in html


def test_times_are_local_with_the_zone_named(tmp_path: Path, local_zone: str) -> None:
    html = _render(tmp_path)
    text = _text(html)
    assert "updated 09:04 CET" in text
    assert "times in CET (UTC+01:00)" in text
    alerts = _text(html[html.index('<table class="alerts">') : html.index("Active silences")])
    assert "db up 0 2m since 09:02 CET" in alerts
    assert "slow latency_seconds 1.5 s (threshold 1 s) 23h59m since 14 Jan 09:05 CET" in alerts
    silences = _text(html[html.index("Active silences") :])
    assert "target=db metric=* severity=* 10:04 CET" in silences
    assert not re.search(r"\d{4}-\d\d-\d\dT", html)  # no ISO UTC stamp left on the page


def test_a_one_minute_outage_is_a_red_mark_at_least_one_bucket_wide(page: str) -> None:
    html = page
    rects = re.findall(r'<rect class="(\w+)" x="(\d+)" y="0" width="(\d+)"', _row(html, "api"))
    outage = int((OUTAGE - FIRST) // BUCKET)
    # The down mark comes last, so its 2 px stroke (the page's style) lies over its
    # green neighbours whatever width the strip is drawn at.
    assert rects == [
        ("up", "0", str(outage)),
        ("up", str(outage + 1), str(SLOTS - outage - 1)),
        ("down", str(outage), "1"),
    ]
    assert "stroke-width: 2px;\n  vector-effect: non-scaling-stroke;" in html


def test_uptime_is_never_rounded_up_to_a_clean_record() -> None:
    up = [100] * SLOTS
    up[5] = 99
    points = Points([0.01] * SLOTS, [100] * SLOTS, up)
    assert uptime(points) == pytest.approx(1 - 0.01 / SLOTS)
    assert up_strip(points, NOW).uptime == "99.99 %"
    never = Points([0.0] * SLOTS, [0] * SLOTS, [0] * SLOTS)
    assert up_strip(never, NOW).uptime == ""
    assert uptime(never) is None


def test_every_value_is_escaped_by_the_template_even_in_attributes(tmp_path: Path) -> None:
    config_file = tmp_path / "vigild.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\ninstance = "a\\"b"\n\n'
        '[[targets]]\nname = "x\\" onmouseover=\\"alert(1)"\ntype = "tcp"\n'
        'host = "127.0.0.1"\nport = 1\n'
    )
    config = load(config_file)
    db = Database(tmp_path / "state.db")
    engine = Engine(db.alerts.load(), (), flap_limit=4, redact=config.redact)
    board = Board()
    history = Recorded(tmp_path / "h.db", FakeClock(NOW)).page()
    html = render(Snapshot(board.moment(config, engine, NOW), history, 30), config.secrets)
    db.close()
    assert 'data-target="x&#34; onmouseover=&#34;alert(1)"' in html
    assert 'onmouseover="' not in html and '<span id="instance">a&#34;b</span>' in html
