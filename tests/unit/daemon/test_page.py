"""The status page's history rings and HTML, with a fake clock and a real state file."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from vigild.alerting.engine import Engine
from vigild.alerting.pipeline import flush
from vigild.alerting.silences import Silences
from vigild.assembly import load
from vigild.config import SilenceConfig
from vigild.daemon.history import BUCKET, SLOTS, History, Point, Series, points_of
from vigild.daemon.page import latency_line, refresh_seconds, render, snapshot, up_strip
from vigild.events import CycleCompleted, ProbeResult
from vigild.model import Observation
from vigild.status import Board
from vigild.storage import Database
from vigild.testing import FakeClock
from vigild.thresholds import evaluate

START = 1_800_000_000.0  # on a bucket boundary: 1.8e9 / 300 is whole


def reading(target: str, at: float, *, up: bool = True, latency: float = 0.05) -> Observation:
    metrics = {"latency_seconds": latency} if up else {}
    return Observation(target, at, up, None if up else "connection refused", metrics, duration=0.1)


class CountingStore:
    """The history repository's two calls, recorded."""

    def __init__(self) -> None:
        self.saves: list[tuple[list[tuple[str, int, float, int, int]], int]] = []

    def load(self, since_bucket: int) -> list[tuple[str, int, float, int, int]]:
        return []

    def save(self, rows: Any, prune_before: int) -> None:
        self.saves.append((list(rows), prune_before))


# -- history --------------------------------------------------------------


def test_a_bucket_keeps_the_slowest_reading_and_the_fraction_up() -> None:
    clock = FakeClock(START)
    history = History(None, clock=clock)
    for at, up, latency in [(0, True, 0.02), (30, True, 0.4), (60, False, 0), (90, True, 0.1)]:
        history.probe_result(result(reading("api", START + at, up=up, latency=latency)))
    points = history.points("api", START + 100)
    assert len(points) == SLOTS
    assert points[:-1] == [None] * (SLOTS - 1)
    newest = points[-1]
    assert newest is not None
    assert abs((newest.latency or 0) - 0.4) < 1e-6 and newest.up == 0.75


def test_memory_is_fixed_however_long_it_runs() -> None:
    clock = FakeClock(START)
    history = History(None, clock=clock)
    series_size = None
    for step in range(3 * 24 * 120):  # three days at 30 s
        history.probe_result(result(reading("api", START + 30 * step, up=step % 7 != 0)))
        if step == 10:
            series_size = _bytes(history.series["api"])
    series = history.series["api"]
    assert _bytes(series) == series_size
    assert len(series.latency) == len(series.probes) == len(series.up) == SLOTS
    assert _bytes(series) <= 2048  # per target: 10,000 targets stay around 20 MB
    points = history.points("api", START + 30 * (3 * 24 * 120 - 1))
    assert all(p is not None for p in points)  # the ring is full, and only 24 h deep


def _bytes(series: Series) -> int:
    arrays = (series.latency, series.probes, series.up)
    return sum(a.buffer_info()[1] * a.itemsize for a in arrays)


def test_buckets_skipped_while_nothing_was_probed_are_gaps() -> None:
    history = History(None, clock=FakeClock(START))
    history.probe_result(result(reading("api", START)))
    history.probe_result(result(reading("api", START + 10 * BUCKET)))
    points = history.points("api", START + 10 * BUCKET)
    assert [p is not None for p in points[-11:]] == [True] + [False] * 9 + [True]
    # A day later, the ring has wrapped: the old readings are gone, not shown as new.
    assert history.points("api", START + SLOTS * BUCKET + 11 * BUCKET) == [None] * SLOTS


def test_a_busy_bucket_saturates_without_losing_the_fraction() -> None:
    history = History(None, clock=FakeClock(START))
    for i in range(1000):  # more than a byte counts
        history.probe_result(result(reading("api", START + i * 0.25, up=i % 2 == 0)))
    newest = history.points("api", START + 299)[-1]
    assert newest is not None and 0.45 <= newest.up <= 0.55


def test_the_store_is_written_once_per_bucket_not_per_probe() -> None:
    store = CountingStore()
    clock = FakeClock(START)
    history = History(store, clock=clock).load()
    for step in range(10):  # ten cycles inside the first bucket
        now = START + 20 * step
        history.probe_result(result(reading("a", now)))
        history.probe_result(result(reading("b", now, up=False)))
        history.cycle_completed(completed(now))
    assert store.saves == []
    history.probe_result(result(reading("a", START + BUCKET + 1)))
    history.cycle_completed(completed(START + BUCKET + 1))
    assert len(store.saves) == 1
    rows, prune_before = store.saves[0]
    first = int(START // BUCKET)
    assert sorted((t, b, n, up) for t, b, _, n, up in rows) == [
        ("a", first, 10, 10),
        ("b", first, 10, 0),
    ]
    assert prune_before == first + 1 - SLOTS + 1


def test_a_restart_keeps_the_graph_and_adds_to_the_open_bucket(tmp_path: Path) -> None:
    clock = FakeClock(START)
    db = Database(tmp_path / "state.db")
    history = History(db.history, clock=clock).load()
    for step in range(22):  # 22 cycles at 30 s: two buckets and two readings of a third
        history.probe_result(result(reading("api", clock(), up=step != 3, latency=0.01 * step)))
        history.cycle_completed(completed(clock()))
        clock.advance(30)
    before = history.points("api", clock())
    history.close()
    db.close()

    db = Database(tmp_path / "state.db")
    restored = History(db.history, clock=clock).load()
    assert restored.points("api", clock()) == before
    restored.probe_result(result(reading("api", clock(), up=False)))
    newest = restored.points("api", clock())[-1]
    assert newest is not None and newest.up == 2 / 3  # two stored readings up, one new down
    restored.close()
    db.close()


def test_rows_older_than_a_day_are_pruned_and_never_loaded(tmp_path: Path) -> None:
    clock = FakeClock(START)
    db = Database(tmp_path / "state.db")
    history = History(db.history, clock=clock).load()
    history.probe_result(result(reading("old", clock())))
    history.close()
    clock.advance(SLOTS * BUCKET + BUCKET)
    history.probe_result(result(reading("new", clock())))
    history.cycle_completed(completed(clock()))
    assert db.history.load(0) == []  # "old" is past 24 h; "new" is in the open bucket
    history.close()
    assert {row[0] for row in db.history.load(0)} == {"new"}

    history = History(db.history, clock=clock).load()
    assert history.points("old", clock()) == [None] * SLOTS
    db.close()


def test_a_ring_copy_keeps_what_was_there_when_it_was_taken() -> None:
    """The status page copies each ring on the event loop and builds its points in a
    thread: readings that land meanwhile change the next page, not this one."""
    clock = FakeClock(START)
    history = History(None, clock=clock)
    history.probe_result(result(reading("api", START, latency=0.25)))
    ring = history.ring("api")
    history.probe_result(result(reading("api", START + 30, up=False)))
    history.probe_result(result(reading("api", START + BUCKET, latency=0.5)))

    assert points_of(ring, START + BUCKET) == [None] * (SLOTS - 2) + [Point(0.25, 1.0), None]
    assert history.points("api", START + BUCKET)[-2:] == [Point(0.25, 0.5), Point(0.5, 1.0)]
    assert points_of(history.ring("nobody"), START) == [None] * SLOTS


def test_a_reload_forgets_targets_no_longer_configured() -> None:
    history = History(None, clock=FakeClock(START))
    history.probe_result(result(reading("kept", START)))
    history.probe_result(result(reading("gone", START)))
    history.retain(lambda name: name if name == "kept" else None)
    assert list(history.series) == ["kept"]


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> tuple[str, dict[str, Any]]:
    """A real config, board and engine: one healthy, one slow, one down, one not probed."""
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
    history = History(None, clock=clock)
    for name, observation in [
        ("web", reading("web", clock(), latency=0.02)),
        ("slow", reading("slow", clock(), latency=1.5)),
        ("<b>db</b>", reading("<b>db</b>", clock(), up=False)),
    ]:
        verdicts = evaluate(observation, config.rules[name])
        board.record(name, observation, verdicts)
        history.probe_result(result(observation))
        engine.observe(name, verdicts, clock())
    flush(engine, db, clock())
    clock.advance(125)
    document = board.document(config, engine, clock())
    snap = snapshot(document, board, history, refresh=refresh_seconds(30), now=clock())
    html = render(snap, config.secrets)
    db.close()
    return html, document


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
    assert "down: connection refused" in _row(html, "&lt;b&gt;db&lt;/b&gt;")
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


def test_sparklines_draw_gaps_and_merge_runs() -> None:
    points: list[Point | None] = [None] * SLOTS
    for x in range(100, 150):
        points[x] = Point(0.1 + x / 1000, 1.0)
    for x in range(160, 170):
        points[x] = Point(None, 0.0)
    points[200] = Point(0.3, 0.5)
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
    empty = latency_line([None] * SLOTS)
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
    document = board.document(config, engine, START)

    report = text_report(document)
    assert "  box/evil\\x1b[2J\\rname  DOWN  gone\\x07 away" in report
    assert not any(c in report for c in "\x1b\r\x07")

    snap = snapshot(document, board, History(None, clock=FakeClock(START)), refresh=30, now=START)
    html = render(snap, config.secrets)
    assert 'data-target="box/evil\\x1b[2J\\rname"' in html
    assert not any(c in html for c in "\x1b\r\x07")

    metrics = Metrics(lambda: config.secrets, state_file=db.file)
    severities = engine.severities(name, verdicts)
    metrics.probe_result(ProbeResult("box", "container", observation, verdicts, severities))
    exposition = metrics.exposition()().decode()
    assert 'vigild_probe_success{target="box/evil\\\\x1b[2J\\\\rname",type="container"} 0' in (
        exposition
    )
    assert not any(c in exposition for c in "\x1b\r\x07")
    db.close()


def result(observation: Observation, kind: str = "http") -> ProbeResult:
    return ProbeResult(observation.target, kind, observation, [], [])


def completed(now: float) -> CycleCompleted:
    return CycleCompleted(30.0, now, 0.0, 0.1, recorded=True)
