"""The budget benchmark: vigild against a bare aiohttp loop, same requests, same pace.

Starts ``target_server.py``, then runs each side in turn against it, each as
its own process: ``bare`` (bare_aiohttp.py, burst), optionally ``paced``
(bare_aiohttp.py --paced) and ``vigild`` (``vigild run`` on a generated
config of N http targets). A side warms up for one interval, then is
measured over ``--intervals`` whole intervals: CPU (user+sys of the whole
process, psutil), probes (the target server's hit counter), RSS (last, and
the kernel's peak VmHWM), and when each cycle's first and last request
reached the server. For vigild it then times ``/metrics`` twice: between
cycles, and during one.

    .venv/bin/python bench/run.py                              # 10,000 targets at 30 s
    .venv/bin/python bench/run.py --targets 1000 --interval 5  # quick
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VIGILD = Path(sys.executable).with_name("vigild")
SHUTDOWN_WAIT = 30.0


@dataclass
class Result:
    side: str
    probes: int
    cpu_s: float
    wall_s: float
    rss_mb: float
    peak_rss_mb: float
    server_core_pct: float
    lateness_ms: list[float]
    cycle_s: list[float]
    notes: list[str] = field(default_factory=list)

    @property
    def us_per_probe(self) -> float:
        return self.cpu_s / max(self.probes, 1) * 1e6

    @property
    def core_pct(self) -> float:
        return self.cpu_s / self.wall_s * 100


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: with few samples p99 is simply the worst one."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)] if ordered else math.nan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def vigild_env() -> dict[str, str]:
    """The environment for vigild: this checkout first, no VIGILD_* settings, and .pyc files
    written and used as on any install (PYTHONDONTWRITEBYTECODE would make every start
    compile vigild from source)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VIGILD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: a child never outlives a driver that was killed.
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    # The driver starts no threads, so preexec_fn is safe here.
    return subprocess.Popen(cmd, text=True, preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(SHUTDOWN_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return math.nan


def sleep_until(at: float, proc: subprocess.Popen[str]) -> None:
    while (left := at - time.time()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} during the run")
        time.sleep(min(left, 0.5))


class TargetServer:
    """target_server.py in its own processes; ``marks`` are the paths whose arrivals it times."""

    def __init__(self, marks: Iterable[int], workers: int, max_seconds: float, log: Path) -> None:
        port = free_port()
        cmd = [sys.executable, str(BENCH / "target_server.py"), "--port", str(port)]
        cmd += ["--workers", str(workers), "--marks", ",".join(str(n) for n in marks)]
        cmd += ["--max-seconds", str(max_seconds)]
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=log.open("w"))
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()  # printed once every worker listens
        if not ready:
            raise RuntimeError(f"target server did not start; see {log}")
        self.base = f"http://127.0.0.1:{port}"
        self._stats = f"http://127.0.0.1:{json.loads(ready)['control_port']}/stats"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self._stats, timeout=10) as resp:
            stats: dict[str, Any] = json.load(resp)
        return stats

    def cpu_seconds(self) -> float:
        server = psutil.Process(self.proc.pid)
        return sum(cpu_seconds(p) for p in [server, *server.children()])

    def cycles(
        self, t0: float, interval: float, start: float, end: float
    ) -> tuple[list[float], list[float]]:
        """(lateness ms, duration s) of each cycle that started in [start, end)."""
        firsts: list[float] = []
        lasts: list[float] = []
        for path, at in self.stats()["marks"]:
            (firsts if path == 0 else lasts).append(at)
        lateness: list[float] = []
        durations: list[float] = []
        for first in (m for m in firsts if start <= m < end):
            tick = t0 + round((first - t0) / interval) * interval
            lateness.append((first - tick) * 1000)
            ends = [m for m in lasts if first <= m < tick + interval]
            if ends:
                durations.append(max(ends) - first)
        return lateness, durations


def measure(
    side: str, proc: subprocess.Popen[str], t0: float, server: TargetServer, args: Any
) -> Result:
    """Warm up for one interval, then measure whole intervals, edges in the quiet before a tick."""
    interval = args.interval
    guard = min(1.0, 0.05 * interval)
    start = t0 + interval - guard
    end = start + args.intervals * interval
    child = psutil.Process(proc.pid)
    sleep_until(start, proc)
    cpu0, server0, hits0, wall0 = (
        cpu_seconds(child),
        server.cpu_seconds(),
        server.stats()["hits"],
        time.time(),
    )
    sleep_until(end, proc)
    cpu1, server1, hits1, wall1 = (
        cpu_seconds(child),
        server.cpu_seconds(),
        server.stats()["hits"],
        time.time(),
    )
    lateness, durations = server.cycles(t0, interval, start, end)
    return Result(
        side=side,
        probes=hits1 - hits0,
        cpu_s=cpu1 - cpu0,
        wall_s=wall1 - wall0,
        rss_mb=child.memory_info().rss / 2**20,
        peak_rss_mb=peak_rss_mb(proc.pid),
        server_core_pct=(server1 - server0) / (wall1 - wall0) * 100,
        lateness_ms=lateness,
        cycle_s=durations,
    )


def run_bare(server: TargetServer, args: Any, paced: bool) -> Result:
    # It stops by itself just after the window: no tick beyond it, totals printed.
    duration = (1 + args.intervals) * args.interval - min(0.5, 0.02 * args.interval)
    cmd = [sys.executable, str(BENCH / "bare_aiohttp.py"), "--base", server.base]
    cmd += ["--targets", str(args.targets), "--interval", str(args.interval)]
    cmd += ["--duration", str(duration), *(["--paced"] if paced else [])]
    proc = spawn(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        t0 = json.loads(proc.stdout.readline())["t0"]
        result = measure("paced" if paced else "bare", proc, t0, server, args)
        totals = json.loads(proc.stdout.readline() or "{}")
        result.notes.append(f"requests failed: {totals.get('failed', '?')}")
        return result
    finally:
        stop(proc)


def vigild_config(server: TargetServer, args: Any, workdir: Path, listen: str) -> Path:
    lines = [
        "[daemon]",
        f'interval = "{args.interval:g}s"',
        f'listen = "{listen}"',
        f'state_path = "{workdir / "state.db"}"',
        'log_format = "json"',
        "concurrency = 100",
    ]
    for n in range(args.targets):
        lines += ["", "[[targets]]", f'name = "t{n:05d}"', 'type = "http"']
        path = "hang" if hung(n, args) else "health"
        lines.append(f'url = "{server.base}/{path}/{n}"')
    path = workdir / "vigild.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def hung(n: int, args: Any) -> bool:
    """One target in ``--hung-every`` never answers (never the first or last: they time cycles)."""
    every: int = args.hung_every
    return every > 0 and n % every == every // 2 and 0 < n < args.targets - 1


def exported_lateness_p99(exposition: str) -> float:
    """p99 of ``vigild_cycle_lateness_seconds`` as PromQL's histogram_quantile reads it, in ms."""
    buckets: dict[float, float] = {}
    for line in exposition.splitlines():
        if line.startswith("vigild_cycle_lateness_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if not total:
        return math.nan
    rank, lower, below = 0.99 * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == math.inf:
                return lower * 1000
            return (lower + (bound - lower) * (rank - below) / (buckets[bound] - below)) * 1000
        lower, below = bound, buckets[bound]
    return math.nan


def scheduled_at(log: Path, proc: subprocess.Popen[str], timeout: float) -> float:
    """When vigild scheduled its cycle: its first tick, from the "cycles scheduled" log line."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines():
            if '"cycles scheduled"' in line:
                return datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        time.sleep(0.2)
    raise RuntimeError(f"vigild did not schedule its cycles; see {log}")


def scrape(url: str, child: psutil.Process) -> str:
    cpu0, wall0 = cpu_seconds(child), time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        body: bytes = resp.read()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(child) - cpu0
    p99 = exported_lateness_p99(body.decode())
    probes = sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("vigild_probe_duration_seconds_count")
    )
    return (
        f"{wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms vigild CPU, "
        f"{len(body) / 2**20:.1f} MB, {probes:.0f} probes counted, "
        f"exported cycle lateness p99 {p99:.1f} ms"
    )


def run_vigild(server: TargetServer, args: Any, workdir: Path) -> Result:
    listen = f"127.0.0.1:{free_port()}"
    config = vigild_config(server, args, workdir, listen)
    env = vigild_env()
    log = workdir / "vigild.log"
    launched = time.time()
    proc = spawn(
        [str(VIGILD), "run", "--config", str(config)], stderr=log.open("w"), env=env, cwd=workdir
    )
    try:
        t0 = scheduled_at(log, proc, timeout=120)
        result = measure("vigild", proc, t0, server, args)
        child = psutil.Process(proc.pid)
        result.notes.append(f"startup to first tick: {t0 - launched:.1f} s")
        if args.hung_every:
            healthy = args.targets - sum(hung(n, args) for n in range(args.targets))
            share = result.probes / (healthy * args.intervals) * 100
            result.notes.append(
                f"healthy targets probed: {share:.1f} % of {healthy} x {args.intervals} intervals "
                f"(1 target in {args.hung_every} never answers)"
            )
        result.notes.append(f"/metrics between cycles: {scrape(f'http://{listen}/metrics', child)}")
        # The next tick is one guard away; scrape a third of a cycle into it.
        third = statistics.median(result.cycle_s or [0.3]) / 3
        busy = time.time() + min(1.0, 0.05 * args.interval) + third
        sleep_until(busy, proc)
        result.notes.append(f"/metrics during a cycle: {scrape(f'http://{listen}/metrics', child)}")
    finally:
        code = stop(proc)
    events: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        with_level = json.loads(line) if line.startswith("{") else {"level": "?", "event": line}
        if with_level["level"] != "info" or with_level["event"] == "probe failed":
            events[f"{with_level['level']}: {with_level['event']}"] += 1
    result.notes.append(f"exit code {code}; log lines other than info: {dict(events) or 'none'}")
    return result


def report(results: list[Result], args: Any) -> str:
    rows = [
        f"{args.targets} targets every {args.interval:g} s, {args.intervals} intervals measured"
        f" after a 1-interval warm-up, {os.cpu_count()} cores",
        "",
        "| side | probes | CPU µs/probe | % of one core | RSS MB (last / peak)"
        " | cycle start lateness ms (p50 / p99, n) | cycle s (median) | server % core |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.side} | {r.probes} | {r.us_per_probe:.0f} | {r.core_pct:.1f} "
            f"| {r.rss_mb:.0f} / {r.peak_rss_mb:.0f} "
            f"| {percentile(r.lateness_ms, 0.5):.1f} / {percentile(r.lateness_ms, 0.99):.1f}, "
            f"{len(r.lateness_ms)} | {statistics.median(r.cycle_s or [math.nan]):.2f} "
            f"| {r.server_core_pct:.0f} |"
        )
    by_side = {r.side: r for r in results}
    rows.append("")
    for base, meaning in (("bare", "budget <= 1.5x"), ("paced", "DESIGN.md's reference pace")):
        if "vigild" in by_side and base in by_side:
            ratio = by_side["vigild"].us_per_probe / by_side[base].us_per_probe
            rows.append(f"vigild / {base}: {ratio:.2f}x CPU per probe ({meaning})  ")
    for r in results:
        rows += [f"\n{r.side}:", *(f"- {note}" for note in r.notes)]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="vigild against a bare aiohttp loop.")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--intervals", type=int, default=3, help="intervals measured")
    parser.add_argument(
        "--sides", default="bare,vigild", help="comma-separated, in order: bare, paced, vigild"
    )
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument(
        "--hung-every", type=int, default=0, help="one target in K never answers (0: none)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sides = args.sides.split(",")
    if unknown := set(sides) - {"bare", "paced", "vigild"}:
        parser.error(f"unknown sides: {sorted(unknown)}")

    per_side = (args.intervals + 3) * args.interval + 180  # startup, warm-up, scrapes, stop
    results = []
    with tempfile.TemporaryDirectory(prefix="vigild-bench-") as tmp:
        workdir = Path(tmp)
        # The first and last path: a cycle's first and last request.
        server = TargetServer(
            (0, args.targets - 1),
            args.server_workers,
            per_side * len(sides),
            workdir / "server.log",
        )
        try:
            for side in sides:
                print(f"running {side} …", file=sys.stderr, flush=True)
                if side == "vigild":
                    results.append(run_vigild(server, args, workdir))
                else:
                    results.append(run_bare(server, args, paced=side == "paced"))
        finally:
            stop(server.proc)
    print(report(results, args))
    if args.json:
        data = [
            asdict(r) | {"us_per_probe": r.us_per_probe, "core_pct": r.core_pct} for r in results
        ]
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": data}, indent=1)
        )


if __name__ == "__main__":
    main()
