"""The status page's error budget bar, for a target with an SLO."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vigild.alerting.engine import Engine
from vigild.assembly import load
from vigild.daemon.history import PageHistory
from vigild.daemon.page import Snapshot, render
from vigild.daemon.sparklines import Budget, budget_bar
from vigild.derived import Derived
from vigild.model import Observation
from vigild.status import Board
from vigild.storage import Database
from vigild.storage.history_tiers import Retention
from vigild.thresholds import evaluate

START = 1_800_000_000.0


@pytest.mark.parametrize(
    ("left", "bar"),
    [
        (100.0, Budget(100.0, "ok", "error budget 100 % left")),
        (62.5, Budget(62.5, "ok", "error budget 62.5 % left")),
        (30.0, Budget(30.0, "warning", "error budget 30 % left")),
        (10.0, Budget(10.0, "critical", "error budget 10 % left")),
        (-40.0, Budget(0.0, "critical", "error budget spent (-40 % left)")),
    ],
)
def test_the_bar_is_what_is_left(left: float, bar: Budget) -> None:
    observation = {"metrics": {"up": 1.0, "slo_error_budget_remaining_percent": left}}
    assert budget_bar(observation) == bar


def test_no_bar_without_an_slo_or_before_any_event() -> None:
    assert budget_bar(None) is None
    assert budget_bar({"metrics": {"up": 1.0}}) is None


def test_page_draws_the_bar_of_a_target_with_an_slo(tmp_path: Path) -> None:
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n'
        '[[targets]]\nname = "web"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n'
        'slo = { objective = 90, period = "1h" }\n'
        '[[targets]]\nname = "plain"\ntype = "http"\nurl = "http://127.0.0.1:2/"\n'
    )
    config = load(config_file)
    board = Board()
    derived = Derived.of(config.targets[0], config.rules["web"])
    assert derived is not None
    for i in range(20):  # one failed probe in 20: half the 10 % budget spent
        observation = Observation("web", START + i, i != 5)
        derived(observation)
    board.record("web", observation, evaluate(observation, config.rules["web"]))
    plain = Observation("plain", START, True)
    board.record("plain", plain, evaluate(plain, config.rules["plain"]))
    db = Database(tmp_path / "state.db")
    engine = Engine(db.alerts.load(), (), flap_limit=4, redact=config.redact)
    history = PageHistory(tmp_path / "h.db", Retention())
    html = render(Snapshot(board.moment(config, engine, START), history, 30), config.secrets)
    db.close()
    web = re.search(r'<tr class="target [^"]*" data-target="web".*?</tr>', html, re.S)
    assert web is not None
    assert '<rect class="state-ok" width="50.0" height="6"/>' in web.group(0)
    assert '<small class="budget-text">error budget 50 % left</small>' in web.group(0)
    plain_row = re.search(r'<tr class="target [^"]*" data-target="plain".*?</tr>', html, re.S)
    assert plain_row is not None and "budget" not in plain_row.group(0)
