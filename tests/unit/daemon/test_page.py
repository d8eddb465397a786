"""The status page's view of the history file, and its HTML, with a fake clock and real files."""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from history_files import Recorded

from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import flush
from vigild.alerting.silences import Silences
from vigild.assembly import load
from vigild.config import SilenceConfig
from vigild.daemon.history import BUCKET, SLOTS, WEEK, PageHistory, Points, Series
from vigild.daemon.page import Snapshot, WeekSnapshot, refresh_seconds, render, render_week
from vigild.daemon.sparklines import latency_line, up_strip, uptime
from vigild.events import ProbeResult
from vigild.model import Observation
from vigild.status import Board
from vigild.storage import Database
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import Retention
from vigild.testing import FakeClock
from vigild.thresholds import evaluate

START = 1_800_000_000.0  # on a bucket boundary: 1.8e9 / 300 is whole
NONE = Points([0.0] * SLOTS, [0] * SLOTS, [0] * SLOTS)
"""A day without a probe."""


def reading(target: str, at: float, *, up: bool = True, latency: float = 0.05) -> Observation:
    metrics = {"latency_seconds": latency} if up else {}
    return Observation(target, at, up, None if up else "connection refused", metrics, duration=0.1)


def _bytes(series: Series) -> int:
    arrays = (series.latency, series.probes, series.up, series.hour_probes, series.hour_up)
    return sum(a.buffer_info()[1] * a.itemsize for a in arrays)


# -- history --------------------------------------------------------------


def test_a_bucket_keeps_the_slowest_reading_and_the_fraction_up(tmp_path: Path) -> None:
    recorded = Recorded(tmp_path / "h.db", FakeClock(START))
    for at, up, latency in [(0, True, 0.02), (30, True, 0.4), (60, False, 0), (90, True, 0.1)]:
        recorded.record([reading("api", START + at, up=up, latency=latency)])
    [recent] = recorded.page().recent(["api"], START + 100)
    points = recent.points
    assert len(points.latency) == len(points.probes) == len(points.up) == SLOTS
    assert points.probes[:-1] == [0] * (SLOTS - 1)
    # Buckets keep 7 bits of mantissa: within 1 part in 256.
    assert points.latency[-1] == pytest.approx(0.4, rel=2**-8) and (
        points.up[-1],
        points.probes[-1],
    ) == (3, 4)
    assert recent.week == (3, 4)
    assert uptime(points) == 0.75


def test_read_piece_by_piece_it_shows_what_one_read_of_the_file_shows(tmp_path: Path) -> None:
    """The page's cache, refreshed bucket by bucket over 30 hours (across a day's roll-up
    and every hour's compaction), holds what a restarted daemon reads in one go."""
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    kept = recorded.page()
    names = ["api", "db"]
    for step in range(30 * 60):
        now = clock()
        recorded.record(
            [reading("api", now, up=step % 97 != 0, latency=0.01 + step % 13 / 100)]
            + ([reading("db", now, up=step % 3 != 0)] if step % 5 else [])
        )
        if step % 7 == 0:
            kept.recent(names, now + 1)
        clock.advance(60)
    recorded.close()
    now = clock()
    assert kept.recent(names, now) == recorded.page().recent(names, now)
    api = kept.recent(names, now)[0]
    assert all(api.points.probes[:-1])  # the open bucket has no probe yet
    assert api.week == (30 * 60 - 19, 30 * 60)


def test_memory_is_fixed_however_long_it_runs(tmp_path: Path) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    page = recorded.page()
    sizes = set()
    for step in range(2 * 24 * 12):  # two days at five minutes
        recorded.record([reading("api", clock(), up=step % 7 != 0)])
        if step % 12 == 11:
            page.recent(["api"], clock())
            sizes.add(_bytes(page.series["api"]))
        clock.advance(BUCKET)
    assert len(sizes) == 1
    assert sizes.pop() <= 3700  # per target: 10,000 targets stay under 40 MB
    [recent] = page.recent(["api"], clock())
    assert all(recent.points.probes[:-1])  # full, and only 24 h deep


def test_buckets_skipped_while_nothing_was_probed_are_gaps(tmp_path: Path) -> None:
    recorded = Recorded(tmp_path / "h.db", FakeClock(START))
    recorded.record([reading("api", START)])
    recorded.record([reading("api", START + 10 * BUCKET)])
    page = recorded.page()
    [recent] = page.recent(["api"], START + 10 * BUCKET)
    assert [n > 0 for n in recent.points.probes[-11:]] == [True] + [False] * 9 + [True]
    # A day later, the ring has wrapped: the old readings are gone, not shown as new; the
    # week still counts them, until it too is over.
    [later] = page.recent(["api"], START + SLOTS * BUCKET + 11 * BUCKET)
    assert later.points == NONE and later.week == (2, 2)
    [gone] = page.recent(["api"], START + WEEK + 11 * BUCKET)
    assert gone.week == (0, 0)


def test_settled_buckets_are_kept_and_only_the_last_two_are_read_again(tmp_path: Path) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    for _ in range(30):
        recorded.record([reading("api", clock(), up=clock() < START + 3 * BUCKET)])
        clock.advance(60)
    recorded.close()
    page = recorded.page()
    before = page.recent(["api"], clock())[0].points
    # Six buckets of five probes each, and the new bucket, empty.
    assert before.up[-7:] == [5, 5, 5, 0, 0, 0, 0]
    assert before.probes[-7:] == [5, 5, 5, 5, 5, 5, 0]
    # Without the file (moved aside by the writer), the settled buckets still show.
    (tmp_path / "h.db").rename(tmp_path / "aside.db")
    after = page.recent(["api"], clock())[0].points
    assert after.probes[:-2] == before.probes[:-2] and after.probes[-2:] == [0, 0]


def test_the_week_counts_the_probes_of_the_last_seven_days(tmp_path: Path) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    page = recorded.page()
    per_day = 24 * 6
    for step in range(8 * per_day):  # every ten minutes
        # Down all of the first day, which is past the window by the end; twenty minutes
        # on the sixth.
        down = step < per_day or step in (5 * per_day + 10, 5 * per_day + 11)
        recorded.record([reading("api", clock(), up=not down)])
        if step % per_day == 0:
            page.recent(["api"], clock())
        clock.advance(600)
    [recent] = page.recent(["api"], clock())
    up, probes = recent.week
    assert probes - up == 2
    assert 7 * per_day - 6 <= probes <= 7 * per_day + 6
    assert recent == recorded.page().recent(["api"], clock())[0]


def test_a_page_not_looked_at_for_days_still_counts_the_whole_week(tmp_path: Path) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    page = recorded.page()
    for day in range(4):
        for _ in range(4):
            recorded.record([reading("api", clock(), up=day != 1)])
            clock.advance(600)
        if day == 0:
            page.recent(["api"], clock())
        clock.advance(86400 - 2400)
    [recent] = page.recent(["api"], clock())
    assert recent.week == (12, 16)


def test_a_latency_that_is_not_a_number_leaves_a_gap(tmp_path: Path) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    for at, latency in [(0, math.inf), (300, math.nan), (600, 0.2), (900, math.inf)]:
        recorded.record([reading("api", START + at, latency=latency)])
    [recent] = recorded.page().recent(["api"], START + 900)
    assert recent.points.latency[-4:] == [0.0, 0.0, pytest.approx(0.2, rel=2**-8), 0.0]
    line = latency_line(recent.points)
    assert "peak 200 ms" in line.title and line.path.count("M") == 1


def test_a_missing_file_shows_no_history() -> None:
    [recent] = PageHistory(Path("/nonexistent/h.db"), Retention()).recent(["api"], START)
    assert recent.points == NONE and recent.week == (0, 0)


def test_only_the_targets_shown_last_are_kept_and_one_shown_again_is_read_again(
    tmp_path: Path,
) -> None:
    clock = FakeClock(START)
    recorded = Recorded(tmp_path / "h.db", clock)
    for _ in range(3):
        recorded.record([reading(name, clock(), up=name != "b") for name in "abc"])
        clock.advance(BUCKET)
    page = PageHistory(tmp_path / "h.db", Retention(), capacity=2)
    first = page.recent(["a", "b"], clock())
    assert list(page.series) == ["a", "b"]
    page.recent(["c"], clock())
    assert list(page.series) == ["b", "c"]  # the least recently shown is dropped
    recorded.record([reading(name, clock()) for name in "abc"])
    clock.advance(BUCKET)
    again = page.recent(["a", "b"], clock())
    assert list(page.series) == ["a", "b"]
    assert again == recorded.page().recent(["a", "b"], clock())
    assert [r.week for r in first] == [(3, 3), (0, 3)]
    assert [r.week for r in again] == [(4, 4), (1, 4)]


# -- page -----------------------------------------------------------------


class Balanced(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "path", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def _page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock, target: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A real config, board and engine: one healthy, one slow, one down, one not probed.
    The status page, or with ``target`` that target's 7-day view."""
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        """
[daemon]
interval = "30s"
state_path = "state.db"
instance = "<nas>"
external_labels = { env = "prod" }
replica = "b"

[[targets]]
name = "web"
type = "http"
url = "http://127.0.0.1:1/health?key=${KEY}"

[[targets]]
name = "slow"
type = "http"
url = "http://127.0.0.1:2/health"
thresholds.latency_seconds = { warning = 1, critical = 3 }

[[targets]]
name = "<b>db</b>"
type = "tcp"
host = "127.0.0.1"
port = 5432

[[targets]]
name = "later"
type = "host"
"""
    )
    monkeypatch.setenv("KEY", "s3cr3t-key")
    config = load(config_file)
    db = Database(tmp_path / "state.db")
    engine = Engine(
        db.alerts.load(), (), flap_limit=4, redact=config.redact, silences=Silences(db.silences)
    )
    engine.policy.silences.add(
        SilenceConfig.model_validate(
            {"matchers": {"target": "<b>db</b>"}, "duration": "1h", "comment": "moving racks"}
        ),
        clock(),
    )
    board = Board()
    recorded = Recorded(tmp_path / "h.db", clock)
    for name, observation in [
        ("web", reading("web", clock(), latency=0.02)),
        ("slow", reading("slow", clock(), latency=1.5)),
        ("<b>db</b>", reading("<b>db</b>", clock(), up=False)),
    ]:
        verdicts = evaluate(observation, config.rules[name])
        board.record(name, observation, verdicts)
        recorded.record([observation])
        engine.observe(name, verdicts, clock())
    flush(engine, db, clock())
    clock.advance(125)
    moment = board.moment(config, engine, clock())
    if target is None:
        html = render(Snapshot(moment, recorded.page(), refresh_seconds(30)), config.secrets)
    else:
        found = render_week(WeekSnapshot(moment, target, recorded.reader, 30), config.secrets)
        assert found is not None
        html = found
    recorded.close()
    db.close()
    return html, moment.document()


def _row(html: str, name: str) -> str:
    match = re.search(
        rf'<tr class="target [^"]*" data-target="{re.escape(name)}"[^>]*>.*?</tr>', html, re.S
    )
    assert match, name
    return match.group(0)


def test_page_shows_every_target_in_its_state_colour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html, document = _page(tmp_path, monkeypatch, FakeClock(START))
    assert [t["name"] for t in document["targets"]] == ["web", "slow", "<b>db</b>", "later"]
    assert 'class="target state-ok" data-target="web"' in html
    assert 'class="target state-warning" data-target="slow"' in html
    assert 'class="target state-critical" data-target="&lt;b&gt;db&lt;/b&gt;"' in html
    assert 'class="target state-none" data-target="later"' in html
    assert '<span class="badge state-critical" id="worst">' in html
    assert '<meta http-equiv="refresh" content="30">' in html
    # Which of a fleet's pages this is, escaped like everything else.
    assert '<h1>vigild on <span id="instance">&lt;nas&gt;</span></h1>' in html
    assert '<span class="muted" id="identity">env=prod · replica b</span>' in html
    assert "<title>vigild on &lt;nas&gt;: CRITICAL</title>" in html
    slow = _row(html, "slow")
    assert 'id="target-slow"' in slow  # where a message's status page link lands
    assert (
        '<span class="reading">latency_seconds <b>1.5 s</b></span> '
        '<small class="levels">warn &gt; 1 s · crit &gt; 3 s</small>'
    ) in slow
    db = _row(html, "&lt;b&gt;db&lt;/b&gt;")
    assert "down: connection refused" in db
    # Each sparkline links to the target's 7-day view, its name escaped for the URL.
    assert '<a class="week" href="history?target=%3Cb%3Edb%3C/b%3E"' in db
    assert (
        '<span class="uptime">0.00 %</span> up in 24 h · <span class="uptime week">0.00 %</span>'
        " in 7 d"
    ) in db
    assert "no probes in 24 h" in _row(html, "later")
    assert "not probed yet" in _row(html, "later")


def test_page_lists_open_alerts_with_their_age_and_silences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html, _ = _page(tmp_path, monkeypatch, FakeClock(START))
    alerts = html[html.index('<table class="alerts">') : html.index("Active silences")]
    assert alerts.count('<tr class="alert') == 2
    assert '<span class="nowrap">2m5s</span>' in alerts  # opened 125 s before the page was rendered
    assert re.search(
        r'&lt;b&gt;db&lt;/b&gt;</td>\n<td data-label="metric">up</td>.*silenced by [0-9a-f]+',
        alerts,
        re.S,
    )
    silences = html[html.index("Active silences") :]
    assert "target=&lt;b&gt;db&lt;/b&gt;" in silences and "moving racks" in silences


def test_page_escapes_everything_and_redacts_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html, _ = _page(tmp_path, monkeypatch, FakeClock(START))
    assert "<b>db</b>" not in html
    assert "s3cr3t-key" not in html and "key=***" in html
    parser = Balanced()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    assert "<script" not in html and "http://" not in html.split("</style>")[0]


def test_the_7_day_view_escapes_everything_and_redacts_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "web").mkdir()
    html, _ = _page(tmp_path / "db", monkeypatch, FakeClock(START), "<b>db</b>")
    assert "<b>db</b>" not in html
    assert '<span class="name">&lt;b&gt;db&lt;/b&gt;</span>: last 7 days' in html
    assert '<a href="./?target=%3Cb%3Edb%3C/b%3E#target-%3Cb%3Edb%3C/b%3E">' in html
    assert "down: connection refused" in html
    parser = Balanced()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    assert "<script" not in html and "http://" not in html.split("</style>")[0]
    web, _ = _page(tmp_path / "web", monkeypatch, FakeClock(START), "web")
    assert "s3cr3t-key" not in web and "key=***" in web
    assert "100 %</span> up in the last 7 days" in web


def test_the_7_day_view_is_only_of_a_listed_target(tmp_path: Path) -> None:
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\n[[targets]]\nname = "api"\ntype = "host"\n'
    )
    config = load(config_file)
    engine = Engine((), (), flap_limit=4, redact=config.redact)
    moment = Board().moment(config, engine, START)
    assert render_week(WeekSnapshot(moment, "other", _no_reader, 30), frozenset()) is None
    assert render_week(WeekSnapshot(moment, "api", _no_reader, 30), frozenset()) is not None


def _no_reader() -> HistoryReader:
    raise sqlite3.OperationalError("no file yet")


def test_sparklines_draw_gaps_and_merge_runs() -> None:
    latency, probes, up = [0.0] * SLOTS, [0] * SLOTS, [0] * SLOTS
    for x in range(100, 150):
        latency[x], probes[x], up[x] = 0.1 + x / 1000, 10, 10
    for x in range(160, 170):
        probes[x] = 10
    latency[200], probes[200], up[200] = 0.3, 10, 5
    points = Points(latency, probes, up)
    line = latency_line(points)
    assert "peak 300 ms" in line.title
    assert line.path.count("M") == 2  # two stretches with latency, a gap between
    assert "M200 1.0h1" in line.path  # the lone peak still shows
    strip = up_strip(points, START)
    # A partly down bucket is down: drawn red, after the up runs so its mark lies on top.
    assert re.findall(r'<rect class="(\w+)" x="(\d+)" y="0" width="(\d+)"', strip.rects) == [
        ("up", "100", "50"),
        ("down", "160", "10"),
        ("down", "200", "1"),
    ]
    empty = latency_line(NONE)
    assert empty.path == "" and "no latency readings" in empty.title


def test_refresh_follows_the_interval_within_bounds() -> None:
    assert refresh_seconds(30) == 30
    assert refresh_seconds(0.2) == 5
    assert refresh_seconds(3600) == 300


# -- control characters -----------------------------------------------------


def test_control_characters_in_names_are_escaped_in_report_page_and_metrics(
    tmp_path: Path,
) -> None:
    """A container's name comes from its engine, not from the config: whatever the
    config accepts, a name with control characters can reach every output."""
    from vigild.daemon.metrics import Metrics
    from vigild.status import text_report

    config_file = tmp_path / "vigild.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\n\n'
        '[[targets]]\nname = "box"\ntype = "container"\ncontainer_labels = { app = "web" }\n'
    )
    config = load(config_file)
    name = "box/evil\x1b[2J\rname"
    observation = Observation(name, START, False, "gone\x07 away", duration=0.1)
    verdicts = evaluate(observation, config.rules["box"])
    db = Database(tmp_path / "state.db")
    engine = Engine(db.alerts.load(), (), flap_limit=4, redact=config.redact)
    board = Board()
    board.record("box", observation, verdicts)
    engine.observe(name, verdicts, START)
    flush(engine, db, START)
    moment = board.moment(config, engine, START)
    report = text_report(moment.document())
    assert "  box/evil\\x1b[2J\\rname  DOWN  gone\\x07 away" in report
    assert not any(c in report for c in "\x1b\r\x07")

    page = PageHistory(tmp_path / "h.db", Retention())
    html = render(Snapshot(moment, page, 30), config.secrets)
    assert 'data-target="box/evil\\x1b[2J\\rname"' in html
    assert not any(c in html for c in "\x1b\r\x07")

    metrics = Metrics(lambda: config.secrets, state_file=db.file)
    severities = engine.severities(name, verdicts)
    metrics.probe_result(ProbeResult("box", "container", observation, verdicts, severities))
    exposition = b"".join(metrics.exposition()).decode()
    assert 'vigild_probe_success{target="box/evil\\\\x1b[2J\\\\rname",type="container"} 0' in (
        exposition
    )
    assert not any(c in exposition for c in "\x1b\r\x07")
    db.close()


def test_a_discovered_target_names_its_container_in_the_status_and_on_the_page(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\n'
        '[[targets]]\nname = "web/http"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n'
        '[[targets]]\nname = "db"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5432\n'
    )
    config = replace(load(config_file), sources={"web/http": "shop-web-1"})
    clock = FakeClock(START)
    engine = Engine((), (), flap_limit=4, redact=config.redact)
    moment = Board().moment(config, engine, clock())
    web, db = moment.document()["targets"]
    assert web["discovered"] == {"container": "shop-web-1"}
    assert "discovered" not in db
    snap = Snapshot(moment, PageHistory(tmp_path / "h.db", Retention()), 30)
    row = _row(render(snap, config.secrets), "web/http")
    assert "http · http://127.0.0.1:1/ · from container shop-web-1</small>" in row
