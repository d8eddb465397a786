"""The PNGs of docs/performance.md, drawn from compare.py's figures (``pip install vigild[bench]``).

.venv/bin/python bench/plots.py results.json      # redraw from compare.py --json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compare import Phase

LABELS = {
    "vigild": "vigild (whole pipeline)",
    "keepalive": "bare aiohttp, keep-alive",
    "newconn": "bare aiohttp, new connection",
    "blackbox": "blackbox_exporter",
}


def write_plots(
    phases: list[Phase], once: dict[str, float] | None, outdir: Path, note: str = ""
) -> list[Path]:
    """The four PNGs; ``note`` (machine, load) goes under each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig: Any, name: str) -> None:
        if note:
            fig.text(0.01, 0.005, note, fontsize="x-small", color="grey", va="bottom")
        path = outdir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    for name, value, ylabel in (
        ("cpu-per-probe.png", lambda p: p.us_per_probe, "CPU µs per probe"),
        ("rss.png", lambda p: max(p.rss_mb) if p.rss_mb else math.nan, "RSS MB (max sampled)"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for side, label in LABELS.items():
            points = sorted((p.targets, value(p)) for p in phases if p.side == side)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("targets (N), all probed every interval")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
        save(fig, name)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for p in sorted((p for p in phases if p.side == "vigild"), key=lambda p: p.targets):
        buckets = sorted((float(b), c) for b, c in p.lateness_buckets.items())
        total = buckets[-1][1] if buckets else 0
        if not total:
            continue
        finite = [(b * 1000, c / total) for b, c in buckets if not math.isinf(b)]
        ax.step(*zip(*finite, strict=True), where="post", marker=".", label=f"N = {p.targets:,}")
    ax.set_xscale("log")
    ax.set_xlabel("cycle start lateness, ms (bucket upper bounds of vigild_cycle_lateness_seconds)")
    ax.set_ylabel("share of cycles at or below")
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, "lateness-cdf.png")

    if once:
        fig, ax = plt.subplots(figsize=(7, 2.6))
        left = 0.0
        for phase, ms in once.items():
            ax.barh(0, ms, left=left, label=f"{phase} {ms:.0f} ms")
            left += ms
        ax.set_yticks([])
        ax.set_title(f"vigild --once, 10 http targets: {left:.0f} ms wall (median per phase)")
        ax.legend(ncol=3, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.5))
        save(fig, "once-breakdown.png")
    return written


def main() -> None:
    from compare import Phase

    parser = argparse.ArgumentParser(description="Draw docs/performance's PNGs from compare.py.")
    parser.add_argument("results", type=Path, help="compare.py --json output")
    outdir = Path(__file__).resolve().parent.parent / "docs" / "performance"
    parser.add_argument("--outdir", type=Path, default=outdir)
    args = parser.parse_args()
    document = json.loads(args.results.read_text())
    fields = Phase.__dataclass_fields__
    phases = [Phase(**{k: v for k, v in p.items() if k in fields}) for p in document["phases"]]
    env = document.get("environment", {})
    note = f"{env.get('machine', '')}; load average at start {env.get('load average at start')}"
    for path in write_plots(phases, document.get("once"), args.outdir, note):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
