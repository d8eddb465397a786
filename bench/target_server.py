"""A fast benchmark target: ``GET /health/{n}`` → 200 ``{"status":"ok"}``;
``GET /hang/{n}`` never answers (a hung target; not counted in the hits).

Runs as its own processes so its CPU is never counted against the client
being measured: ``--workers`` processes each bind the port with SO_REUSEPORT
and the kernel spreads connections over them. The parent serves
``GET /stats`` on a control port: the total hit count, and the arrival times
of the paths named by ``--marks`` (the first and last target of a cycle,
which time the cycle's start and its length).

    python bench/target_server.py --port 18080 --workers 2 --marks 0,9999

Prints one JSON line (ports) once every worker listens; stops on SIGTERM or
SIGINT, or after ``--max-seconds`` whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from typing import Any

from aiohttp import web

BODY = b'{"status":"ok"}'
MAX_MARKS = 100_000  # bounded: at one mark per cycle this outlasts any run


class Shared:
    """Counters in shared memory, written by the workers, read by the parent."""

    def __init__(self, ctx: Any, workers: int) -> None:
        # One slot per worker: no lock on the hot path.
        self.hits: SynchronizedArray[int] = ctx.Array("Q", workers, lock=False)
        self.mark_times: SynchronizedArray[float] = ctx.Array("d", MAX_MARKS, lock=False)
        self.mark_paths: SynchronizedArray[int] = ctx.Array("q", MAX_MARKS, lock=False)
        self.mark_count: Synchronized[int] = ctx.Value("q", 0)

    def mark(self, path: int, at: float) -> None:
        with self.mark_count.get_lock():
            i = self.mark_count.value
            if i < MAX_MARKS:
                self.mark_times[i], self.mark_paths[i] = at, path
                self.mark_count.value = i + 1

    def stats(self) -> dict[str, Any]:
        count = self.mark_count.value
        marks = list(zip(self.mark_paths[:count], self.mark_times[:count], strict=True))
        return {"hits": sum(self.hits[:]), "marks": marks}


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def worker(port: int, slot: int, shared: Shared, marked: frozenset[str], ready: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    hits = shared.hits

    async def health(request: web.Request) -> web.Response:
        hits[slot] += 1
        n = request.match_info["n"]
        if n in marked:
            shared.mark(int(n), time.time())
        return web.Response(body=BODY, content_type="application/json")

    async def hang(_request: web.Request) -> web.Response:
        # Not counted in hits: they measure the healthy targets' probes.
        await asyncio.sleep(3600)
        return web.Response(body=BODY, content_type="application/json")

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/health/{n}", health)
        app.router.add_get("/hang/{n}", hang)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, listening_socket(port), backlog=1024).start()
        ready.put(slot)
        # The parent's sentinel becomes readable when it dies: an orphan stops by itself.
        parent_gone = asyncio.Event()
        parent = multiprocessing.parent_process()
        assert parent is not None
        asyncio.get_running_loop().add_reader(parent.sentinel, parent_gone.set)
        await parent_gone.wait()

    asyncio.run(serve())


async def control(shared: Shared, port: int, target_port: int, max_seconds: float) -> None:
    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(shared.stats())

    app = web.Application()
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(json.dumps({"port": target_port, "control_port": bound}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        print("target_server: --max-seconds reached, stopping", file=sys.stderr)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast benchmark target on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--marks", default="0", help="comma-separated n whose hits are timed")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("fork")  # shared memory is inherited, not pickled
    shared = Shared(ctx, args.workers)
    marked = frozenset(args.marks.split(","))
    ready = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(args.port, slot, shared, marked, ready), daemon=True)
        for slot in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=30)
        asyncio.run(control(shared, args.control_port, args.port, args.max_seconds))
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(5)


if __name__ == "__main__":
    main()
