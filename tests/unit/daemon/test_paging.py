"""Which targets a status page lists when there are thousands."""

from __future__ import annotations

from vigild.daemon.paging import Paging, page_of

STATES = ["ok", "warning", "none", "critical", "ok", "unknown", "ok", "critical"]


def test_up_to_a_page_of_targets_are_all_listed_in_the_configs_order() -> None:
    assert page_of(STATES, 1, rows=8) == (range(8), None)
    assert page_of(STATES, 3, rows=8) == (range(8), None)


def test_beyond_a_page_the_problems_come_first_then_the_rest_in_the_configs_order() -> None:
    shown, paging = page_of(STATES, 1, rows=3)
    assert shown == [1, 3, 5]
    assert paging == Paging(1, 3, 1, 3, 8, 4)
    shown, paging = page_of(STATES, 2, rows=3)
    assert shown == [7, 0, 2]
    assert paging == Paging(2, 3, 4, 6, 8, 4)
    shown, paging = page_of(STATES, 3, rows=3)
    assert shown == [4, 6]
    assert paging == Paging(3, 3, 7, 8, 8, 4)


def test_a_page_number_out_of_range_gives_the_nearest_page() -> None:
    assert page_of(STATES, 0, rows=3) == page_of(STATES, 1, rows=3)
    assert page_of(STATES, 99, rows=3) == page_of(STATES, 3, rows=3)
