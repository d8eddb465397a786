"""Which targets one status page lists.

Up to ``ROWS`` targets, the page lists them all in the config's order. Beyond, a page
would be megabytes (1.3 to 5 KB a row: 13 to 50 MB at 10,000 targets) that take seconds to
draw and to load, and a person with thousands of targets looks for what is wrong, not
at each row: the problems come first, then the rest, in the config's order, ``ROWS`` a
page, ``?page=2`` the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ROWS", "Paging", "page_of"]

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


def page_of(
    states: Sequence[str], number: int, rows: int = ROWS, *, holding: int | None = None
) -> tuple[Sequence[int], Paging | None]:
    """Which of the entries whose row colours are ``states`` page ``number`` lists (any
    number: the nearest page there is), or the page that lists entry ``holding``, as
    their places in the order listed, and where the page is among the pages; None when
    one page lists them all."""
    if len(states) <= rows:
        return range(len(states)), None
    problem = [state in PROBLEMS for state in states]
    order = sorted(range(len(states)), key=lambda i: not problem[i])  # stable: config order
    pages = -(-len(states) // rows)
    if holding is not None:
        number = order.index(holding) // rows + 1
    number = min(max(number, 1), pages)
    at = (number - 1) * rows
    shown = order[at : at + rows]
    return shown, Paging(number, pages, at + 1, at + len(shown), len(states), sum(problem))
