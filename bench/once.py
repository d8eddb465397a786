"""``vigild --once`` with 10 fast http targets: wall time, and what its imports cost.

Hyperfine-like: one warm-up run (so .pyc files exist), then ``--runs`` timed
runs, min / median / max, next to a bare ``python -c pass`` for scale. Then
one run under ``python -X importtime``: self time by top-level package, and
the costliest imports made directly by vigild's own modules (what lazy
imports could move off the ``--once`` path). ``phase_breakdown`` (used by
compare.py's plot) splits a run's wall time into interpreter start-up,
imports, config, opening the state file, the probes and closing.

    .venv/bin/python bench/once.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from run import VIGILD, TargetServer, free_port, stop, vigild_env

TARGETS = 10

# `vigild --once`'s own path (cli._once), with Runtime's steps timed where they are.
PHASES = """
import time
started = time.perf_counter()
import gc
gc.disable()  # as cli.main does for --once, until _once freezes the heap
import json, sys
from pathlib import Path
from vigild import cli, assembly
from vigild.daemon import once, runtime
imported = time.perf_counter()
config = assembly.load(Path(sys.argv[1]), check_notifier_urls=False)
loaded = time.perf_counter()
spent = {}
def timed(name, step):
    async def wrapper(*args, **kwargs):
        at = time.perf_counter()
        try:
            return await step(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - at
    return wrapper
runtime.Runtime.open = timed("store open", runtime.Runtime.open)
runtime.Runtime.run_cycle = timed("probes", runtime.Runtime.run_cycle)
runtime.Runtime.close = timed("store close", runtime.Runtime.close)
cli._once(config, "text")  # the report goes to stdout before our line
ended = time.perf_counter()
phases = {"imports": imported - started, "config": loaded - imported, **spent}
phases["report, rest"] = ended - started - sum(phases.values())
print(json.dumps(phases))
"""


@dataclass
class Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=False, env=vigild_env()
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}")
    return times


def config_for(server: TargetServer, workdir: Path) -> Path:
    config = workdir / "vigild.toml"
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{free_port()}"',
        f'state_path = "{workdir / "state.db"}"',
    ]
    for n in range(TARGETS):
        lines += ["[[targets]]", f'name = "t{n}"', 'type = "http"']
        lines.append(f'url = "{server.base}/health/{n}"')
    config.write_text("\n".join(lines) + "\n")
    return config


def phase_breakdown(runs: int, python: str = sys.executable) -> dict[str, float]:
    """Median ms per phase of ``vigild --once`` on 10 targets, after one warm-up run."""
    env = vigild_env()
    found: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="vigild-once-") as tmp:
        workdir = Path(tmp)
        server = TargetServer((), workers=1, max_seconds=600, log=workdir / "server.log")
        try:
            config = config_for(server, workdir)
            for run in range(runs + 1):
                started = time.perf_counter()
                done = subprocess.run(
                    [python, "-c", PHASES, str(config)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                    env=env,
                )
                wall = time.perf_counter() - started
                phases = json.loads(done.stdout.splitlines()[-1])
                phases = {"interpreter": wall - sum(phases.values()), **phases}
                for name, seconds in phases.items():
                    if run:  # the first one compiles .pyc files
                        found.setdefault(name, []).append(seconds * 1000)
        finally:
            stop(server.proc)
    return {name: round(statistics.median(ms), 1) for name, ms in found.items()}


def parse_importtime(stderr: str) -> list[Import]:
    imports = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        # The name is indented two spaces per level of nesting, after one separator space.
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        imports.append(Import(name.strip(), int(self_us), int(cumulative_us), depth))
    return imports


def direct_imports_of_vigild(imports: list[Import]) -> list[tuple[Import, str]]:
    """(import, vigild module that made it) for every non-vigild import a vigild module made."""
    # -X importtime prints a module after its children: children wait here for their parent.
    waiting: dict[int, list[Import]] = defaultdict(list)
    found = []
    for imp in imports:
        children = waiting.pop(imp.depth + 1, [])
        if imp.module.startswith("vigild"):
            found += [(c, imp.module) for c in children if not c.module.startswith("vigild")]
        waiting[imp.depth].append(imp)
    return sorted(found, key=lambda pair: -pair[0].cumulative_us)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description="Wall time and import cost of vigild --once.")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--phases", action="store_true", help="only the wall-time breakdown")
    args = parser.parse_args()
    if args.phases:
        print(json.dumps(phase_breakdown(args.runs)))
        return

    with tempfile.TemporaryDirectory(prefix="vigild-once-") as tmp:
        workdir = Path(tmp)
        server = TargetServer((), workers=1, max_seconds=600, log=workdir / "server.log")
        try:
            config = config_for(server, workdir)
            once = [str(VIGILD), "--once", "--config", str(config)]
            wall_times(once, 1)  # warm-up: compiles .pyc, creates the state file
            times = wall_times(once, args.runs)
            python = wall_times([sys.executable, "-c", "pass"], args.runs)
            profiled = subprocess.run(
                [sys.executable, "-X", "importtime", *once],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=vigild_env(),
            )
        finally:
            stop(server.proc)

    print(f"vigild --once, {TARGETS} http targets, {args.runs} runs")
    print(
        f"  wall: min {ms(min(times))}, median {ms(statistics.median(times))}, "
        f"max {ms(max(times))} (python -c pass: median {ms(statistics.median(python))})"
    )
    imports = parse_importtime(profiled.stderr)
    total = sum(i.self_us for i in imports) / 1e6
    print(f"  imports: {ms(total)} in {len(imports)} modules (one run under -X importtime)")

    by_package: dict[str, int] = defaultdict(int)
    for imp in imports:
        by_package[imp.module.split(".")[0]] += imp.self_us
    print(f"\nTop {args.top} top-level packages by import self time:")
    for package, us in sorted(by_package.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {us / 1000:7.1f} ms  {package}")

    print(f"\nTop {args.top} modules by import self time:")
    for imp in sorted(imports, key=lambda i: -i.self_us)[: args.top]:
        print(f"  {imp.self_us / 1000:7.1f} ms  {imp.module}")

    print(f"\nTop {args.top} imports made directly by vigild modules (cumulative):")
    for imp, importer in direct_imports_of_vigild(imports)[: args.top]:
        print(f"  {imp.cumulative_us / 1000:7.1f} ms  {imp.module:<40} from {importer}")


if __name__ == "__main__":
    main()
