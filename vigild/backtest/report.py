"""What ``vigild backtest`` prints: the JSON contract (docs/backtest.md) and a text
table with one column per config."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from vigild import assembly
from vigild.alerting.notifiers.text import timestamp
from vigild.assembly import Config
from vigild.backtest.replay import Outcome, Sent, backtest
from vigild.config import ConfigError
from vigild.daemon.recorder import retention
from vigild.fields import parse_duration
from vigild.storage.history_reader import HistoryReader
from vigild.storage.history_tiers import RAW
from vigild.wording import duration

__all__ = ["Unusable", "json_document", "load_configs", "report", "text"]


class Unusable(Exception):
    """Nothing to replay or nothing to replay it with, in words for the operator, and the
    exit code that says which."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_configs(path: Path, running_path: Path) -> tuple[Config, Config | None]:
    """The config to try, and the running one when that is another file."""
    try:
        config = assembly.load(path, check_notifier_urls=False)
        other = running_path.exists() and running_path.resolve() != path.resolve()
        running = assembly.load(running_path, check_notifier_urls=False) if other else None
    except ConfigError as exc:
        raise Unusable("\n".join(exc.problems), 2) from None
    return config, running


def report(
    config: Config,
    running: Config | None,
    *,
    since: str,
    target: str | None,
    output: str,
    now: float,
) -> str:
    """``vigild backtest``'s output: ``config`` replayed over the last ``since`` (a
    duration) of the history, and ``running`` (the running config, when it is another)
    beside it. The history is the running config's (the daemon's, or cron's ``--once``),
    else ``config``'s.
    """
    try:
        start = now - float(parse_duration(since))
    except ValueError as exc:
        raise Unusable(f"--since: {exc}", 2) from None
    kept = [c for c in (running, config) if c is not None and _history(c).exists()]
    if not kept:
        path = _history(running or config)
        raise Unusable(f"no history at {path}: `vigild run` or `vigild --once` writes it", 1)
    source = kept[0]
    if source is not running:
        running = None  # a config with no history beside its state file runs nowhere here
    path = _history(source)
    try:
        with HistoryReader(path, retention(source.history)) as reader:
            outcomes = [
                backtest(c, reader, start, now, now=now, target=target)
                for c in (config, running)
                if c is not None
            ]
    except sqlite3.DatabaseError as exc:
        raise Unusable(f"the history at {path} cannot be read: {exc}", 1) from None
    if output == "json":
        return json.dumps(json_document(*outcomes), indent=2)
    return text(outcomes)


def _history(config: Config) -> Path:
    return config.history.file(config.daemon.state_path)


def json_document(outcome: Outcome, running: Outcome | None = None) -> dict[str, Any]:
    """The stable JSON form (docs/backtest.md); ``running``: the running config's beside it."""
    document = outcome.to_json()
    if running is not None:
        document["running"] = running.to_json()
    return document


def text(outcomes: Sequence[Outcome]) -> str:
    """The notifications of each outcome in a column of its own, then their summaries."""
    first = outcomes[0]
    lines = [
        f"backtest {timestamp(first.start)} .. {timestamp(first.end)} "
        f"({duration(first.end - first.start)})",
    ]
    lines.extend(
        f"  {s.tier.name:<12} {timestamp(s.start)} .. {timestamp(s.end)}" for s in first.stretches
    )
    if not first.stretches:
        lines.append("  nothing stored in that span")
    headers = [f"{o.config}" if i == 0 else f"running: {o.config}" for i, o in enumerate(outcomes)]
    rows: dict[float, list[list[str]]] = {}
    for column, outcome in enumerate(outcomes):
        for sent in outcome.sent:
            rows.setdefault(sent.at, [[] for _ in outcomes])[column].append(_entry(sent))
    table = [["", *headers]]
    for at in sorted(rows):
        for i, cells in enumerate(zip_longest(*rows[at], fillvalue="")):
            table.append([timestamp(at) if i == 0 else "", *cells])
    lines.append("")
    lines.extend(_columns(table))
    if not rows:
        lines.append("no notification would have been sent")
    lines.append("")
    summaries = [o.summary() for o in outcomes]
    summary_rows = [
        ["notifications", *(str(s["notifications"]) for s in summaries)],
        ["pages", *(str(s["pages"]) for s in summaries)],
        ["pages per day", *(f"{s['pages_per_day']:g}" for s in summaries)],
        ["repeats", *(str(s["repeats"]) for s in summaries)],
        ["longest open alert", *(_longest(s) for s in summaries)],
        ["open at the end", *(str(len(s["open_at_end"])) for s in summaries)],
    ]
    for target in sorted({t for s in summaries for t in s["targets"]}):
        summary_rows.append([f"  {target}", *(_per_target(s, target) for s in summaries)])
    lines.extend(_columns([["summary", *headers], *summary_rows]))
    return "\n".join(line.rstrip() for line in lines)


def _entry(sent: Sent) -> str:
    tier = "" if sent.tier == RAW.name else f" [{sent.tier}]"
    return f"{sent.line()}{tier}"


def _columns(rows: list[list[str]]) -> Iterator[str]:
    """Rows as aligned columns: the first as wide as a timestamp, the others as their
    widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[0] = max(widths[0], len(timestamp(0)))
    for row in rows:
        yield "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True))


def _longest(summary: Mapping[str, Any]) -> str:
    found = summary["longest_open_alert"]
    if found is None:
        return "-"
    still = "" if found["to"] is not None else ", still open"
    return f"{found['target']} {found['metric']} {duration(found['seconds'])}{still}"


def _per_target(summary: Mapping[str, Any], target: str) -> str:
    counts = summary["targets"].get(target)
    if counts is None:
        return "0"
    pages = counts["pages"]
    return f"{counts['notifications']} ({pages} page{'s' if pages != 1 else ''})"
