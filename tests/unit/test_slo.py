"""Error budgets: burn rates over ring-bucket windows, the window pairs, the budget left."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vigild.assembly import load
from vigild.config_slo import SloAlert, SloSpec
from vigild.slo import BUCKETS, ErrorBudget, Window, burn_rate_metric

T0 = 1_700_000_000.0


def budget(objective: float = 99.0, period: float = 600.0, *alerts: SloAlert) -> ErrorBudget:
    chosen = alerts or (SloAlert(severity="critical", long=60, short=10, factor=5),)
    return ErrorBudget(SloSpec(objective=objective, period=period, alerts=chosen))


def test_window_sums_the_last_buckets_and_forgets_older_ones() -> None:
    window = Window(30.0)  # buckets of one second
    for t in range(60):
        window.add(T0 + t, 1.0, float(t % 2))
    assert window.sums(T0 + 59) == (BUCKETS, BUCKETS / 2)
    # Nothing new for 20 s: the 10 newest buckets are all that is left.
    assert window.sums(T0 + 79) == (10.0, 5.0)
    assert window.sums(T0 + 1000) == (0.0, 0.0)


def test_window_counts_a_late_event_in_its_own_bucket_and_drops_a_too_old_one() -> None:
    window = Window(30.0)
    window.add(T0 + 100, 1.0, 0.0)
    window.add(T0 + 90, 1.0, 1.0)  # late, inside the window
    window.add(T0 + 60, 1.0, 1.0)  # older than the window
    assert window.sums(T0 + 100) == (2.0, 1.0)


def test_burn_rate_is_the_bad_share_over_the_allowed_share() -> None:
    slo = budget(99.0)
    for t in range(100):
        slo.add(T0 + t, 10.0, 1.0 if t >= 90 else 0.0)  # the last 10 s: 10 % bad
    burn = slo.at(T0 + 99)
    assert burn.rates[10.0] == pytest.approx(10.0)  # 10 % / 1 %
    assert burn.rates[60.0] == pytest.approx((10 / 600) / 0.01)
    assert burn.level == 0  # the long window (1.67) is under 5: not yet
    for t in range(100, 160):
        slo.add(T0 + t, 10.0, 1.0)
    assert slo.at(T0 + 159).level == 2
    # The fix: the short window recovers first and ends the alert at once.
    for t in range(160, 171):
        slo.add(T0 + t, 10.0, 0.0)
    burn = slo.at(T0 + 170)
    assert burn.rates[60.0] > 5 and burn.rates[10.0] == 0.0 and burn.level == 0


def test_severity_of_the_worst_pair_that_burns() -> None:
    slo = budget(
        99.0,
        600.0,
        SloAlert(severity="warning", long=60, short=10, factor=2),
        SloAlert(severity="critical", long=60, short=10, factor=20),
    )
    for t in range(60):
        slo.add(T0 + t, 100.0, 5.0)  # burn 5: over the warning factor only
    assert slo.at(T0 + 59).level == 1
    for t in range(60, 120):
        slo.add(T0 + t, 100.0, 50.0)
    assert slo.at(T0 + 119).level == 2


def test_no_events_no_burn_rate_nor_level() -> None:
    slo = budget()
    burn = slo.at(T0)
    assert (burn.rates, burn.level, burn.remaining) == ({}, None, None)
    slo.add(T0, 1.0, 0.0)
    burn = slo.at(T0 + 30)  # the 10 s window is empty, the others are not
    assert set(burn.rates) == {60.0} and burn.level == 0


def test_budget_remaining_over_the_period_and_overspent() -> None:
    slo = budget(99.0, 600.0)
    for t in range(0, 600, 10):
        slo.add(T0 + t, 100.0, 0.5)  # half the allowed 1 %
    assert slo.at(T0 + 590).remaining == pytest.approx(50.0)
    for t in range(600, 1200, 10):
        slo.add(T0 + t, 100.0, 3.0)
    assert slo.at(T0 + 1190).remaining == pytest.approx(-200.0)


def test_windows_longer_than_the_events_held_are_partial() -> None:
    slo = budget(99.0, 600.0)
    slo.add(T0, 1.0, 0.0)
    slo.add(T0 + 30, 1.0, 0.0)
    assert slo.partial(T0 + 30) == (60.0, 600.0)
    assert slo.partial(T0 + 65) == (600.0,)


def test_window_names() -> None:
    assert [burn_rate_metric(w) for w in (300.0, 3600.0, 86400.0, 5.0)] == [
        "slo_burn_rate:5m",
        "slo_burn_rate:1h",
        "slo_burn_rate:1d",
        "slo_burn_rate:5s",
    ]


def test_default_alerts_are_the_sre_workbook_ones() -> None:
    spec = SloSpec(objective=99.9)
    pairs = [(a.severity, a.long, a.short, a.factor) for a in spec.alerts]
    assert pairs == [
        ("critical", 3600, 300, 14.4),
        ("critical", 21600, 1800, 6),
        ("warning", 86400, 7200, 3),
        ("warning", 259200, 21600, 1),
    ]
    assert spec.period == 30 * 86400


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("document", "marker"), [("README.md", "slo = "), ("docs/slo.md", "[[targets]]")]
)
def test_the_documented_examples_are_valid_configs(
    tmp_path: Path, document: str, marker: str
) -> None:
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```toml")[1:]]
    examples = [textwrap.dedent(b) for b in blocks if marker in b and "[[targets]]" in b]
    assert examples
    for i, example in enumerate(examples):
        path = tmp_path / f"example-{i}.toml"
        path.write_text(example, encoding="utf-8")
        config = load(path)
        assert any(t.slo is not None or t.forecast is not None for t in config.targets)
