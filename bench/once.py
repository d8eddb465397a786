"""``vigild --once`` with 10 fast http targets: wall time, and what its imports cost.

Hyperfine-like: one warm-up run (so .pyc files exist), then ``--runs`` timed
runs, min / median / max, next to a bare ``python -c pass`` for scale. Then
one run under ``python -X importtime``: self time by top-level package, and
the costliest imports made directly by vigild's own modules (what lazy
imports could move off the ``--once`` path).

    .venv/bin/python bench/once.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from run import VIGILD, TargetServer, free_port, stop

TARGETS = 10


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
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}")
    return times


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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigild-once-") as tmp:
        workdir = Path(tmp)
        server = TargetServer(TARGETS, workers=1, max_seconds=600, log=workdir / "server.log")
        try:
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
