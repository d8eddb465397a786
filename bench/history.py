"""The metrics history's budget: bytes on disk, CPU per observation, RSS added.

Synthetic observations of N http-like targets (``up``, ``latency_seconds`` with
full-precision noise as a real probe measures it, ``status_code``), one every
30 s each, at accelerated time, through the real writer (``HistoryWriter``: the
loop-side append, the per-cycle hand-over, the writer thread, staging, hourly
compaction, retention). A run covers ``--hours`` (default 50: every tier gets
blocks; 250 fills a ten-day hourly block); the 14 d and 180 d tiers are
extrapolated from the measured bytes per bucket of full blocks, with the
file's own overhead (SQLite pages and index over the blocks' bytes) applied,
and the staged hour added as it is.

CPU per observation is the process's CPU over the run (all threads) less the
same loop without history (making the observations), divided by the
observations. It also compares the block encoding with Gorilla's bit counts
(Prometheus's chunk encoding) on the same raw values.

    .venv/bin/python bench/history.py --targets 100
    .venv/bin/python bench/history.py --targets 100 --hours 250
    .venv/bin/python bench/history.py --targets 10000 --hours 3
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sqlite3
import struct
import tempfile
import time
from pathlib import Path

from vigild.config_sections import HistoryConfig
from vigild.daemon.recorder import HistoryWriter
from vigild.events import CycleCompleted, ProbeResult
from vigild.model import Observation
from vigild.storage.chunks import decode, encode, keep_bits
from vigild.storage.history_file import HistoryFile
from vigild.storage.history_tiers import (
    HOURLY,
    RAW,
    TICK,
    TIERS,
    Retention,
    encode_buckets,
    tier_buckets,
)
from vigild.testing import FakeClock

INTERVAL = 30.0
START = 1_800_000_000.0


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def observations(targets: list[str], now: float, rng: random.Random) -> list[Observation]:
    # Every observation of a cycle carries the cycle's tick, which is late by a few ms.
    now += rng.expovariate(1 / 0.003)
    found = []
    for name in targets:
        up = rng.random() > 0.001
        # A probe's latency is a difference of perf_counter readings: every bit is noise.
        latency = rng.lognormvariate(math.log(0.004), 0.3) if up else 0.0
        found.append(
            Observation(
                name,
                now,
                up,
                metrics={"latency_seconds": latency, "status_code": 200.0 if up else 503.0},
            )
        )
    return found


def run(targets: int, hours: float, directory: Path, with_history: bool) -> tuple[float, int, int]:
    """CPU seconds, observations, RSS growth in bytes."""
    names = [f"target-{i:05d}" for i in range(targets)]
    rng = random.Random(14)
    clock = FakeClock(START)
    before = rss()
    writer = None
    if with_history:
        writer = HistoryWriter(directory / "history.db", HistoryConfig(), clock=clock)
    cycles = int(hours * 3600 / INTERVAL)
    started = time.process_time()
    count = 0
    peak = 0
    for _ in range(cycles):
        batch = observations(names, clock(), rng)
        count += len(batch)
        if writer is not None:
            for observation in batch:
                writer.probe_result(ProbeResult(observation.target, "http", observation, [], []))
            # Accelerated time must not outrun the writer: a real cycle is 30 s apart, and
            # the writer is done with one long before the next.
            while writer.backlog > 0:
                time.sleep(0.001)
            writer.cycle_completed(CycleCompleted(INTERVAL, clock(), 0.0, 0.0, True))
        clock.advance(INTERVAL)
        peak = max(peak, rss())
    if writer is not None:
        writer.close(timeout=600)
        assert not any(writer.dropped.values()), writer.dropped
    return time.process_time() - started, count, peak - before


def gorilla_bits(times: list[int], values: list[float]) -> int:
    """Bits Prometheus's XOR chunk spends on these samples (its dod buckets, ms)."""
    bits = 64 + 64  # first timestamp and value
    previous_delta = None
    for a, b in itertools.pairwise(times):
        delta = b - a
        if previous_delta is None:
            bits += 14
        else:
            dod = delta - previous_delta
            if dod == 0:
                bits += 1
            elif -8191 <= dod <= 8192:
                bits += 2 + 14
            elif -65535 <= dod <= 65536:
                bits += 3 + 17
            elif -524287 <= dod <= 524288:
                bits += 4 + 20
            else:
                bits += 4 + 64
        previous_delta = delta
    raw = [struct.unpack(">Q", struct.pack(">d", v))[0] for v in values]
    leading, trailing = 65, 65
    for a, b in itertools.pairwise(raw):
        x = a ^ b
        if x == 0:
            bits += 1
            continue
        lead = 64 - x.bit_length()
        trail = (x & -x).bit_length() - 1
        if leading <= lead and trailing <= trail and leading != 65:
            bits += 2 + (64 - leading - trailing)
        else:
            leading, trailing = min(lead, 31), trail
            bits += 2 + 5 + 6 + (64 - leading - trailing)
    return bits


def report(directory: Path, targets: int, hours: float) -> None:
    """Bytes per value of each tier from its full blocks (a block still filling pays its
    header over fewer values), times the default retention; the staged hour apart, as
    it does not grow with retention; SQLite's own overhead measured on the rest."""
    path = directory / "history.db"
    db = sqlite3.connect(path)
    file_bytes = path.stat().st_size
    staged_bytes = db.execute(
        "SELECT coalesce(sum(length(series) + length(times) + length(vals)), 0) FROM staged"
    ).fetchone()[0]
    blobs = 0
    per_value = {}
    for tier in TIERS:
        full = tier.span // (tier.step or int(INTERVAL * 1000))
        sizes = []
        for (data,) in db.execute("SELECT data FROM blocks WHERE tier = ?", (tier.number,)):
            blobs += len(data)
            sizes.append((len(data), len(decode(data)[0])))
        whole = [(size, count) for size, count in sizes if count == full] or sizes
        per_value[tier.name] = (
            len(sizes),
            len(whole),
            sum(size for size, _ in whole) / max(1, sum(count for _, count in whole)),
        )
    overhead = (file_bytes - staged_bytes) / blobs if blobs else math.nan
    print(f"targets {targets}, {hours:g} h of 30 s cycles, 3 metrics a target")
    print(
        f"file {file_bytes / 2**20:.1f} MiB: blocks {blobs / 2**20:.1f} MiB, "
        f"staged hour {staged_bytes / 2**20:.1f} MiB; "
        f"(file - staged) / blocks (SQLite pages, index) = {overhead:.2f}"
    )
    retention = {"raw": 48 * 3600, "five_minute": 14 * 86400, "hourly": 180 * 86400}
    total = 0.0
    for tier in TIERS:
        blocks, whole, cost = per_value[tier.name]
        per_series = retention[tier.name] * 1000 / (tier.step or INTERVAL * 1000)
        extrapolated = cost * per_series * 3 * targets
        total += extrapolated
        print(
            f"  {tier.name:12} {blocks:7} blocks ({whole} full) {cost:6.2f} "
            f"B/{'sample' if tier.step == 0 else 'bucket'} "
            f"-> at full retention {extrapolated / 2**20:9.1f} MiB"
        )
    at_full = total * overhead + staged_bytes
    print(f"default retention, extrapolated: {at_full / 2**20:.1f} MiB")
    # Gorilla on the same raw values, for the encoding's size.
    ours = gorilla = 0
    for (data,) in db.execute("SELECT data FROM blocks WHERE tier = 0 LIMIT 3000"):
        times, (values,) = decode(data)
        ours += len(data)
        gorilla += gorilla_bits(times, values) / 8
    print(f"raw blocks: ours {ours / 2**10:.0f} KiB, Gorilla bits {gorilla / 2**10:.0f} KiB")
    db.close()


def full_file(path: Path, targets: int) -> int:
    """Bytes of a history file holding the default retention of ``targets`` targets, its
    blocks made as the writer makes them (the values' tiers, rounding and encoding), but
    written straight in: 180 days of cycles through the writer would take days."""
    retention = Retention()
    rng = random.Random(14)
    history = HistoryFile(path, retention, clock=FakeClock(START))
    now = int(START * 1000)
    now -= now % HOURLY.span

    def ticks(start: int, end: int) -> list[int]:
        late = [int(rng.expovariate(1 / 3)) for _ in range(start, end, int(INTERVAL * 1000))]
        return [t + d - d % TICK for t, d in zip(range(start, end, 30_000), late, strict=True)]

    def latency(count: int) -> list[float]:
        return [rng.lognormvariate(math.log(0.004), 0.3) for _ in range(count)]

    spans = {tier: range(now - int(retention.of(tier) * 1000), now, tier.span) for tier in TIERS}
    for i in range(targets):
        for metric in ("up", "status_code", "latency_seconds"):
            series = history._new_series(f"target-{i:05d}", metric)
            for tier, starts in spans.items():
                for start in starts:
                    times = ticks(start, start + tier.span)
                    if metric == "latency_seconds":
                        values = latency(len(times))
                    else:
                        values = [1.0 if metric == "up" else 200.0] * len(times)
                    if tier is RAW:
                        data = encode(times, [keep_bits(values, RAW.bits)])
                    else:
                        data = encode_buckets(
                            tier_buckets(times, keep_bits(values, RAW.bits), tier)
                        )
                    history._put(series, tier, start, data)
    history.close()
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--hours", type=float, default=50.0)
    parser.add_argument(
        "--full",
        action="store_true",
        help="instead: the bytes of a file holding the default retention of --targets targets",
    )
    args = parser.parse_args()
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            size = full_file(Path(tmp) / "history.db", args.targets)
        per_target = size / args.targets
        print(
            f"default retention of {args.targets} targets: {size / 2**20:.1f} MiB, "
            f"{per_target / 1024:.1f} KiB a target: at 100 targets {per_target * 100 / 2**20:.1f} "
            f"MiB, at 10,000 {per_target * 10_000 / 2**30:.2f} GiB, plus the staged hour"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        base_cpu, count, _ = run(args.targets, args.hours, Path(tmp), with_history=False)
        cpu, count, grown = run(args.targets, args.hours, Path(tmp), with_history=True)
        print(
            f"CPU per observation: {(cpu - base_cpu) / count * 1e6:.1f} us added by history "
            f"({cpu / count * 1e6:.1f} with, {base_cpu / count * 1e6:.1f} without); "
            f"RSS grew {grown / 2**20:.1f} MiB"
        )
        report(Path(tmp), args.targets, args.hours)


if __name__ == "__main__":
    main()
