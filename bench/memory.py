"""Where vigild's memory goes: tracemalloc snapshots of a daemon watching N targets.

Runs the daemon in this process (``Daemon(config).serve()``, as ``vigild run``
does) against nginx (as compare.py starts it), with tracemalloc on from
before vigild is imported. Snapshots: after the imports, after the config is
loaded, and after ``--cycles`` cycles. Prints what each step added, by file
(and the top lines), plus the process's RSS at each point. tracemalloc
counts Python allocations only (not SQLite's page cache, not the
interpreter's own arenas' slack), and slows the run: the figures are for
"where", RSS is the "how much".

    .venv/bin/python bench/memory.py --targets 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

from compare import Nginx, rss_mb
from run import REPO, free_port, stop, vigild_config

FRAMES = 12


def top(diff: list[tracemalloc.StatisticDiff], count: int) -> list[str]:
    total = sum(d.size_diff for d in diff)
    rows = [f"    {total / 2**20:7.2f} MB in all"]
    for stat in diff[:count]:
        frame = stat.traceback[0]
        where = frame.filename.replace(str(REPO) + "/", "").replace(sys.prefix + "/", "")
        rows.append(
            f"    {stat.size_diff / 2**20:7.2f} MB {stat.count_diff:+8d} blocks  {where}"
            + (f":{frame.lineno}" if frame.lineno else "")
        )
    return rows


def report(name: str, before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> None:
    print(f"\n{name}: by file")
    print("\n".join(top(after.compare_to(before, "filename"), n)))
    print(f"{name}: by line")
    print("\n".join(top(after.compare_to(before, "lineno"), n)))


def main() -> None:
    parser = argparse.ArgumentParser(description="tracemalloc diff of vigild at N targets.")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.path.insert(0, str(REPO))
    rss = {"start": rss_mb(os.getpid())}
    tracemalloc.start(FRAMES)
    start = tracemalloc.take_snapshot()

    from vigild.assembly import load
    from vigild.daemon.app import Daemon

    imported = tracemalloc.take_snapshot()
    rss["imports"] = rss_mb(os.getpid())
    with tempfile.TemporaryDirectory(prefix="vigild-memory-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(workdir)
        try:
            settings = SimpleNamespace(targets=args.targets, interval=args.interval, hung_every=0)
            listen = f"127.0.0.1:{free_port()}"
            path = vigild_config(SimpleNamespace(base=nginx.base), settings, workdir, listen)
            config = load(path)
            loaded = tracemalloc.take_snapshot()
            rss["config"] = rss_mb(os.getpid())

            async def run() -> tracemalloc.Snapshot:
                daemon = Daemon(config)
                serving = asyncio.create_task(daemon.serve())
                for _ in range(3000):  # up to 5 min of start-up
                    if daemon.ready:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(args.cycles * args.interval + 0.5)
                snapshot = tracemalloc.take_snapshot()
                daemon.stop()
                await serving
                return snapshot

            started = time.monotonic()
            running = asyncio.run(run())
            rss["running"] = rss_mb(os.getpid())
        finally:
            stop(nginx.proc)

    print(f"vigild in-process, {args.targets} targets, {args.cycles} cycles of {args.interval:g} s")
    print(f"(ran {time.monotonic() - started:.0f} s under tracemalloc)")
    print("RSS MB: " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()))
    report("imports", start, imported, args.top)
    report("config", imported, loaded, args.top)
    report(f"running ({args.cycles} cycles)", loaded, running, args.top)


if __name__ == "__main__":
    main()
