"""CPU per scrape of a realistic 5,000-series page by the prometheus probe (budget: 50 ms).

A page of the kind a busy web service exposes: runtime gauges, a request
counter by method/route/status, a latency histogram and a size histogram by
method/route, a summary, and a per-tenant job counter that fills the page up
to ``--series``. The target runs in a child process (its CPU is not charged
here) and serves ``--versions`` renderings with the counters advancing, in
turn. The probe scrapes it ``--scrapes`` times through one ClientSession, as
the daemon does; the figure is this process's CPU time (``time.process_time``)
per scrape: fetch, read, select, compute. For scale it also times a bare GET
of the same page and ``prometheus_client``'s parser on it.

With ``--daemon SECONDS`` it measures what a big page does to the rest of
vigild instead: ``vigild run`` scrapes the page every second (``max_body``
raised to fit it) while this process asks ``/healthz`` every 10 ms on a new
connection. The longest answer bounds how long the daemon's event loop was
held; the p99 is the budget's figure (< 50 ms). It also reports the
daemon's CPU per scrape, its peak RSS and the size of its probe state.

    .venv/bin/python bench/prometheus_page.py
    .venv/bin/python bench/prometheus_page.py --openmetrics --scrapes 500
    .venv/bin/python bench/prometheus_page.py --series 200000 --versions 2 --daemon 30
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from vigild.model import Observation
from vigild.probes.base import ProbeContext
from vigild.probes.prometheus import PrometheusProbe, PrometheusTarget

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
ROUTES = [f"/api/v1/resource{i}/{{id}}" for i in range(60)]
LATENCY_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"]
SIZE_BOUNDS = ["100", "1000", "10000", "100000", "1e+06", "1e+07"]

TARGET = {
    "name": "shop",
    "type": "prometheus",
    "requests": 'http_requests_total{route!="/healthz"}',
    "errors": 'http_requests_total{route!="/healthz",status=~"5.."}',
    "latency_histogram": 'http_request_duration_seconds{route!="/healthz"}',
    "gauges": {"goroutines": "go_goroutines", "backlog": 'jobs_waiting{queue=~"high|default"}'},
}


class Page:
    """Renders the page; each rendering advances every counter."""

    def __init__(self, series: int, openmetrics: bool, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.series = series
        self.openmetrics = openmetrics
        self.counters: dict[str, float] = {}

    def count(self, key: str, most: int) -> int:
        value = self.counters.get(key, self.rng.randint(0, 10**6)) + self.rng.randint(0, most)
        self.counters[key] = value
        return int(value)

    def family(self, out: list[str], name: str, kind: str, text: str) -> None:
        declared = name.removesuffix("_total") if self.openmetrics and kind == "counter" else name
        out.append(f"# HELP {declared} {text}")
        out.append(f"# TYPE {declared} {kind}")

    def render(self) -> str:
        out: list[str] = []
        for i in range(40):
            self.family(out, f"go_runtime_stat_{i}", "gauge", "A runtime statistic.")
            out.append(f"go_runtime_stat_{i} {self.rng.random() * 1e6:.3f}")
        self.family(out, "go_goroutines", "gauge", "Goroutines.")
        out.append(f"go_goroutines {self.rng.randint(50, 90)}")
        self.family(out, "http_requests_total", "counter", "Requests by method, route, status.")
        for route in [*ROUTES, "/healthz"]:
            for method in ("GET", "POST"):
                for status in ("200", "400", "404", "500"):
                    key = f'method="{method}",route="{route}",status="{status}"'
                    most = 1000 if status == "200" else 20
                    out.append(f"http_requests_total{{{key}}} {self.count(key, most)}")
        self.histogram(out, "http_request_duration_seconds", LATENCY_BOUNDS, 300)
        self.histogram(out, "http_response_size_bytes", SIZE_BOUNDS, 300)
        self.family(out, "db_query_seconds", "summary", "Query latency.")
        for query in range(20):
            for q in ("0.5", "0.9", "0.99"):
                out.append(f'db_query_seconds{{query="q{query}",quantile="{q}"}} 0.0{query}')
            out.append(f'db_query_seconds_sum{{query="q{query}"}} {self.count(f"qs{query}", 9)}')
            out.append(f'db_query_seconds_count{{query="q{query}"}} {self.count(f"qc{query}", 9)}')
        self.family(out, "jobs_waiting", "gauge", "Jobs waiting by queue.")
        for queue in ("high", "default", "low"):
            out.append(f'jobs_waiting{{queue="{queue}"}} {self.rng.randint(0, 50)}')
        self.family(out, "jobs_processed_total", "counter", "Jobs by tenant and queue.")
        samples = sum(1 for line in out if not line.startswith("#"))
        for tenant in range(max(0, self.series - samples)):
            key = f'tenant="tenant-{tenant // 4:04d}",queue="q{tenant % 4}"'
            out.append(f"jobs_processed_total{{{key}}} {self.count(key, 50)}")
        if self.openmetrics:
            out.append("# EOF")
        return "\n".join(out) + "\n"

    def histogram(self, out: list[str], name: str, bounds: list[str], most: int) -> None:
        self.family(out, name, "histogram", "A histogram by method and route.")
        # Most observations are fast, a few slow: each bucket gets fewer than the last.
        shares = [0.5**i for i in range(len(bounds) + 1)]
        for route in [*ROUTES, "/healthz"]:
            for method in ("GET", "POST"):
                labels = f'method="{method}",route="{route}"'
                cumulative = 0
                for bound, share in zip([*bounds, "+Inf"], shares, strict=True):
                    cumulative += self.count(f"{name}{labels}{bound}", int(most * share))
                    out.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
                out.append(f"{name}_sum{{{labels}}} {cumulative * 0.1:.3f}")
                out.append(f"{name}_count{{{labels}}} {cumulative}")


def serve(sock: socket.socket, pages: list[bytes], content_type: str) -> None:
    """The target, in its own process: the pages in turn, one per request."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the driver
    served = 0

    async def handle(_: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.Response(body=pages[served % len(pages)], headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def cpu_ms_each(times: int, action: Callable[[], Any]) -> list[float]:
    spent = []
    for _ in range(times):
        started = time.process_time()
        action()
        spent.append((time.process_time() - started) * 1000)
    return spent


async def measure(url: str, scrapes: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        target = PrometheusTarget.model_validate({**TARGET, "url": url})
        first_started = time.process_time()
        await PrometheusProbe(target, 10.0, ProbeContext(session)).probe(0.0)
        first_ms = (time.process_time() - first_started) * 1000
        # A second probe: its caches are empty, but the process and the session are warm.
        probe = PrometheusProbe(target, 10.0, ProbeContext(session))
        started = time.process_time()
        await probe.probe(0.0)
        fresh_ms = (time.process_time() - started) * 1000
        observations: list[Observation] = []
        per_scrape: list[float] = []
        for i in range(scrapes):
            started = time.process_time()
            observations.extend(await probe.probe(float(i)))
            per_scrape.append((time.process_time() - started) * 1000)
        bare: list[float] = []
        body = b""
        for _ in range(min(scrapes, 50)):
            started = time.process_time()
            async with session.get(url) as resp:
                body = await resp.read()
            bare.append((time.process_time() - started) * 1000)
    return {
        "first_ms": first_ms,
        "fresh_ms": fresh_ms,
        "last": observations[-1],
        "per_scrape": per_scrape,
        "bare": bare,
        "body": body,
    }


def library_parse_ms(text: str, openmetrics: bool) -> float:
    """prometheus_client's own parser on the whole page, for scale."""
    from prometheus_client.openmetrics import parser as openmetrics_parser
    from prometheus_client.parser import text_string_to_metric_families

    def parse() -> int:
        if openmetrics:
            families = openmetrics_parser.text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        else:
            families = text_string_to_metric_families(text)
        return len(list(families))

    return statistics.median(cpu_ms_each(5, parse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--openmetrics", action="store_true")
    parser.add_argument("--daemon", type=float, metavar="SECONDS", help="vigild run, /healthz")
    parser.add_argument("--requests", help="requests selector (default the shop's)")
    args = parser.parse_args()

    page = Page(args.series, args.openmetrics)
    pages = [page.render().encode() for _ in range(args.versions)]
    text = pages[0].decode()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    content_type = OPENMETRICS if args.openmetrics else TEXT
    # As vigild does once its config is built: what exists now is out of GC's way.
    gc.collect()
    gc.freeze()
    server = multiprocessing.get_context("fork").Process(
        target=serve, args=(sock, pages, content_type), daemon=True
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        if args.daemon:
            target = {**TARGET, "url": url, "max_body": f"{len(pages[0]) * 2}B"}
            if args.requests:
                target["requests"] = args.requests
            daemon_report(samples, len(pages[0]), measure_daemon(target, args.daemon))
            return
        result = asyncio.run(measure(url, args.scrapes))
    finally:
        server.terminate()
        server.join(5)
    report(args, samples, len(pages[0]), result, library_parse_ms(text, args.openmetrics))


def measure_daemon(target: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``vigild run`` scraping ``target`` every second while /healthz is timed."""
    with tempfile.TemporaryDirectory() as tmp:
        listen = f"127.0.0.1:{free_port()}"
        state = Path(tmp) / "state.db"
        lines = [
            "[daemon]",
            f'listen = "{listen}"',
            f"state_path = {json.dumps(str(state))}",
            'interval = "1s"',
            "[[targets]]",
        ]
        for key, value in {**target, "timeout": "1s"}.items():
            if isinstance(value, dict):
                pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {pairs} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        config = Path(tmp) / "vigild.toml"
        config.write_text("\n".join(lines) + "\n")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "vigild", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            process = psutil.Process(daemon.pid)
            healthz = f"http://{listen}/healthz"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and ask(healthz) is None:
                time.sleep(0.05)
            time.sleep(3)  # past the first scrapes, whose caches are empty
            cpu_before = sum(process.cpu_times()[:2])
            answers: list[float] = []
            started = time.monotonic()
            while time.monotonic() < started + seconds:
                took = ask(healthz)
                if took is not None:
                    answers.append(took * 1000)
                time.sleep(0.01)
            cpu = sum(process.cpu_times()[:2]) - cpu_before
            status = json.loads(urllib.request.urlopen(f"http://{listen}/api/status").read())
            peak_kib = next(
                int(line.split()[1])
                for line in Path(f"/proc/{daemon.pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:")
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        with sqlite3.connect(state) as db:
            state_bytes = db.execute("SELECT sum(length(state)) FROM probe_state").fetchone()[0]
    return {
        "answers": sorted(answers),
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_mb": peak_kib / 1024,
        "state_bytes": state_bytes or 0,
        "observation": status["targets"][0]["observation"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def ask(url: str) -> float | None:
    """Seconds to a /healthz answer on a new connection, or None without one."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
    except OSError:
        return None
    return time.perf_counter() - started


def daemon_report(samples: int, size: int, result: dict[str, Any]) -> None:
    answers = result["answers"]
    observation = result["observation"]
    print(f"page: {samples} series, {size / 2**20:.1f} MiB; vigild run scraping it every 1 s")
    print(f"last observation: up {observation['up']}, error {observation['error']}")
    fetch = observation["metrics"].get("latency_seconds", 0)
    print(f"fetch of the page (latency_seconds): {fetch:.3f} s")
    print(
        f"/healthz over {result['seconds']:g} s, {len(answers)} answers: "
        f"median {statistics.median(answers):.1f} ms, "
        f"p99 {answers[int(len(answers) * 0.99) - 1]:.1f} ms, max {answers[-1]:.1f} ms"
    )
    print(f"daemon CPU: {result['cpu_s'] / result['seconds'] * 100:.0f} % of a core")
    print(f"daemon peak RSS: {result['peak_mb']:.0f} MB")
    print(f"probe state in the state file: {result['state_bytes'] / 1024:.1f} KiB")
    print("budget: /healthz p99 < 50 ms; no event-loop block over 50 ms")


def report(
    args: argparse.Namespace, samples: int, size: int, result: dict[str, Any], library_ms: float
) -> None:
    per_scrape = sorted(result["per_scrape"])
    last: Observation = result["last"]
    fmt = "OpenMetrics" if args.openmetrics else "text 0.0.4"
    print(f"page: {samples} series, {size / 1024:.0f} KiB, {fmt}; {args.scrapes} scrapes")
    print(f"probe up: {last.up}  error: {last.error}")
    print("metrics:", {k: round(v, 4) for k, v in sorted(last.metrics.items())})
    print(f"CPU, the process's first scrape:  {result['first_ms']:.1f} ms")
    print(f"CPU, a new probe's first scrape:  {result['fresh_ms']:.1f} ms")
    print(
        f"CPU per scrape, steady:           mean {statistics.fmean(per_scrape):.1f} ms, "
        f"median {statistics.median(per_scrape):.1f}, "
        f"p95 {per_scrape[int(len(per_scrape) * 0.95) - 1]:.1f}, max {per_scrape[-1]:.1f}"
    )
    print(f"  of which a bare GET + read:     median {statistics.median(result['bare']):.1f} ms")
    print(f"prometheus_client parser on the same page: {library_ms:.0f} ms")
    print("budget: 50 ms per scrape")


if __name__ == "__main__":
    main()
