"""Which targets a status page lists when there are thousands."""

from __future__ import annotations

import re
from pathlib import Path

from cli_config import numbered_targets

from vigild.alerting.engine import Engine
from vigild.assembly import load
from vigild.daemon.history import PageHistory
from vigild.daemon.page import Snapshot, render
from vigild.daemon.paging import ROWS, Paging, page_of
from vigild.model import Observation
from vigild.status import Board
from vigild.storage.history_tiers import Retention
from vigild.thresholds import evaluate

START = 1_800_000_000.0

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


def test_a_big_setups_page_lists_a_page_of_targets_and_of_alerts(tmp_path: Path) -> None:
    count = ROWS + 10
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\n'
        + numbered_targets(count, 'type = "tcp"\nhost = "127.0.0.1"\nport = 1')
    )
    config = load(config_file)
    board = Board()
    engine = Engine((), (), flap_limit=4, redact=config.redact)
    up = [i for i in range(count) if i % 50 == 0]
    for i in range(count):
        observation = Observation(f"t{i}", START, i in up, None if i in up else "refused")
        verdicts = evaluate(observation, config.rules[f"t{i}"])
        board.record(f"t{i}", observation, verdicts)
        engine.observe(f"t{i}", verdicts, START)
    history = PageHistory(tmp_path / "h.db", Retention())
    moment = board.moment(config, engine, START)
    down = count - len(up)
    first = render(Snapshot(moment, history, 30), frozenset())
    rows = re.findall(r'<tr class="target state-(\w+)" data-target="t(\d+)"', first)
    assert rows == [("critical", str(i)) for i in range(count) if i not in up][:ROWS]
    assert f"{count} targets · {down} down" in first
    assert f"1\u2013{ROWS} of {count}, the {down} with problems first · page 1 of 2" in first
    assert first.count('<tr class="alert ') == ROWS
    assert f"{down - ROWS} more open alerts" in first
    second = render(Snapshot(moment, history, 30, 2), frozenset())
    rows = re.findall(r'<tr class="target state-(\w+)" data-target="t(\d+)"', second)
    last_down = [i for i in range(count) if i not in up][ROWS:]
    assert rows == [("critical", str(i)) for i in last_down] + [("ok", str(i)) for i in up]
    # A message links to its target's row with ?target=: the page that lists it.
    linked = render(Snapshot(moment, history, 30, 1, f"t{up[-1]}"), frozenset())
    assert f'data-target="t{up[-1]}"' in linked and "page 2 of 2" in linked
    unknown = render(Snapshot(moment, history, 30, 1, "no such target"), frozenset())
    assert "page 1 of 2" in unknown


def test_the_page_holding_an_entry() -> None:
    assert page_of(STATES, 1, rows=3, holding=7) == page_of(STATES, 2, rows=3)
    assert page_of(STATES, 3, rows=3, holding=1) == page_of(STATES, 1, rows=3)
    assert page_of(STATES, 2, rows=8, holding=4) == (range(8), None)
