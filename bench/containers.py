"""The container probe's budget: 50 containers every 30 s under 1 % of one core.

Starts the Docker-API-shaped server of the tests (tests/docker_api.py) in its
own process, on a unix socket, with 50 running containers whose CPU counters
advance every second. Then runs ``vigild run`` three times against it, each
measured over whole intervals after one interval of warm-up:

- ``idle``: no targets at all, vigild's own floor (scheduler, server, GC);
- ``labels``: one target selecting the 50 containers by a compose label;
- ``names``: 50 targets, one container each.

Each side reports vigild's CPU (user+sys, psutil) over the window as a share
of one core, and the same less the ``idle`` floor: what the probes cost. A
side counts only if ``/api/status`` then shows every container up with a
``cpu_percent`` (the server's counters make it 5.0).

    .venv/bin/python bench/containers.py                             # 30 s: ~8 min
    .venv/bin/python bench/containers.py --interval 5 --intervals 12 # quick: ~4 min
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from run import BENCH, VIGILD, cpu_seconds, free_port, sleep_until, spawn, stop

SERVER = BENCH.parent / "tests" / "docker_api.py"
READY_WAIT = 20.0


@dataclass
class Side:
    name: str
    cpu_s: float
    wall_s: float
    cycles: int
    containers_ok: int
    server_core_pct: float

    @property
    def core_pct(self) -> float:
        return self.cpu_s / self.wall_s * 100


def config(side: str, engine: str, count: int, interval: float, directory: Path) -> Path:
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{free_port()}"',
        f"state_path = {json.dumps(str(directory / f'{side}.db'))}",
        f'interval = "{interval:g}s"',
        "",
    ]
    if side == "labels":
        lines += [
            "[[targets]]",
            'name = "app"',
            'type = "container"',
            'container_labels = { "com.docker.compose.service" = "app" }',
            f"engine = {json.dumps(engine)}",
            "",
        ]
    elif side == "names":
        for i in range(count):
            lines += [
                "[[targets]]",
                f'name = "app-{i}"',
                'type = "container"',
                f'container = "app-{i}"',
                f"engine = {json.dumps(engine)}",
                "",
            ]
    path = directory / f"{side}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def wait_ready(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vigild exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("vigild did not become ready")


def run_side(
    side: str, engine: str, server: psutil.Process, args: argparse.Namespace, directory: Path
) -> Side:
    path = config(side, engine, args.containers, args.interval, directory)
    listen = next(line for line in path.read_text().splitlines() if line.startswith("listen"))
    base = "http://" + listen.split('"')[1]
    log = (directory / f"{side}.log").open("w")
    proc = spawn(
        [str(VIGILD), "run", "--config", str(path), "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_ready(base, proc)
        child = psutil.Process(proc.pid)
        # The first cycle runs at once; the window opens just before the second one's tick
        # and spans whole intervals, so it holds whole cycles only.
        start = time.time() + args.interval - min(1.0, 0.05 * args.interval)
        end = start + args.intervals * args.interval
        sleep_until(start, proc)
        cpu0, server0, wall0 = cpu_seconds(child), cpu_seconds(server), time.time()
        sleep_until(end, proc)
        cpu1, server1, wall1 = cpu_seconds(child), cpu_seconds(server), time.time()
        status = get_json(base + "/api/status")
    finally:
        stop(proc)
        log.close()
    ok = sum(
        1
        for t in status["targets"]
        if t["up"] and t["observation"]["metrics"].get("cpu_percent") == 5.0
    )
    return Side(
        side,
        cpu1 - cpu0,
        wall1 - wall0,
        args.intervals,
        ok,
        (server1 - server0) / (wall1 - wall0) * 100,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--intervals", type=int, default=4, help="measured intervals per side")
    parser.add_argument("--sides", default="idle,labels,names")
    args = parser.parse_args()
    sides = args.sides.split(",")
    budget = len(sides) * (args.intervals + 2) * args.interval + 120

    with tempfile.TemporaryDirectory(prefix="vigild-bench-") as tmp:
        directory = Path(tmp)
        socket_path = directory / "engine.sock"
        cmd = [sys.executable, str(SERVER), "--socket", str(socket_path)]
        cmd += ["--containers", str(args.containers), "--max-seconds", str(budget)]
        server_log = (directory / "server.log").open("w")
        server = spawn(cmd, stdout=subprocess.PIPE, stderr=server_log)
        try:
            assert server.stdout is not None
            if not server.stdout.readline().startswith("ready"):
                raise RuntimeError("the engine server did not start")
            engine = f"unix://{socket_path}"
            results = [
                run_side(side, engine, psutil.Process(server.pid), args, directory)
                for side in sides
            ]
        finally:
            stop(server)
            server_log.close()

    floor = next((r for r in results if r.name == "idle"), None)
    print(
        f"{args.containers} containers every {args.interval:g} s, "
        f"{args.intervals} intervals measured per side"
    )
    print(
        f"{'side':<8} {'containers ok':>13} {'CPU s':>8} {'% core':>8} "
        f"{'less idle':>10} {'ms CPU/cycle':>13} {'server % core':>14}"
    )
    for r in results:
        extra = r.cpu_s - floor.cpu_s * r.wall_s / floor.wall_s if floor else float("nan")
        above = extra / r.wall_s * 100
        print(
            f"{r.name:<8} {r.containers_ok:>13} {r.cpu_s:>8.3f} {r.core_pct:>8.3f} "
            f"{above:>10.3f} {extra / r.cycles * 1000:>13.1f} {r.server_core_pct:>14.2f}"
        )
    if args.interval != 30.0 and floor is not None:
        print("at 30 s (the same CPU per cycle, spread over 30 s):")
        for r in results:
            if r.name == "idle":
                continue
            extra = r.cpu_s - floor.cpu_s * r.wall_s / floor.wall_s
            print(f"  {r.name:<8} {extra / r.cycles / 30 * 100:.3f} % of one core above idle")


if __name__ == "__main__":
    main()
