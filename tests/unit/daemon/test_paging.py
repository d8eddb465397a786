"""Which targets a status page lists when there are thousands."""

from __future__ import annotations

from typing import Any

from vigild.daemon.paging import Paging, page_of


def entry(name: str, state: str) -> dict[str, Any]:
    if state == "none":
        return {"name": name, "observation": None, "up": None, "verdicts": []}
    verdicts = [] if state == "down" else [{"severity": state}]
    return {"name": name, "observation": {}, "up": state != "down", "verdicts": verdicts}


STATES = ["ok", "warning", "none", "down", "ok", "unknown", "ok", "critical"]
ENTRIES = [entry(f"t{i}", state) for i, state in enumerate(STATES)]


def names(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def test_up_to_a_page_of_targets_are_all_listed_in_the_configs_order() -> None:
    assert page_of(ENTRIES, 1, rows=8) == (ENTRIES, None)
    assert page_of(ENTRIES, 3, rows=8) == (ENTRIES, None)


def test_beyond_a_page_the_problems_come_first_then_the_rest_in_the_configs_order() -> None:
    shown, paging = page_of(ENTRIES, 1, rows=3)
    assert names(shown) == ["t1", "t3", "t5"]
    assert paging == Paging(1, 3, 1, 3, 8, 4)
    shown, paging = page_of(ENTRIES, 2, rows=3)
    assert names(shown) == ["t7", "t0", "t2"]
    assert paging == Paging(2, 3, 4, 6, 8, 4)
    shown, paging = page_of(ENTRIES, 3, rows=3)
    assert names(shown) == ["t4", "t6"]
    assert paging == Paging(3, 3, 7, 8, 8, 4)


def test_a_page_number_out_of_range_gives_the_nearest_page() -> None:
    assert page_of(ENTRIES, 0, rows=3) == page_of(ENTRIES, 1, rows=3)
    assert page_of(ENTRIES, 99, rows=3) == page_of(ENTRIES, 3, rows=3)
