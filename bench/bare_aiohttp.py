"""The baseline of DESIGN.md's Budget: a bare aiohttp loop making vigild's requests.

One ClientSession with keep-alive and vigild's connector limit (100), the same
N URLs every INTERVAL seconds, each body read fully, and nothing else.

- default (burst): every interval all N requests fire together, through 100
  workers pulling from one iterator: the way a vigild cycle fires.
- ``--paced``: requests spread evenly over the interval (333 req/s for
  10,000 at 30 s), the way DESIGN.md's reference numbers were measured.
- ``--new-connection``: no keep-alive, one TCP connection per request.
- ``--template``: the URLs, ``{n}`` the target's number (compare.py drives
  blackbox_exporter's ``/probe`` this way); default ``BASE/health/{n}``.

    python bench/bare_aiohttp.py --base http://127.0.0.1:18080 --targets 10000 --interval 30

Prints one JSON line at the first tick (``{"t0": <unix time>}``, ticks are
t0 + k * interval) and one with totals at the end; stops after ``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator

import aiohttp

CONCURRENCY = 100  # vigild's `[daemon] concurrency` default and connector limit


class Loop:
    def __init__(self, session: aiohttp.ClientSession, urls: list[str]) -> None:
        self.session = session
        self.urls = urls
        self.done = 0
        self.failed = 0

    async def fetch(self, url: str) -> None:
        try:
            async with self.session.get(url) as resp:
                await resp.read()
            self.done += 1
        except (aiohttp.ClientError, TimeoutError):
            self.failed += 1

    async def burst(self, t0: float, interval: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        tick = t0
        while tick < end:
            await asyncio.sleep(tick - loop.time())
            pending = iter(self.urls)
            await asyncio.gather(*(self._worker(pending) for _ in range(CONCURRENCY)))
            # An overrun skips the ticks it covered, as APScheduler's coalesce does.
            while tick <= loop.time():
                tick += interval

    async def _worker(self, pending: Iterator[str]) -> None:
        for url in pending:
            await self.fetch(url)

    async def paced(self, t0: float, interval: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        step = interval / len(self.urls)
        slots = asyncio.Semaphore(CONCURRENCY)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        i = 0
        while (at := t0 + i * step) < end:
            await asyncio.sleep(at - loop.time())  # one wake-up per request: that is pacing
            await slots.acquire()
            task = asyncio.create_task(self.fetch(self.urls[i % len(self.urls)]))
            running.add(task)
            task.add_done_callback(finished)
            i += 1
        await asyncio.gather(*running)


async def run(
    template: str, targets: int, interval: float, duration: float, *, paced: bool, close: bool
) -> None:
    urls = [template.format(n=n) for n in range(targets)]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONCURRENCY, force_close=close),
        cookie_jar=aiohttp.DummyCookieJar(),  # as vigild's session; also the cheaper baseline
        timeout=aiohttp.ClientTimeout(total=min(10.0, interval)),  # vigild's default timeout
    )
    async with session:
        bare = Loop(session, urls)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        print(json.dumps({"t0": time.time()}), flush=True)
        run_mode = bare.paced if paced else bare.burst
        await run_mode(t0, interval, t0 + duration)
        await asyncio.sleep(t0 + duration - loop.time())  # idle to the end, as a daemon would
    print(json.dumps({"done": bare.done, "failed": bare.failed}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare aiohttp baseline for vigild's budget.")
    parser.add_argument("--base", help="target server, e.g. http://127.0.0.1:PORT")
    parser.add_argument("--template", help="URL with {n} for the target number (instead of --base)")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=150.0, help="stop after this long")
    parser.add_argument("--paced", action="store_true", help="spread requests over the interval")
    parser.add_argument("--new-connection", action="store_true", help="no keep-alive")
    args = parser.parse_args()
    if (args.base is None) == (args.template is None):
        parser.error("give one of --base and --template")
    template = args.template or args.base + "/health/{n}"
    asyncio.run(
        run(
            template,
            args.targets,
            args.interval,
            args.duration,
            paced=args.paced,
            close=args.new_connection,
        )
    )


if __name__ == "__main__":
    main()
