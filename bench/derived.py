"""CPU of the derived-metrics step (SLO burn rates, budget, forecast) per observation.

Synthetic observations of N targets every 30 s at accelerated time, fed through
``vigild.derived.Derived`` exactly as a cycle does before thresholds; the time
per observation is compared with vigild's ~271 µs of CPU per probe (DESIGN.md's
Budget), and the memory the windows hold per target. The forecast's values
(six hours of them) grow its memory as the run goes on.

    .venv/bin/python bench/derived.py                      # 1,000 targets, 2 days
    .venv/bin/python bench/derived.py --targets 10000 --hours 6
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from vigild.config import TargetConfig
from vigild.config_slo import ForecastSpec, SloSpec
from vigild.derived import Derived
from vigild.model import Observation
from vigild.probes.http import HttpTarget
from vigild.probes.prometheus import PrometheusTarget
from vigild.thresholds import Rule

INTERVAL = 30.0
START = 1_800_000_000.0
PROBE_CPU_US = 271.0
"""vigild's CPU per probe at 10,000 targets / 30 s (DESIGN.md, Budget)."""


def targets(n: int, kind: str) -> tuple[list[Derived], int]:
    """N targets' ``Derived``, and the bytes they hold (not counting the targets' config)."""
    rules = {"queue": Rule("queue", 500.0, 1000.0, "above", 0.0, 0.0)}
    configs: list[TargetConfig] = []
    for i in range(n):
        if kind == "http":
            configs.append(
                HttpTarget(name=f"t{i}", url=f"http://127.0.0.1/{i}", slo=SloSpec(objective=99.9))
            )
        else:
            configs.append(
                PrometheusTarget(
                    name=f"t{i}",
                    url=f"http://127.0.0.1/{i}",
                    requests="r_total",
                    errors="e_total",
                    gauges={"queue": "q"},
                    slo=SloSpec(objective=99.9),
                    forecast=ForecastSpec(metric="queue", window=6 * 3600),
                )
            )
    tracemalloc.start()
    made = [Derived.of(target, rules) for target in configs]
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return [d for d in made if d is not None], held


def observation(name: str, at: float, i: int, kind: str) -> Observation:
    if kind == "http":
        return Observation(name, at, i % 997 != 0)
    metrics = {
        "requests_increase": 300.0,
        "errors_increase": float(i % 3),
        "queue": 100.0 + (at - START) / 3600,
    }
    return Observation(name, at, True, metrics=metrics)


def run(n: int, hours: float, kind: str) -> None:
    derived, held = targets(n, kind)
    cycles = int(hours * 3600 / INTERVAL)
    # Observations are made outside the timed part: a probe makes them anyway.
    gc.disable()
    spent = 0.0
    count = 0
    for c in range(cycles):
        at = START + c * INTERVAL
        batch = [observation(f"t{i}", at, c * n + i, kind) for i in range(n)]
        started = time.process_time()
        for item, obs in zip(derived, batch, strict=True):
            item(obs)
        spent += time.process_time() - started
        count += n
    gc.enable()
    per = spent / count * 1e6
    print(
        f"{kind:10} {n:6d} targets, {hours:g} h: {per:6.1f} µs CPU per observation "
        f"({100 * per / PROBE_CPU_US:.1f} % of {PROBE_CPU_US:g} µs per probe); "
        f"windows {held / n / 1024:.1f} KiB per target at start"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=48.0)
    args = parser.parse_args()
    for kind in ("http", "prometheus"):
        run(args.targets, args.hours, kind)


if __name__ == "__main__":
    main()
