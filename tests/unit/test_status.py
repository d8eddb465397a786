"""The status document, taken at one moment on the loop and built later elsewhere."""

from __future__ import annotations

from pathlib import Path

from vigild.alerting.engine import Engine
from vigild.assembly import load
from vigild.model import Observation
from vigild.status import Board
from vigild.thresholds import evaluate

START = 1_800_000_000.0


def test_a_moment_shows_what_was_there_when_it_was_taken(tmp_path: Path) -> None:
    config_file = tmp_path / "t.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\n'
        '[[targets]]\nname = "api"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n'
    )
    config = load(config_file)
    board = Board()
    engine = Engine((), (), flap_limit=4, redact=config.redact)

    def cycle(at: float, *, up: bool) -> None:
        observation = Observation("api", at, up, None if up else "connection refused")
        verdicts = evaluate(observation, config.rules["api"])
        board.record("api", observation, verdicts)
        engine.observe("api", verdicts, at)

    cycle(START, up=False)
    moment = board.moment(config, engine, START + 1)
    cycle(START + 30, up=True)  # the next cycle, before the document is built
    then = moment.document()
    [api] = then["targets"]
    assert api["up"] is False and then["worst"] == "critical"
    [alert] = then["alerts"]
    assert (alert["state"], alert["severity"], alert["for_seconds"]) == ("firing", "critical", 1)
    now = board.document(config, engine, START + 31)
    assert now["targets"][0]["up"] is True and now["alerts"] == []
