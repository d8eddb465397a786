"""SLO windows and forecasts warmed from a real history file: a restart keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigild.config_sections import HistoryConfig
from vigild.config_slo import ForecastSpec, SloAlert, SloSpec
from vigild.daemon.recorder import retention
from vigild.daemon.warmup import warm
from vigild.derived import Derived
from vigild.model import Observation
from vigild.probes.http import HttpTarget
from vigild.storage.history_file import HistoryFile

START = 1_800_000_000.0
HOUR = 3600.0


def web() -> HttpTarget:
    return HttpTarget(
        name="web",
        url="http://127.0.0.1:1/",
        slo=SloSpec(
            objective=99.0,
            period=4 * HOUR,
            alerts=(SloAlert(severity="critical", long=HOUR, short=600, factor=2),),
        ),
        forecast=ForecastSpec(metric="latency_seconds", window=1800, horizon=2 * 86400, limit=5.0),
    )


def observations() -> list[Observation]:
    """Four hours every 30 s: one failed probe in 50 in the first two hours, none after;
    latency rising 0.1 s an hour."""
    found = []
    for i in range(int(4 * HOUR / 30)):
        at = START + 30 * i
        up = not (at < START + 2 * HOUR and i % 50 == 0)
        found.append(
            Observation("web", at, up, metrics={"latency_seconds": 0.5 + 0.1 * (at - START) / HOUR})
        )
    return found


def test_warmed_windows_match_windows_fed_live(tmp_path: Path) -> None:
    # Raw values are kept an hour: the older three come from five-minute buckets.
    config = HistoryConfig(raw=HOUR, path=tmp_path / "history.db")
    now = START + 4 * HOUR
    clock = [START]
    history = HistoryFile(
        config.file(tmp_path / "state.db"), retention(config), clock=lambda: clock[0]
    )
    live = Derived.of(web(), {})
    assert live is not None
    for observation in observations():
        clock[0] = observation.time
        history.append([("web", observation.time, dict(observation.metrics))])
        live(observation)
    clock[0] = now
    history.maintain()
    history.close()

    warmed = Derived.of(web(), {})
    assert warmed is not None
    warm([warmed], config, tmp_path / "state.db", now)
    probe = Observation("web", now, True, metrics={"latency_seconds": 0.9})
    again = Observation("web", now, True, metrics={"latency_seconds": 0.9})
    live(probe)
    warmed(again)
    for metric in ("slo_burn_rate:10m", "slo_burn_rate:1h", "slo_burn"):
        assert again.metrics[metric] == pytest.approx(probe.metrics[metric])
    # The period reaches into five-minute buckets, each counted whole at its middle: the
    # window's edge may take one more or one fewer of them (10 probes of 465) than live.
    live_left = probe.metrics["slo_error_budget_remaining_percent"]
    assert live_left == pytest.approx(100 * (1 - (4 / 465) / 0.01))
    warmed_left = again.metrics["slo_error_budget_remaining_percent"]
    assert abs((100 - warmed_left) / (100 - live_left) - 1) < 10 / 465
    # The history keeps buckets to 1 part in 256 (raw values to 1 in 8,192).
    assert again.metrics["forecast_hours:latency_seconds"] == pytest.approx(
        probe.metrics["forecast_hours:latency_seconds"], rel=1e-3
    )


def test_no_history_file_leaves_the_windows_empty(tmp_path: Path) -> None:
    derived = Derived.of(web(), {})
    assert derived is not None
    warm([derived], HistoryConfig(), tmp_path / "state.db", START)
    observation = Observation("web", START, True)
    derived(observation)
    assert observation.metrics["slo_burn_rate:1h"] == 0.0


def test_past_its_budget_the_warm_up_leaves_the_rest_empty(tmp_path: Path) -> None:
    config = HistoryConfig(path=tmp_path / "history.db")
    history = HistoryFile(
        config.file(tmp_path / "state.db"), retention(config), clock=lambda: START
    )
    history.append([("web", START, {"up": 0.0})])
    history.close()
    derived = Derived.of(web(), {})
    assert derived is not None
    warm([derived], config, tmp_path / "state.db", START + 30, budget=-1.0)
    observation = Observation("web", START + 30, True)
    derived(observation)
    assert observation.metrics["slo_burn_rate:1h"] == 0.0  # the failed probe was not read
    warm([derived], config, tmp_path / "state.db", START + 30)
    again = Observation("web", START + 31, True)
    derived(again)
    assert again.metrics["slo_burn_rate:1h"] == pytest.approx((1 / 3) / 0.01)
