"""vigild against blackbox_exporter and two bare aiohttp loops: one command, one table.

One machine, one target: nginx (Debian's ``nginx-light``) answering
``{"status":"ok"}`` on 127.0.0.1, with ``stub_status`` counting every request.
For each N in ``--targets``, the same probe rate (N targets every
``--interval`` seconds) goes through each side in turn, each in its own
processes:

- ``vigild``: the whole pipeline, ``vigild run`` on a generated config
  (defaults for everything else: status-page history, /metrics, alerting).
- ``keepalive``: bare_aiohttp.py, paced evenly, one pooled session.
- ``newconn``: the same loop with a new connection per probe.
- ``blackbox``: ``prometheus-blackbox-exporter`` (Debian), its ``/probe``
  called at the same pace by bare_aiohttp.py. The exporter's CPU is the
  figure; the driver's is shown apart.

Each side warms up for one interval, then is measured over ``--intervals``
whole intervals: CPU from /proc (utime + stime of the process, its live
children and its reaped ones), RSS of the process tree sampled every second,
probes from nginx's ``stub_status`` (the reads of it subtracted). For vigild,
its own ``/metrics`` gives cycle lateness and event-loop lag. Every phase has a
fixed length, children are stopped by PID, and only 127.0.0.1 is contacted.

    .venv/bin/python bench/compare.py                                  # 100, 1,000, 10,000 @ 30 s
    .venv/bin/python bench/compare.py --targets 100,1000 --interval 5 --intervals 2   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from run import REPO, free_port, scheduled_at, spawn, stop, vigild_config, vigild_env

BENCH = Path(__file__).resolve().parent
SIDES = ("vigild", "keepalive", "newconn", "blackbox")
TICK = os.sysconf("SC_CLK_TCK")
BODY = '{"status":"ok"}'


# -- /proc ------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, plus what their reaped children used."""
    ticks = 0
    for each in _tree(pid):
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / TICK


def rss_mb(pid: int) -> float:
    total = 0
    for each in _tree(pid):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])  # kB
    return total / 1024


# -- the parts ----------------------------------------------------------------


def ensure_packages() -> None:
    """nginx-light and prometheus-blackbox-exporter from Debian, installed when missing."""
    missing = [
        package
        for package, binary in (
            ("nginx-light", "nginx"),
            ("prometheus-blackbox-exporter", "prometheus-blackbox-exporter"),
        )
        if shutil.which(binary) is None and not Path("/usr/sbin", binary).exists()
    ]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} …", file=sys.stderr, flush=True)
    # RUNLEVEL=1: the packages' own services are not started; we start our own.
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    subprocess.run([*sudo, *install], check=True, env=env, stdout=subprocess.DEVNULL)


def version_of(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


class Nginx:
    """nginx on 127.0.0.1 with its own config and prefix in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        port = free_port()
        conf = self.dir / "nginx.conf"
        temps = " ".join(
            f"{kind}_temp_path {self.dir / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf.write_text(
            f"""daemon off;
worker_processes 1;
pid {self.dir / "nginx.pid"};
error_log {self.dir / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    {temps}
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /health/ {{ default_type application/json; return 200 '{BODY}'; }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        cmd = [binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        self.proc = spawn(cmd)
        self.base = f"http://127.0.0.1:{port}"
        wait_for(f"{self.base}/nginx_status", self.proc)

    def requests(self) -> int:
        """Requests served so far, this read included."""
        with urllib.request.urlopen(f"{self.base}/nginx_status", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
        return int(lines[2].split()[2])  # "server accepts handled requests" / "a h r"


@dataclass
class Phase:
    side: str
    targets: int
    interval: float
    probes: int
    cpu_s: float
    wall_s: float
    rss_mb: list[float]
    driver_cpu_s: float | None = None
    lateness_p99_ms: float | None = None
    loop_lag_p99_ms: float | None = None
    lateness_buckets: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def us_per_probe(self) -> float:
        return self.cpu_s / self.probes * 1e6 if self.probes else math.nan

    @property
    def driver_us_per_probe(self) -> float:
        if self.driver_cpu_s is None or not self.probes:
            return math.nan
        return self.driver_cpu_s / self.probes * 1e6


# -- /metrics -------------------------------------------------------------------


def histogram_buckets(exposition: str, metric: str) -> dict[float, float]:
    """Cumulative counts by upper bound, summed over the metric's series."""
    buckets: dict[float, float] = {}
    for line in exposition.splitlines():
        if line.startswith(metric + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """As PromQL's histogram_quantile reads cumulative buckets (linear within a bucket)."""
    total = buckets.get(math.inf, 0.0)
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound in sorted(buckets):
        if buckets[bound] >= rank:
            if bound == math.inf:
                return lower
            return lower + (bound - lower) * (rank - below) / (buckets[bound] - below)
        lower, below = bound, buckets[bound]
    return math.nan


def delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        body: bytes = resp.read()
    return body.decode()


# -- one phase ------------------------------------------------------------------


class Window:
    """Warm up for one interval after ``t0``, then measure ``intervals`` whole intervals."""

    def __init__(self, t0: float, args: Any) -> None:
        guard = min(1.0, 0.05 * args.interval)  # just before a tick: between vigild's cycles
        self.start = t0 + args.interval - guard
        self.end = self.start + args.intervals * args.interval

    def run(
        self, nginx: Nginx, pid: int, procs: list[subprocess.Popen[str]], driver: int | None = None
    ) -> tuple[int, float, float, float | None, list[float]]:
        """(probes, CPU s, wall s, driver CPU s, RSS samples) over the window."""
        self._sleep_until(self.start, procs)
        hits0, cpu0, wall0 = nginx.requests(), cpu_seconds(pid), time.time()
        driver0 = cpu_seconds(driver) if driver is not None else 0.0
        samples = []
        while time.time() < self.end:
            samples.append(rss_mb(pid))
            self._sleep_until(min(self.end, time.time() + 1.0), procs)
        cpu1, wall1 = cpu_seconds(pid), time.time()
        driver1 = cpu_seconds(driver) if driver is not None else 0.0
        hits1 = nginx.requests()
        probes = hits1 - hits0 - 1  # the second read counts itself
        return probes, cpu1 - cpu0, wall1 - wall0, driver1 - driver0 if driver else None, samples

    @staticmethod
    def _sleep_until(at: float, procs: list[subprocess.Popen[str]]) -> None:
        while (left := at - time.time()) > 0:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} mid-phase")
            time.sleep(min(left, 0.2))


def bare_loop(template: str, args: Any, n: int, close: bool) -> list[str]:
    # It stops by itself just after the window.
    duration = (1 + args.intervals) * args.interval
    cmd = [sys.executable, str(BENCH / "bare_aiohttp.py"), "--template", template, "--paced"]
    cmd += ["--targets", str(n), "--interval", str(args.interval), "--duration", str(duration)]
    return cmd + (["--new-connection"] if close else [])


def run_bare(nginx: Nginx, args: Any, n: int, close: bool) -> Phase:
    side = "newconn" if close else "keepalive"
    proc = spawn(bare_loop(nginx.base + "/health/{n}", args, n, close), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        window = Window(json.loads(proc.stdout.readline())["t0"], args)
        probes, cpu, wall, _, rss = window.run(nginx, proc.pid, [proc])
        totals = json.loads(proc.stdout.readline() or "{}")
    finally:
        stop(proc)
    phase = Phase(side, n, args.interval, probes, cpu, wall, rss)
    phase.notes.append(f"requests failed: {totals.get('failed', '?')}")
    return phase


def run_blackbox(nginx: Nginx, args: Any, n: int, workdir: Path) -> Phase:
    config = workdir / "blackbox.yml"
    # vigild's defaults: 10 s timeout, GET, any 2xx is up.
    config.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n"
        "    http:\n      preferred_ip_protocol: ip4\n"
    )
    listen = f"127.0.0.1:{free_port()}"
    exporter = spawn(
        [
            shutil.which("prometheus-blackbox-exporter") or "prometheus-blackbox-exporter",
            f"--config.file={config}",
            f"--web.listen-address={listen}",
            "--log.level=warn",
        ],
        stderr=(workdir / "blackbox.log").open("w"),
    )
    try:
        wait_for(f"http://{listen}/-/healthy", exporter)
        target = urllib.parse.quote(nginx.base, safe="")
        template = f"http://{listen}/probe?module=http_2xx&target={target}%2Fhealth%2F{{n}}"
        driver = spawn(bare_loop(template, args, n, close=False), stdout=subprocess.PIPE)
        assert driver.stdout is not None
        try:
            window = Window(json.loads(driver.stdout.readline())["t0"], args)
            probes, cpu, wall, driver_cpu, rss = window.run(
                nginx, exporter.pid, [exporter, driver], driver=driver.pid
            )
            totals = json.loads(driver.stdout.readline() or "{}")
        finally:
            stop(driver)
        success = scrape(f"http://{listen}/probe?module=http_2xx&target={target}%2Fhealth%2F0")
    finally:
        stop(exporter)
    phase = Phase("blackbox", n, args.interval, probes, cpu, wall, rss, driver_cpu_s=driver_cpu)
    ok = "probe_success 1" in success
    phase.notes.append(f"driver requests failed: {totals.get('failed', '?')}; check probe ok: {ok}")
    return phase


def heavy_pages(base: str, at: float, proc: subprocess.Popen[str]) -> str:
    """vigild's biggest answers, each once, mid-interval: how long each takes, and the
    event-loop lag they left in vigild's histogram (its timer fires every 0.5 s)."""
    Window._sleep_until(at, [proc])
    lag = "vigild_event_loop_lag_seconds"
    before = histogram_buckets(scrape(f"{base}/metrics"), lag)
    timings = []
    for path in ("/", "/api/status", "/metrics"):
        started = time.perf_counter()
        body = scrape(base + path)
        timings.append(
            f"{path} {(time.perf_counter() - started) * 1000:.0f} ms {len(body) >> 10} KiB"
        )
        time.sleep(0.6)
    after = delta(histogram_buckets(scrape(f"{base}/metrics"), lag), before)
    samples = after.get(math.inf, 0.0)
    worst = min((b for b, c in after.items() if c == samples), default=math.nan)
    return (
        f"pages: {', '.join(timings)}; loop lag around them: worst sample at most"
        f" {worst * 1000:g} ms of {samples:.0f}; RSS after them {rss_mb(proc.pid):.0f} MB"
    )


def run_vigild(nginx: Nginx, args: Any, n: int, workdir: Path) -> Phase:
    listen = f"127.0.0.1:{free_port()}"
    here = workdir / f"vigild-{n}"
    here.mkdir()
    settings = SimpleNamespace(targets=n, interval=args.interval, hung_every=0)
    config = vigild_config(SimpleNamespace(base=nginx.base), settings, here, listen)
    env = vigild_env()
    log = here / "vigild.log"
    cmd = [args.vigild_python, "-m", "vigild", "run", "--config", str(config)]
    proc = spawn(cmd, stderr=log.open("w"), env=env, cwd=here)
    metrics = f"http://{listen}/metrics"
    try:
        window = Window(scheduled_at(log, proc, timeout=180), args)
        # Mid-way through the warm-up: the scrape's own CPU stays out of the window.
        Window._sleep_until(window.start - args.interval / 2, [proc])
        before = scrape(metrics)
        probes, cpu, wall, _, rss = window.run(nginx, proc.pid, [proc])
        after = scrape(metrics)
        pages = heavy_pages(f"http://{listen}", window.end + args.interval / 2, proc)
    finally:
        code = stop(proc)
    lateness, lag = (
        delta(histogram_buckets(after, metric), histogram_buckets(before, metric))
        for metric in ("vigild_cycle_lateness_seconds", "vigild_event_loop_lag_seconds")
    )
    phase = Phase("vigild", n, args.interval, probes, cpu, wall, rss)
    phase.lateness_p99_ms = histogram_quantile(lateness, 0.99) * 1000
    phase.loop_lag_p99_ms = histogram_quantile(lag, 0.99) * 1000
    phase.lateness_buckets = {str(bound): count for bound, count in lateness.items()}
    samples = lag.get(math.inf, 0.0)
    worst = min((b for b, c in lag.items() if c == samples), default=math.nan)
    phase.notes.append(
        f"event-loop lag: {samples - lag.get(0.05, 0.0):.0f} of {samples:.0f} samples"
        f" above 50 ms; the worst was at most {worst * 1000:g} ms"
    )
    phase.notes.append(pages)
    errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    phase.notes.append(f"exit code {code}; error lines in its log: {len(errors)}")
    return phase


# -- the table ----------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def table(phases: list[Phase]) -> str:
    rows = [
        "| N | side | probes | CPU µs/probe | vs blackbox | vs keepalive | vs newconn"
        " | % of one core | RSS MB mean / max | lateness p99 ms | loop lag p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({p.targets for p in phases}):
        at_n = {p.side: p for p in phases if p.targets == n}
        for side in SIDES:
            if side not in at_n:
                continue
            p = at_n[side]
            base = {s: at_n[s].us_per_probe if s in at_n else math.nan for s in SIDES}
            rss = f"{sum(p.rss_mb) / len(p.rss_mb):.0f} / {max(p.rss_mb):.0f}" if p.rss_mb else "-"
            late = f"{p.lateness_p99_ms:.1f}" if p.lateness_p99_ms is not None else ""
            lag = f"{p.loop_lag_p99_ms:.1f}" if p.loop_lag_p99_ms is not None else ""
            rows.append(
                f"| {n:,} | {side} | {p.probes:,} | {p.us_per_probe:.0f} "
                f"| {ratio(p.us_per_probe, base['blackbox'])} "
                f"| {ratio(p.us_per_probe, base['keepalive'])} "
                f"| {ratio(p.us_per_probe, base['newconn'])} "
                f"| {p.cpu_s / p.wall_s * 100:.1f} | {rss} | {late} | {lag} |"
            )
    notes = []
    for n in sorted({p.targets for p in phases}):
        fewest = min(p.probes for p in phases if p.targets == n) or 1
        notes.append(
            f"- N={n:,}: /proc counts CPU in {1000 / TICK:g} ms ticks, so a CPU µs/probe figure is"
            f" good to about ± {1e6 / TICK / fewest:.0f} µs here (more --intervals narrow it)"
        )
    for p in phases:
        if p.driver_cpu_s is not None:
            notes.append(
                f"- N={p.targets:,} blackbox: its driver (not counted above) "
                f"{p.driver_us_per_probe:.0f} µs/probe"
            )
        notes += [f"- N={p.targets:,} {p.side}: {note}" for note in p.notes]
    return "\n".join([*rows, "", *notes])


def environment(args: Any) -> dict[str, str]:
    import aiohttp

    done = subprocess.run(
        [args.vigild_python, "-c", "import vigild, sys; print(vigild.__version__, sys.version)"],
        capture_output=True,
        text=True,
        check=False,
        env=vigild_env(),
    )
    fast = subprocess.run(
        [args.vigild_python, "-c", "import uvloop"], capture_output=True, check=False
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "machine": f"{os.cpu_count()} cores, {cpu}, Linux {os.uname().release}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "vigild": f"{done.stdout.strip()} (commit {commit.stdout.strip()})",
        "event loop": "uvloop" if fast.returncode == 0 else "asyncio",
        "aiohttp": aiohttp.__version__,
        "nginx": version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "blackbox_exporter": version_of(["prometheus-blackbox-exporter", "--version"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="vigild against blackbox_exporter and bare loops.")
    parser.add_argument("--targets", default="100,1000,10000", help="comma-separated N list")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--intervals", type=int, default=2, help="intervals measured per phase, after 1 warm-up"
    )
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated, in order")
    parser.add_argument("--vigild-python", default=sys.executable, help="interpreter for vigild")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument(
        "--plots",
        type=Path,
        nargs="?",
        const=REPO / "docs" / "performance",
        help="write PNGs here (default docs/performance; needs the bench extra)",
    )
    parser.add_argument("--once-runs", type=int, default=5, help="--once runs for the plot")
    args = parser.parse_args()
    sides = args.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown sides: {sorted(unknown)}")
    counts = [int(n) for n in args.targets.split(",")]
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plots needs matplotlib: pip install -e '.[bench]'")

    ensure_packages()
    env = environment(args)
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="vigild-compare-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(workdir)
        try:
            for n in counts:
                for side in sides:
                    print(f"N={n:,}: {side} …", file=sys.stderr, flush=True)
                    if side == "vigild":
                        phases.append(run_vigild(nginx, args, n, workdir))
                    elif side == "blackbox":
                        phases.append(run_blackbox(nginx, args, n, workdir))
                    else:
                        phases.append(run_bare(nginx, args, n, close=side == "newconn"))
        finally:
            stop(nginx.proc)
    once = None
    if args.plots:
        from once import phase_breakdown

        once = phase_breakdown(args.once_runs, args.vigild_python)

    print()
    for key, value in env.items():
        print(f"{key}: {value}  ")
    print(
        f"\nEvery side paced at N targets every {args.interval:g} s; {args.intervals} intervals"
        " measured after a 1-interval warm-up. CPU: utime+stime from /proc; probes: nginx"
        " stub_status.\n"
    )
    print(table(phases))
    if once is not None:
        print("\nvigild --once, 10 targets, median ms: " + json.dumps(once))
    if args.json:
        data = [asdict(p) | {"us_per_probe": p.us_per_probe} for p in phases]
        document = {"environment": env, "args": vars(args), "phases": data, "once": once}
        args.json.write_text(json.dumps(document, indent=1, default=str))
    if args.plots:
        from plots import write_plots

        note = f"{env['machine']}; load average at start {env['load average at start']}"
        for path in write_plots(phases, once, args.plots, note):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
