"""The status page at scale: how long ``GET /`` takes with N targets, and how much of it
holds the event loop.

Builds a history file as a week of N http targets probed every 30 s leaves it
(six days rolled up into five-minute and hourly blocks, today's finished hours
as raw blocks, the current half hour staged), a config and a board of N
targets, then times the page's parts as the daemon runs them: ``Board.moment``
(on the loop: the budget is 50 ms) and ``render`` (in a worker thread: the status
document, the history of the targets shown, the HTML) the first time (the cache
reads the week), again within the same five minutes, after the next five minutes
ended, and of another page (whose targets' history is read for the first time).

    .venv/bin/python bench/status_page.py --targets 10000 --hour-of-day 12.5
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from vigild.alerting.engine import Engine
from vigild.assembly import load
from vigild.daemon.history import PageHistory
from vigild.daemon.page import Snapshot, render
from vigild.model import Observation
from vigild.status import Board
from vigild.storage.chunks import encode
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_tiers import FIVE_MINUTE, HOURLY, Retention
from vigild.testing import FakeClock
from vigild.thresholds import evaluate

DAY = 86400.0
INTERVAL = 30.0
T = TypeVar("T")


def _metrics(i: int, at: float) -> dict[str, float]:
    up = 0.0 if (i + int(at // INTERVAL)) % 997 == 0 else 1.0
    return {"up": up, "latency_seconds": 0.01 + (i % 50) / 1000 + (at % 7) / 1000}


def build_history(path: Path, targets: int, now: float) -> None:
    clock = FakeClock(now)
    history = HistoryFile(path, Retention(), clock=clock)
    today = now - now % DAY
    hour = now - now % 3600
    db = history.db
    db.execute("BEGIN")
    series = [
        (history._new_series(f"t{i}", "up"), history._new_series(f"t{i}", "latency_seconds"))
        for i in range(targets)
    ]
    rows: list[tuple[int, int, int, bytes]] = []
    # Six rolled days: one five-minute block per day, hourly blocks of ten days. The same
    # bytes for every series: decoding costs the same, encoding 10,000 times would not.
    hourly: dict[int, list[list[float]]] = {}
    for day in range(6, 0, -1):
        start = today - day * DAY
        times = [int((start + k * 300) * 1000) for k in range(288)]
        columns = [[0.0] * 288, [0.05] * 288, [9.9] * 288, [10.0] * 288, [1.0] * 288]
        five = encode(times, columns)
        for up, latency in series:
            rows.append((up, FIVE_MINUTE.number, int(start * 1000), five))
            rows.append((latency, FIVE_MINUTE.number, int(start * 1000), five))
        for h in range(24):
            at = int((start + h * 3600) * 1000)
            block = at - at % HOURLY.span
            hourly.setdefault(block, []).append([at, 0.0, 0.05, 118.0, 120.0, 1.0])
    for block, buckets in hourly.items():
        data = encode([int(b[0]) for b in buckets], [[b[k] for b in buckets] for k in range(1, 6)])
        for up, latency in series:
            rows.append((up, HOURLY.number, block, data))
            rows.append((latency, HOURLY.number, block, data))
    # Today's finished hours: raw blocks of 120 values each.
    at = today
    while at < hour:
        times = [int((at + k * INTERVAL) * 1000) for k in range(120)]
        ups = encode(times, [[1.0] * 119 + [0.0]])
        latencies = encode(times, [[0.01 + k / 10000 for k in range(120)]])
        for up, latency in series:
            rows.append((up, 0, int(at * 1000), ups))
            rows.append((latency, 0, int(at * 1000), latencies))
        at += 3600
    db.executemany("INSERT INTO blocks (series, tier, start, data) VALUES (?, ?, ?, ?)", rows)
    history._set_meta("rolled", int(today * 1000))
    history._set_meta("compacted", int(hour * 1000))
    db.execute("COMMIT")
    history._compacted = int(hour * 1000)
    # This hour so far: staged, one batch per cycle, as the writer stages them.
    at = hour
    while at < now:
        history.append([(f"t{i}", at, _metrics(i, at)) for i in range(targets)])
        at += INTERVAL
    history.close()


def build_board(directory: Path, targets: int, now: float) -> tuple[object, Board, Engine]:
    config_file = directory / "vigild.toml"
    config_file.write_text(
        '[daemon]\ninterval = "30s"\nstate_path = "state.db"\n\n'
        + "".join(
            f'[[targets]]\nname = "t{i}"\ntype = "http"\nurl = "http://127.0.0.1:1/{i}"\n\n'
            for i in range(targets)
        )
    )
    config = load(config_file)
    board = Board()
    engine = Engine({}, (), flap_limit=4, redact=config.redact)
    for i in range(targets):
        metrics = _metrics(i, now)
        observation = Observation(f"t{i}", now, metrics["up"] == 1.0, None, metrics)
        verdicts = evaluate(observation, config.rules[f"t{i}"])
        board.record(f"t{i}", observation, verdicts)
        engine.observe(f"t{i}", verdicts, now)
    return config, board, engine


def timed(what: str, run: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = run()
    print(f"{what:<56} {(time.perf_counter() - started) * 1000:9.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--hour-of-day", type=float, default=12.5, help="UTC; raw hours today")
    args = parser.parse_args()
    now = math.floor(time.time() / DAY) * DAY + args.hour_of_day * 3600 + 7
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "state-history.db"
        started = time.perf_counter()
        build_history(path, args.targets, now)
        size = path.stat().st_size
        took = time.perf_counter() - started
        print(f"history file: {size / 2**20:.0f} MB, built in {took:.0f} s")
        config, board, engine = build_board(directory, args.targets, now)
        page = PageHistory(path, Retention())

        for label, at, number in (
            ("first render (reads the week)", now, 1),
            ("again, same five minutes", now + 20, 1),
            ("after the next five minutes ended", now + 320, 1),
            ("page 2, first time", now + 330, 2),
        ):
            moment = timed(
                f"{label}: moment (loop)",
                partial(board.moment, config, engine, at),  # type: ignore[arg-type]
            )
            html = timed(
                f"{label}: render (thread)",
                partial(render, Snapshot(moment, page, 30, number), frozenset()),
            )
            print(f"{label}: {len(html.encode()) / 1000:.0f} kB")
        with sqlite3.connect(path) as db:
            print("blocks:", db.execute("SELECT count(*) FROM blocks").fetchone()[0])


if __name__ == "__main__":
    main()
