"""The history file: tiers, retention, the size cap, restarts, and a broken file."""

from __future__ import annotations

import math
import random
import tracemalloc
from pathlib import Path

import pytest

from vigild.storage import history_file
from vigild.storage.chunks import keep_bits
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import GRACE, RAW, TICK, Bucket, Retention, aggregate
from vigild.testing import FakeClock

START = 1_800_000_000.0  # a whole hour


def kept(value: float) -> float:
    """A raw value as the history keeps it."""
    return keep_bits([value], RAW.bits)[0]


def kept_time(seconds: float) -> float:
    return int(seconds * 1000) // TICK * TICK / 1000


def _feed(history: HistoryFile, clock: FakeClock, seconds: float, every: float = 30.0) -> list:
    """One target's latency and up every ``every`` seconds; the values as kept."""
    written = []
    rng = random.Random(7)
    end = clock() + seconds
    while clock() < end:
        now = clock()
        latency = rng.uniform(0.001, 0.2)
        up = 1.0 if rng.random() > 0.1 else 0.0
        history.append([("api", now, {"latency_seconds": latency, "up": up})])
        written.append((now, kept(latency), up))
        clock.advance(every)
    return written


def _reference(written: list, step: float, column: int) -> list[Bucket]:
    times = [int(t * 1000) for t, *_ in written]
    return aggregate(times, [row[column] for row in written], int(step * 1000))


def test_every_tier_holds_exactly_the_aggregates_of_the_raw_values(tmp_path: Path) -> None:
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    written = _feed(history, clock, 3 * 3600)
    clock.advance(3600)
    history.maintain()  # every hour compacted
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        raw = reader.values("api", "latency_seconds", START, now, now=now)
        assert raw.tier.name == "raw"
        assert raw.points == [(t, latency) for t, latency, _ in written]
        for step in (300.0, 3600.0):
            _, step_ms, buckets = reader.aggregates("api", "up", START, now, step, now=now)
            assert step_ms == step * 1000
            assert buckets == _reference(written, step, 2)
            # For up, the sum is how many probes found it up.
            assert sum(b.sum for b in buckets) == sum(up for *_, up in written)
        _, _, latency = reader.aggregates("api", "latency_seconds", START, now, 300.0, now=now)
        assert latency == _reference(written, 300.0, 1)


def test_the_hour_not_compacted_yet_reads_the_same(tmp_path: Path) -> None:
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    written = _feed(history, clock, 1800)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        _, _, buckets = reader.aggregates("api", "latency_seconds", START, now, 300.0, now=now)
    assert buckets == _reference(written, 300.0, 1)


def test_a_restart_keeps_everything_staged_and_compacted(tmp_path: Path) -> None:
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    first = _feed(history, clock, 5400)
    history.close()
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    second = _feed(history, clock, 5400)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        found = reader.values("api", "latency_seconds", START, now, now=now)
    assert found.points == [(t, latency) for t, latency, _ in first + second]


def test_whole_numbers_stay_exact_in_every_tier_and_noise_is_rounded(tmp_path: Path) -> None:
    """Counter increases (what SLO burn rates are made of) come back exactly from raw,
    five-minute and hourly data alike; a noisy latency is kept to RAW.bits, which is
    what keeps an hour of it small."""
    clock = FakeClock(EVENING)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    rng = random.Random(11)
    increases = []
    for _ in range(26 * 120):
        increase = float(rng.randrange(10**9))
        increases.append(increase)
        latency = rng.lognormvariate(math.log(0.004), 0.3)
        history.append([("api", clock(), {"requests": increase, "latency_seconds": latency})])
        clock.advance(30)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        raw = reader.values("api", "requests", EVENING, now, now=now)
        assert [v for _, v in raw.points] == increases
        for step in (300.0, 3600.0):
            _, _, buckets = reader.aggregates("api", "requests", EVENING, now, step, now=now)
            assert sum(b.sum for b in buckets) == sum(increases)
    hourly = Retention(raw=3600, five_minute=3600)  # older hours from the hourly tier
    with HistoryReader(tmp_path / "h.db", hourly) as reader:
        found = reader.values("api", "requests", EVENING, now - 3 * 3600, now=now)
        assert found.tier.name == "hourly"
        assert sum(b.sum for b in found.buckets) == sum(increases[: 23 * 120])
        block = reader.db.execute(
            "SELECT max(length(data)) FROM blocks JOIN series ON series.id = blocks.series "
            "WHERE tier = 0 AND metric = 'latency_seconds'"
        ).fetchone()[0]
    assert block < 3 * 120  # stored whole, an hour of it would take over 900 bytes


def test_nan_and_infinities_are_kept(tmp_path: Path) -> None:
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    for value in (math.nan, math.inf, -math.inf, 1.0):
        history.append([("api", clock(), {"x": value})])
        clock.advance(1800)
    history.close()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        found = reader.values("api", "x", START, clock(), now=clock())
    values = [v for _, v in found.points]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.0]


EVENING = START - START % 86400 + 20 * 3600
"""20:00 UTC: a day ends four hours later, and its raw values become buckets."""


def test_retention_drops_whole_blocks_and_reads_move_to_a_coarser_tier(tmp_path: Path) -> None:
    clock = FakeClock(EVENING)
    kept = Retention(raw=2 * 3600, five_minute=86400, hourly=10 * 86400)
    history = HistoryFile(tmp_path / "h.db", kept, clock=clock)
    _feed(history, clock, 6 * 3600, every=60)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", kept) as reader:
        assert reader.tier_for(EVENING, now).name == "five_minute"
        assert reader.tier_for(now - 3600, now).name == "raw"
        raw_starts = [
            row[0] for row in reader.db.execute("SELECT start FROM blocks WHERE tier = 0")
        ]
        found = reader.values("api", "up", EVENING, now, now=now)
    assert min(raw_starts) / 1000 >= now - 2 * 3600 - 3600
    assert found.tier.name == "five_minute"
    assert found.buckets[0].start == EVENING * 1000
    assert sum(b.count for b in found.buckets) == 6 * 60


def test_over_max_size_the_oldest_raw_data_goes_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(EVENING)
    path = tmp_path / "h.db"
    history = HistoryFile(path, Retention(), clock=clock)
    targets = [f"t{i}" for i in range(40)]
    rng = random.Random(1)
    for _ in range(6 * 120):
        history.append([(t, clock(), {"latency_seconds": rng.random()}) for t in targets])
        clock.advance(30)
    history.maintain()
    full = history._used()
    raw = history.db.execute("SELECT sum(length(data)) FROM blocks WHERE tier = 0").fetchone()[0]
    cap = full - raw // 2  # reached by evicting raw alone
    history.retention = Retention(max_size=cap)
    history.maintain()
    assert history._used() <= cap
    assert history.evicted["raw"] > 0
    assert history.evicted["five_minute"] == history.evicted["hourly"] == 0
    assert "history is over max_size" in capsys.readouterr().out
    history.close()
    now = clock()
    with HistoryReader(path, Retention()) as reader:
        # The evicted hours are read from the five-minute tier now.
        assert reader.tier_for(EVENING, now).name == "five_minute"
        assert reader.tier_for(now - 600, now).name == "raw"
        found = reader.values("t0", "latency_seconds", EVENING, now, now=now)
    assert sum(b.count for b in found.buckets) == 6 * 120


def test_an_unreadable_file_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not a database, " * 100)
    clock = FakeClock(START)
    history = HistoryFile(path, Retention(), clock=clock)
    history.append([("api", clock(), {"up": 1.0})])
    history.close()
    aside = list(tmp_path.glob("h.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "history file is unreadable" in capsys.readouterr().out


def test_the_hourly_tier_holds_each_day_rolled_up_and_the_current_day_too(tmp_path: Path) -> None:
    clock = FakeClock(EVENING)
    start = clock()
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    written = _feed(history, clock, 30 * 3600, every=120)
    history.close()
    now = clock()
    # Raw and five-minute only for the last hours: reads before that are hourly.
    kept = Retention(raw=3600, five_minute=3 * 3600)
    with HistoryReader(tmp_path / "h.db", kept) as reader:
        found = reader.values("api", "up", start, now, now=now)
        rolled = reader.db.execute("SELECT value FROM meta WHERE key = 'rolled'").fetchone()
    assert found.tier.name == "hourly"
    assert rolled is not None and int(rolled[0]) > start * 1000  # a day was rolled up
    assert found.buckets == _reference(written, 3600.0, 2)


def test_compaction_by_ranges_of_series_keeps_every_value_of_every_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 61 batches an hour: 32 series a pass, so the 450 series take 15 passes.
    monkeypatch.setattr(history_file, "COMPACT_VALUES", 2000)
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    targets = [f"t{i}" for i in range(150)]
    rng = random.Random(3)
    written: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
    for _ in range(3 * 60):
        # Each batch spreads over 40 s, so the batch at each hour's end crosses it.
        batch = []
        for target in rng.sample(targets, len(targets)):
            at = clock() + rng.uniform(0, 40)
            value = rng.random()
            batch.append((target, at, {"a": value, "b": 1.0, "c": -value}))
            written[target].append((kept_time(at), kept(value)))
        history.append(batch)
        clock.advance(60)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        blocks = reader.db.execute("SELECT count(*) FROM blocks WHERE tier = 0").fetchone()[0]
        assert blocks >= 2 * 3 * len(targets)  # two hours compacted
        for target in (targets[0], targets[len(targets) // 2], targets[-1]):
            found = reader.values(target, "a", START, now + 60, now=now)
            assert found.points == sorted(written[target])


def test_a_value_for_an_hour_already_compacted_is_counted_as_late(tmp_path: Path) -> None:
    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    _feed(history, clock, 2 * 3600)
    history.append([("api", START + 60, {"up": 1.0, "latency_seconds": 0.1})])
    assert history.late == 2
    history.close()


def test_one_read_of_several_targets_gives_what_aggregates_gives_per_target(
    tmp_path: Path,
) -> None:
    """Rolled-up days, compacted hours and staged values: the page's one read of its
    targets gives each target's buckets as ``aggregates`` does, tier for tier, and
    nothing of the targets not asked for."""
    from vigild.storage.history_tiers import FIVE_MINUTE, HOURLY

    clock = FakeClock(START)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    rng = random.Random(3)
    end = START + 26 * 3600 + 1234  # past a day's roll-up, into a staged hour
    while clock() < end:
        history.append(
            [
                (name, clock() + rng.uniform(0, 5), {"up": float(rng.random() > 0.2), "x": 1.0})
                for name in ("a", "b", "c")
            ]
        )
        clock.advance(60)
    history.close()
    now = clock()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        for tier in (FIVE_MINUTE, HOURLY):
            found: dict[tuple[str, str], list[Bucket]] = {}
            for target, metric, buckets in reader.of_targets(["a", "c"], tier, ["up"], START, now):
                found.setdefault((target, metric), []).extend(buckets)
            assert sorted(found) == [("a", "up"), ("c", "up")]
            for (target, _), buckets in found.items():
                step = tier.step / 1000
                _, _, expected = reader.aggregates(target, "up", START, now, step, now=now)
                assert sorted(buckets, key=lambda b: b.start) == expected


def test_compaction_holds_a_bounded_number_of_values_however_short_the_interval(
    tmp_path: Path,
) -> None:
    """An hour of 300 series every 3 s is 360,000 values (5.8 MB as arrays). Compacting
    it held them all at once, which the process kept: at 10,000 targets, 140 MB."""
    clock = FakeClock(START - START % 3600)
    history = HistoryFile(tmp_path / "h.db", Retention(), clock=clock)
    for _ in range(1200):
        history.append(
            (f"t{i}", clock(), {"up": 1.0, "status_code": 200.0, "latency_seconds": i / 1e3})
            for i in range(100)
        )
        clock.advance(3)
    clock.advance(GRACE / 1000 + 1)
    tracemalloc.start()
    try:
        history.append([("t0", clock(), {"up": 1.0})])  # the hour is over: compacted
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    history.close()
    with HistoryReader(tmp_path / "h.db", Retention()) as reader:
        blocks = reader.db.execute("SELECT count(*) FROM blocks WHERE tier = 0").fetchone()[0]
    assert blocks == 300
    assert peak < 2**20 * (history_file.COMPACT_VALUES * 16 / 2**20 + 1.5)
