"""Notification latency: from the moment a cycle's message is due to its arrival at a receiver.

DESIGN.md's budget: p99 under 200 ms, with 1,000 targets watched. ``vigild
run`` watches ``--targets`` (1,000) http targets every ``--interval``: all on
``target_server.py`` (always healthy) but one, ``flip``, served by this driver,
which answers 200 and 503 in turn, so every cycle opens or resolves its alert.
``flip`` is the first target, so its transition comes while the cycle's other
probes are still in flight. A webhook notifier posts each transition to a
receiver in this driver, which timestamps arrivals. All clocks are
``time.time()`` on one machine.

A message is due at the earlier of two moments: ``group_wait`` after the
cycle's first transition, or when the cycle's probes are all done. Two
scenarios, one for each: ``group_wait = 0s`` (due at the transition, the
busiest moment of a cycle) and ``group_wait = 1s``, the default (due when the
probes are done: a 1,000-target cycle is well under a second). Two figures
for each notification:

- **from vigild's log** (the estimate): vigild logs "alert transition" when it
  evaluates the transition and "notification queued" right after the flush
  committed the message. The due moment is the earlier of transition +
  ``group_wait`` and the flush (which runs when the probes are done). With
  ``group_wait = 1s`` this leaves out the flush's own SQLite commit (about a
  millisecond); with ``0s`` it is exact to the microsecond.
- **upper bound** (from what this driver saw): each probe completes after its
  request arrived, so the due moment is no earlier than min(flip request +
  ``group_wait``, the last request of the cycle). target_server.py times every
  path (``--marks``, at most 100,000 arrivals: a long run at 10,000 targets
  runs out, and its later bounds fall back to the flip request); cycles are
  told apart by the quiet between them. This also counts the time a busy event
  loop takes to read the probe's answer.

By default the receiver closes each connection after answering, so every
notification opens a new one, as a real one does: notifications are rare, and
aiohttp drops an idle pooled connection after 15 s. ``--keepalive`` lets the
receiver keep it. The first ``--warmup`` notifications of a scenario are left
out. p99 is by nearest rank, so with fewer than 100 samples it is the worst.

    .venv/bin/python bench/notify_latency.py                      # ~5 min
    .venv/bin/python bench/notify_latency.py --scenarios 0 --transitions 100 --keepalive
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from run import VIGILD, TargetServer, free_port, percentile, spawn, stop
from target_server import MAX_MARKS

BUDGET_MS = 200.0
QUIET = 0.2
"""A gap between requests this long (in intervals) separates two cycles."""


@dataclass
class Sample:
    status: str
    logged_ms: float
    upper_ms: float


@dataclass
class Outcome:
    scenario: str
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class Driver:
    """The flip target and the receiver, on this process's event loop."""

    def __init__(
        self, wanted: int, vigild: subprocess.Popen[str], deadline: float, keepalive: bool
    ) -> None:
        self.wanted = wanted
        self.vigild = vigild
        self.deadline = deadline
        self.keepalive = keepalive
        self.flips: list[tuple[float, int]] = []
        """(arrival, status answered) of each request for the flip target."""
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.done = asyncio.Event()

    async def flip(self, _request: web.Request) -> web.Response:
        at = time.time()
        status = 503 if len(self.flips) % 2 else 200
        self.flips.append((at, status))
        return web.json_response({"status": "ok" if status == 200 else "down"}, status=status)

    async def receive(self, request: web.Request) -> web.Response:
        at = time.time()
        self.arrivals.append((at, await request.json()))
        if len(self.arrivals) >= self.wanted:
            self.done.set()
        response = web.Response(text="ok")
        if not self.keepalive:
            response.force_close()
        return response

    async def serve(self, flip_sock: socket.socket, receiver_sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get("/flip", self.flip)
        app.router.add_post("/hook", self.receive)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, flip_sock).start()
        await web.SockSite(runner, receiver_sock).start()
        try:
            while not self.done.is_set():
                if self.vigild.poll() is not None:
                    raise RuntimeError(f"vigild exited with {self.vigild.returncode}")
                if time.time() > self.deadline:
                    raise RuntimeError(
                        f"only {len(self.arrivals)} of {self.wanted} notifications in time"
                    )
                await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()


def vigild_config(
    workdir: Path, args: Any, group_wait: float, *, server: TargetServer, flip: str, hook: str
) -> Path:
    lines = [
        "[daemon]",
        f'interval = "{args.interval:g}s"',
        f'listen = "127.0.0.1:{free_port()}"',
        f'state_path = "{workdir / "state.db"}"',
        'log_format = "json"',
        "concurrency = 100",
        "",
        "[alerting]",
        f'group_wait = "{group_wait:g}s"',
        "flap_limit = 1000000",  # a transition every cycle is the point here, not flapping
        "",
        "[[targets]]",
        'name = "flip"',
        'type = "http"',
        f'url = "{flip}"',
    ]
    for n in range(1, args.targets):
        lines += ["", "[[targets]]", f'name = "t{n:04d}"', 'type = "http"']
        lines.append(f'url = "{server.base}/health/{n}"')
    lines += ["", "[[notifiers]]", 'name = "bench"', 'type = "webhook"', f'url = "{hook}"']
    path = workdir / "vigild.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def logged(log: Path, name: str) -> list[tuple[float, dict[str, Any]]]:
    """(time, event) of vigild's log lines called ``name`` about the flip target."""
    found = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == name and event.get("target") == "flip":
            found.append((datetime.fromisoformat(event["timestamp"]).timestamp(), event))
    return found


def measure(scenario: str, group_wait: float, args: Any, workdir: Path) -> Outcome:
    wanted = args.warmup + args.transitions
    budget = (wanted + 10) * args.interval + 60
    # Every path timed, so the last request of each cycle is known.
    server = TargetServer(range(1, args.targets), 2, budget + 30, workdir / "server.log")
    flip_sock, receiver_sock = bound_socket(), bound_socket()
    flip = f"http://127.0.0.1:{port_of(flip_sock)}/flip"
    hook = f"http://127.0.0.1:{port_of(receiver_sock)}/hook"
    config = vigild_config(workdir, args, group_wait, server=server, flip=flip, hook=hook)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGILD_")}
    log = workdir / "vigild.log"
    vigild = spawn(
        [str(VIGILD), "run", "--config", str(config)], stderr=log.open("w"), env=env, cwd=workdir
    )
    driver = Driver(wanted, vigild, time.time() + budget, args.keepalive)
    try:
        asyncio.run(driver.serve(flip_sock, receiver_sock))
    finally:
        code = stop(vigild)
        marks = [at for _path, at in server.stats()["marks"]]
        stop(server.proc)
    outcome = analyse(
        scenario,
        group_wait,
        args,
        driver=driver,
        marks=marks,
        transitions=[at for at, _ in logged(log, "alert transition")],
        queued=logged(log, "notification queued"),
    )
    outcome.notes.append(f"vigild exit code {code}")
    return outcome


def cycles_of(requests: list[float], interval: float) -> list[list[float]]:
    """Request arrivals grouped by cycle: a cycle is a burst, cycles are split by quiet."""
    cycles: list[list[float]] = []
    for at in sorted(requests):
        if cycles and at - cycles[-1][-1] < QUIET * interval:
            cycles[-1].append(at)
        else:
            cycles.append([at])
    return cycles


def analyse(
    scenario: str,
    group_wait: float,
    args: Any,
    *,
    driver: Driver,
    marks: list[float],
    transitions: list[float],
    queued: list[tuple[float, dict[str, Any]]],
) -> Outcome:
    outcome = Outcome(scenario)
    flips = driver.flips
    cycles = cycles_of([*marks, *(at for at, _ in flips)], args.interval)
    starts = [cycle[0] for cycle in cycles]
    if min(len(transitions), len(queued)) < len(driver.arrivals):
        raise RuntimeError(
            f"{len(driver.arrivals)} arrivals, but {len(transitions)} transitions "
            f"and {len(queued)} queued messages logged"
        )
    lengths: list[float] = []
    for index, (arrival, body) in enumerate(driver.arrivals):
        [alert] = body["alerts"]
        status = alert["status"]
        # One notifier, one alert: every transition is one message, delivered in order.
        queued_at, event = queued[index]
        if alert["labels"]["target"] != "flip" or (event["kind"] == "resolved") != (
            status == "resolved"
        ):
            raise RuntimeError(f"arrival {index} ({status}) does not match its queued line")
        flip_at, answered = max((f for f in flips if f[0] < arrival), default=(0.0, 0))
        if (answered == 503) != (status == "firing"):
            raise RuntimeError(f"arrival {index} ({status}) follows a {answered} answer")
        cycle = cycles[bisect.bisect_right(starts, flip_at) - 1]
        if sum(1 for at, _ in flips if cycle[0] <= at <= cycle[-1]) != 1:
            raise RuntimeError(f"cycles ran into each other around arrival {index}")
        lengths.append(cycle[-1] - cycle[0])
        due_logged = min(transitions[index] + group_wait, queued_at)
        due_at_least = min(flip_at + group_wait, cycle[-1])
        if index >= args.warmup:
            outcome.samples.append(
                Sample(status, (arrival - due_logged) * 1000, (arrival - due_at_least) * 1000)
            )
    outcome.notes.append(
        f"cycle, first to last request: median {statistics.median(lengths) * 1000:.0f} ms, "
        f"max {max(lengths) * 1000:.0f} ms"
    )
    if len(marks) >= MAX_MARKS - args.targets:
        outcome.notes.append("the target server ran out of marks: later upper bounds are looser")
    return outcome


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {percentile(values, 0.99):.1f} / {max(values):.1f}"


def report(outcomes: list[Outcome], args: Any) -> str:
    connections = "kept alive" if args.keepalive else "a new connection per notification"
    rows = [
        f"{args.targets} targets every {args.interval:g} s, one of them flipping every cycle; "
        f"{connections}; {os.cpu_count()} cores",
        "",
        "| group_wait | n | from vigild's log, ms p50 / p99 / max "
        "| upper bound, ms p50 / p99 / max | budget: p99 < 200 ms |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        estimate = [s.logged_ms for s in o.samples]
        upper = [s.upper_ms for s in o.samples]
        if percentile(upper, 0.99) < BUDGET_MS:
            verdict = "ok"
        elif percentile(estimate, 0.99) < BUDGET_MS:
            verdict = "ok by the estimate; the upper bound is over"
        else:
            verdict = "**over**"
        rows.append(
            f"| {o.scenario} | {len(o.samples)} | {spread(estimate)} | {spread(upper)} "
            f"| {verdict} |"
        )
    for o in outcomes:
        rows += [f"\ngroup_wait {o.scenario}:", *(f"- {note}" for note in o.notes)]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Latency from a due message to its receiver.")
    parser.add_argument("--targets", type=int, default=1000, help="watched, the flip one too")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--transitions", type=int, default=60, help="measured per scenario")
    parser.add_argument("--warmup", type=int, default=4, help="notifications left out")
    parser.add_argument(
        "--scenarios", default="0,1", help="comma-separated group_wait values, in seconds"
    )
    parser.add_argument(
        "--keepalive", action="store_true", help="the receiver keeps connections open"
    )
    parser.add_argument("--json", type=Path, help="also write every sample here")
    args = parser.parse_args()
    if args.transitions < 50:
        parser.error("--transitions: at least 50, or p99 says little")

    outcomes = []
    for text in args.scenarios.split(","):
        group_wait = float(text)
        print(f"group_wait {group_wait:g}s …", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="vigild-notify-") as tmp:
            outcomes.append(measure(f"{group_wait:g}s", group_wait, args, Path(tmp)))
    print(report(outcomes, args))
    if args.json:
        data = {o.scenario: [vars(s) for s in o.samples] for o in outcomes}
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, **data}))


if __name__ == "__main__":
    main()
