"""Soak: ``vigild run`` for an hour on 10,000 targets at a compressed 3 s interval, some flapping.

Most targets are nginx's ``/health/{n}`` (as in compare.py). ``--flapping``
of them are served by this script's own server (``--serve``, a child
process): they answer 200, then 503 for ``--flap-period`` seconds, then 200
again, and so on, all in step, and stop flapping (200 for good) early enough
for the last recovery to be told. vigild's ``webhook`` notifier posts to the
same server, which counts the alerts it receives by status and target.

Every flip is one alert event: the up→down flips fire, the down→up flips
resolve. ``flap_limit`` is set out of reach and ``repeat_interval`` beyond
the run, so the receiver must see exactly ``flapping * flips / 2`` firing and
as many resolved alerts. ``/metrics`` is scraped every ``--scrape-every``
seconds all along, as a Prometheus would. Reported: RSS after the warm-up and
at the end (and the slope of the samples in between), cycle lateness and
event-loop lag p99 from vigild's own histograms after the warm-up, and the
alert counts against the expected ones.

    .venv/bin/python bench/soak.py                                   # 10,000 targets, 60 min
    .venv/bin/python bench/soak.py --targets 500 --flapping 20 --minutes 3 --warmup 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from compare import Nginx, delta, histogram_buckets, histogram_quantile, rss_mb, scrape
from run import free_port, scheduled_at, spawn, stop, vigild_config, vigild_env

SETTLE_INTERVALS = 5
"""Intervals between the last flip and the end: the last recovery is probed and told."""


# -- the flapping targets and the receiver (a child process) --------------------


def serve(port: int, epoch: float, period: float, until: float) -> None:
    from aiohttp import web

    counts: dict[str, Any] = {"messages": 0, "firing": 0, "resolved": 0}
    by_target: dict[str, dict[str, Any]] = {}

    def down() -> bool:
        now = time.time()
        return epoch <= now < until and int((now - epoch) // period) % 2 == 1

    async def flap(_request: web.Request) -> web.Response:
        if down():
            return web.Response(status=503, text="flapping")
        return web.json_response({"status": "ok"})

    async def hook(request: web.Request) -> web.Response:
        payload = await request.json()
        counts["messages"] += 1
        for alert in payload["alerts"]:
            status = alert["status"]
            counts[status] = counts.get(status, 0) + 1
            of_target = by_target.setdefault(alert["labels"]["target"], {})
            of_target[status] = of_target.get(status, 0) + 1
            if status == "firing":  # its first line: what the probe found
                of_target["why"] = alert["annotations"].get("description", "").split("\n")[0]
        return web.Response(text="ok")

    async def counted(_request: web.Request) -> web.Response:
        return web.json_response({**counts, "by_target": by_target})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/flap/{n}", flap)
        app.router.add_post("/hook", hook)
        app.router.add_get("/counts", counted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.sleep(until - time.time() + 3600)  # bounded, and stopped by PID before

    asyncio.run(main())


# -- the driver ----------------------------------------------------------------------


def flips(epoch: float, period: float, until: float) -> int:
    """Phase boundaries in (epoch, until]: each one is one transition of every flapping target."""
    return int((until - epoch) // period)


def sent(exposition: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("vigild_notifications_total{") and 'outcome="sent"' in line
    )


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return math.nan
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 3600 if var else math.nan


def soak(args: Any, workdir: Path) -> dict[str, Any]:
    nginx = Nginx(workdir)
    procs: list[subprocess.Popen[str]] = [nginx.proc]
    try:
        launched = time.time()
        end = launched + args.minutes * 60
        # Flapping starts after the first interval and stops on a whole number of periods
        # (back to up) early enough for the last recovery to go out.
        epoch = launched + args.interval
        usable = end - SETTLE_INTERVALS * args.interval - epoch
        periods = max(2, int(usable // args.flap_period) // 2 * 2)
        until = epoch + periods * args.flap_period
        flap_port = free_port()
        server = spawn(
            [
                sys.executable,
                __file__,
                "--serve",
                str(flap_port),
                "--epoch",
                str(epoch),
                "--flap-period",
                str(args.flap_period),
                "--until",
                str(until),
            ],
            stdout=subprocess.PIPE,
        )
        procs.append(server)
        assert server.stdout is not None
        server.stdout.readline()
        flap_base = f"http://127.0.0.1:{flap_port}"

        listen = f"127.0.0.1:{free_port()}"
        settings = SimpleNamespace(targets=args.targets, interval=args.interval, hung_every=0)
        config = vigild_config(SimpleNamespace(base=nginx.base), settings, workdir, listen)
        text = config.read_text()
        for n in range(args.flapping):  # the first ones flap
            text = text.replace(
                f'url = "{nginx.base}/health/{n}"\n', f'url = "{flap_base}/flap/{n}"\n', 1
            )
        text = text.replace(
            "[daemon]\n",
            '[alerting]\nflap_limit = 1000000\nrepeat_interval = "30d"\n\n[[notifiers]]\n'
            f'name = "soak"\ntype = "webhook"\nurl = "{flap_base}/hook"\n\n[daemon]\n',
            1,
        )
        config.write_text(text)
        log = workdir / "vigild.log"
        cmd = [args.vigild_python, "-m", "vigild", "run", "--config", str(config)]
        proc = spawn(cmd, stderr=log.open("w"), env=vigild_env(), cwd=workdir)
        procs.append(proc)
        metrics = f"http://{listen}/metrics"
        scheduled_at(log, proc, timeout=180)

        warm = launched + args.warmup
        samples: list[tuple[float, float]] = []
        before = ""
        next_sample = next_scrape = time.time()
        scrapes = 0
        while (now := time.time()) < end:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args!r} exited with {p.returncode} mid-soak")
            if args.scrape_every and now >= next_scrape:
                scrape(metrics)  # as Prometheus would, all along
                scrapes += 1
                next_scrape += args.scrape_every
            if now >= next_sample:
                if now >= warm:
                    if not before:
                        before = scrape(metrics)
                    samples.append((now, rss_mb(proc.pid)))
                next_sample += args.sample_every
            upcoming = min(next_sample, next_scrape if args.scrape_every else end, end)
            time.sleep(max(0.0, upcoming - time.time()))
        after = scrape(metrics)
        with urllib.request.urlopen(f"{flap_base}/counts", timeout=10) as resp:
            counts: dict[str, Any] = json.load(resp)
        code = stop(proc)
        errors = sum('"level": "error"' in line for line in log.read_text().splitlines())
    finally:
        for p in reversed(procs):
            stop(p)

    per_target = flips(epoch, args.flap_period, until)
    # Alerts of the targets made to flap, against what they must be; any other target's
    # alert is a probe that really failed (a timeout when the machine cannot keep up).
    flapping = {f"t{n:05d}" for n in range(args.flapping)}
    by_target = counts.pop("by_target")
    of_flapping = {
        status: sum(c.get(status, 0) for t, c in by_target.items() if t in flapping)
        for status in ("firing", "resolved")
    }
    others = {
        "targets": sum(1 for t in by_target if t not in flapping),
        **{
            status: sum(c.get(status, 0) for t, c in by_target.items() if t not in flapping)
            for status in ("firing", "resolved")
        },
        "why": Counter(
            c["why"] for t, c in by_target.items() if t not in flapping and "why" in c
        ).most_common(3),
    }
    lateness, lag = (
        delta(histogram_buckets(after, metric), histogram_buckets(before, metric))
        for metric in ("vigild_cycle_lateness_seconds", "vigild_event_loop_lag_seconds")
    )
    return {
        "targets": args.targets,
        "flapping": args.flapping,
        "interval_s": args.interval,
        "minutes": args.minutes,
        "warmup_s": args.warmup,
        "metrics_scrapes": scrapes,
        "flips_per_flapping_target": per_target,
        "rss_after_warmup_mb": samples[0][1] if samples else math.nan,
        "rss_end_mb": samples[-1][1] if samples else math.nan,
        "rss_max_mb": max((r for _, r in samples), default=math.nan),
        "rss_slope_mb_per_hour": slope_mb_per_hour(samples),
        "lateness_p99_ms": histogram_quantile(lateness, 0.99) * 1000,
        "loop_lag_p99_ms": histogram_quantile(lag, 0.99) * 1000,
        "loop_lag_samples_over_50ms": lag.get(math.inf, 0.0) - lag.get(0.05, 0.0),
        "expected_firing": args.flapping * (per_target // 2),
        "expected_resolved": args.flapping * (per_target // 2),
        "received": counts,
        "received_flapping": of_flapping,
        "received_others": others,
        "vigild_notifications_sent": sent(after),
        "exit_code": code,
        "error_lines": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="vigild soak: memory, lateness, notifications.")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--flapping", type=int, default=100, help="how many of them flap")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds")
    parser.add_argument("--flap-period", type=float, default=30.0, help="seconds up, then down")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds before RSS counts")
    parser.add_argument("--sample-every", type=float, default=10.0, help="RSS sample, seconds")
    parser.add_argument(
        "--scrape-every", type=float, default=15.0, help="/metrics as Prometheus would; 0: never"
    )
    parser.add_argument("--vigild-python", default=sys.executable)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epoch", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.epoch, args.flap_period, args.until)
        return
    if args.warmup >= args.minutes * 60 - SETTLE_INTERVALS * args.interval:
        parser.error("--warmup leaves no time to measure")

    with tempfile.TemporaryDirectory(prefix="vigild-soak-") as tmp:
        result = soak(args, Path(tmp))
    growth = result["rss_end_mb"] - result["rss_after_warmup_mb"]
    received = result["received"]
    mismatch = {
        status: result["received_flapping"][status] - result[f"expected_{status}"]
        for status in ("firing", "resolved")
    }
    others = result["received_others"]
    print(
        f"{result['targets']:,} targets every {result['interval_s']:g} s for "
        f"{result['minutes']:g} min, {result['flapping']} flapping "
        f"({result['flips_per_flapping_target']} flips each), /metrics scraped"
        f" {result['metrics_scrapes']} times"
    )
    print(
        f"RSS: {result['rss_after_warmup_mb']:.1f} MB after the {result['warmup_s']:g} s warm-up,"
        f" {result['rss_end_mb']:.1f} MB at the end: growth {growth:+.1f} MB (goal < 2 MB);"
        f" max {result['rss_max_mb']:.1f} MB; slope {result['rss_slope_mb_per_hour']:+.1f} MB/h"
    )
    print(
        f"cycle lateness p99 {result['lateness_p99_ms']:.1f} ms; event-loop lag p99 "
        f"{result['loop_lag_p99_ms']:.1f} ms, {result['loop_lag_samples_over_50ms']:.0f} samples"
        " over 50 ms (after the warm-up)"
    )
    print(
        f"alerts received: {received.get('firing', 0)} firing, {received.get('resolved', 0)}"
        f" resolved in {received.get('messages', 0)} messages (vigild counted"
        f" {result['vigild_notifications_sent']:.0f} sent)"
    )
    print(
        f"  of the flapping targets: {result['received_flapping']['firing']} firing,"
        f" {result['received_flapping']['resolved']} resolved; expected"
        f" {result['expected_firing']} and {result['expected_resolved']}:"
        f" {'ok' if not any(mismatch.values()) else f'MISMATCH {mismatch}'}"
    )
    print(
        f"  of {others['targets']} other targets, whose probes failed: {others['firing']} firing,"
        f" {others['resolved']} resolved; most said {others['why']}"
    )
    print(
        f"vigild exit code {result['exit_code']}, error lines in its log: {result['error_lines']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
