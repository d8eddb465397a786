"""Which targets one status page lists.

Up to ``ROWS`` targets, the page lists them all in the config's order. Beyond, a page
would be megabytes (1.3 to 5 KB a row: 13 to 50 MB at 10,000 targets) that take seconds to
draw and to load, and a person with thousands of targets looks for what is wrong, not
at each row: the problems come first, then the rest, in the config's order, ``ROWS`` a
page, ``?page=2`` the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigild.model import Severity, worst

__all__ = ["ROWS", "Paging", "page_of", "state_of"]

ROWS = 200
PROBLEMS = frozenset({"critical", "warning", "unknown"})


@dataclass(frozen=True, slots=True)
class Paging:
    number: int
    pages: int
    first: int
    """The first row shown, counted from 1."""
    last: int
    total: int
    problems: int


def state_of(entry: dict[str, Any]) -> str:
    """The row's colour: its worst current verdict, or "none" before the first probe."""
    if entry["observation"] is None:
        return "none"
    if not entry["up"]:
        return "critical"
    return worst(Severity.parse(v["severity"]) for v in entry["verdicts"]).label


def page_of(
    entries: list[dict[str, Any]], number: int, rows: int = ROWS
) -> tuple[list[dict[str, Any]], Paging | None]:
    """The entries of page ``number`` (any number: the nearest page there is), and where
    it is among the pages; None when one page lists them all."""
    if len(entries) <= rows:
        return entries, None
    problem = [state_of(e) in PROBLEMS for e in entries]
    order = sorted(range(len(entries)), key=lambda i: not problem[i])  # stable: config order
    pages = -(-len(entries) // rows)
    number = min(max(number, 1), pages)
    at = (number - 1) * rows
    shown = [entries[i] for i in order[at : at + rows]]
    return shown, Paging(number, pages, at + 1, at + len(shown), len(entries), sum(problem))
