"""Where vigild's CPU goes per probe: ``py-spy record`` on ``vigild run`` against nginx.

Starts nginx as compare.py does, then ``vigild run`` with N http targets, lets
it warm up for one interval, and records ``--seconds`` with py-spy (``pip
install py-spy``) in raw (collapsed-stack) format. Prints the share of samples
by leaf function and by "package" frame on the stack, and writes the raw file
for flame-graph tools (``--svg`` writes py-spy's own SVG as well).

    .venv/bin/python bench/profile.py --targets 2000 --interval 5 --seconds 30
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from compare import Nginx
from run import free_port, scheduled_at, spawn, stop, vigild_config, vigild_env

BUCKETS = (
    ("vigild/probes/http", "vigild http probe"),
    ("vigild/storage", "vigild storage (SQLite)"),
    ("vigild/alerting", "vigild alerting"),
    ("vigild/daemon/metrics", "vigild metrics"),
    ("vigild/daemon/history", "vigild status history"),
    ("vigild/daemon", "vigild daemon (cycle, board)"),
    ("vigild/", "vigild, other"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "yarl"),
    ("multidict/", "multidict"),
    ("asyncio/", "asyncio (event loop)"),
    ("uvloop", "uvloop (event loop)"),
    ("json/", "json"),
    ("orjson", "orjson"),
    ("structlog/", "structlog"),
    ("sqlite3", "sqlite3"),
)


def owner(stack: str) -> str:
    """The innermost frame that belongs to one of BUCKETS: who the sample is charged to."""
    for frame in reversed(stack.split(";")):
        for marker, name in BUCKETS:
            if marker in frame:
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description="py-spy on vigild run against nginx.")
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--vigild-python", default=sys.executable)
    parser.add_argument("--out", type=Path, default=Path("vigild-profile.txt"))
    parser.add_argument("--svg", type=Path, help="also write py-spy's flame graph here")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

    with tempfile.TemporaryDirectory(prefix="vigild-profile-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(workdir)
        proc = None
        try:
            settings = SimpleNamespace(targets=args.targets, interval=args.interval, hung_every=0)
            listen = f"127.0.0.1:{free_port()}"
            config = vigild_config(SimpleNamespace(base=nginx.base), settings, workdir, listen)
            log = workdir / "vigild.log"
            cmd = [args.vigild_python, "-m", "vigild", "run", "--config", str(config)]
            proc = spawn(cmd, stderr=log.open("w"), env=vigild_env(), cwd=workdir)
            t0 = scheduled_at(log, proc, timeout=180)
            time.sleep(max(0.0, t0 + args.interval - 0.5 - time.time()))
            record = [pyspy, "record", "--pid", str(proc.pid), "--rate", str(args.rate)]
            record += ["--duration", str(args.seconds), "--nonblocking"]
            subprocess.run([*record, "--format", "raw", "-o", str(args.out)], check=True)
            if args.svg:
                subprocess.run([*record, "-o", str(args.svg)], check=True)
        finally:
            if proc is not None:
                stop(proc)
            stop(nginx.proc)

    by_leaf: Counter[str] = Counter()
    by_owner: Counter[str] = Counter()
    for line in args.out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        by_leaf[stack.rsplit(";", 1)[-1]] += int(count)
        by_owner[owner(stack)] += int(count)
    total = sum(by_owner.values())
    print(f"{total} samples of {args.targets} targets every {args.interval:g} s ({args.out})")
    print("\nby the innermost package on the stack:")
    for name, count in by_owner.most_common():
        print(f"  {count / total * 100:5.1f} %  {name}")
    print(f"\ntop {args.top} leaf functions:")
    for leaf, count in by_leaf.most_common(args.top):
        print(f"  {count / total * 100:5.1f} %  {leaf}")


if __name__ == "__main__":
    main()
