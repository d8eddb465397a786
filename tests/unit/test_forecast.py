"""Forecasts: predict_linear's least squares over a window, and hours to a line."""

from __future__ import annotations

import pytest

from vigild.forecast import Trend, hours_until

T0 = 1_700_000_000.0


def test_linear_gauge_is_fitted_exactly_and_predicted_at_any_horizon() -> None:
    trend = Trend(300.0)
    for t in range(0, 1000, 15):
        trend.add(T0 + t, 40.0 + 0.01 * t)
    now = T0 + 990
    assert trend.fit(now) == pytest.approx((0.01, 49.9), rel=1e-12)
    for ahead in (0.0, 60.0, 3600.0, 86400.0 * 30):
        assert trend.predict(now, ahead) == pytest.approx(49.9 + 0.01 * ahead, rel=1e-9)


def test_fit_uses_only_the_window_both_ends_included() -> None:
    trend = Trend(60.0)
    trend.add(T0, 1000.0)  # before the window: forgotten
    trend.add(T0 + 40, 0.0)
    trend.add(T0 + 70, 3.0)
    trend.add(T0 + 100, 6.0)
    assert trend.fit(T0 + 100) == pytest.approx((0.1, 6.0))


def test_origin_moves_up_without_changing_the_fit() -> None:
    trend = Trend(60.0)
    for t in range(0, 100_000, 10):  # many windows: the origin moves hundreds of times
        trend.add(T0 + t, 5.0 + 1e-4 * t + (0.5 if t % 20 else -0.5))
    slope, value = trend.fit(T0 + 99_990) or (0.0, 0.0)
    # The zigzag's own least squares over the last 7 points, worked by hand.
    xs = [float(x) for x in range(-60, 1, 10)]
    ys = [5.0 + 1e-4 * (99_990 + x) + (0.5 if (99_990 + x) % 20 else -0.5) for x in xs]
    mean_x, mean_y = sum(xs) / 7, sum(ys) / 7
    expected = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    assert slope == pytest.approx(expected, rel=1e-9)
    assert value == pytest.approx(mean_y + expected * (0 - mean_x), rel=1e-12)


def test_fewer_than_two_values_no_fit() -> None:
    trend = Trend(60.0)
    assert trend.fit(T0) is None
    trend.add(T0, 1.0)
    assert trend.fit(T0) is None


def test_hours_until_the_line_toward_it_only_within_the_horizon() -> None:
    per_hour = 1 / 3600
    assert hours_until((2 * per_hour, 80.0), 90.0, rising=True, horizon=86400) == 5.0
    assert hours_until((-2 * per_hour, 80.0), 90.0, rising=True, horizon=86400) is None
    assert hours_until((0.0, 80.0), 90.0, rising=True, horizon=86400) is None
    assert hours_until((2 * per_hour, 80.0), 90.0, rising=True, horizon=4 * 3600) is None
    assert hours_until((2 * per_hour, 95.0), 90.0, rising=True, horizon=3600) == 0.0
    # Lower is worse (days of certificate left): falling toward the line.
    assert hours_until((-per_hour, 10.0), 7.0, rising=False, horizon=86400) == 3.0
    assert hours_until((per_hour, 10.0), 7.0, rising=False, horizon=86400) is None


def test_a_flat_series_has_no_forecast() -> None:
    trend = Trend(600.0)
    for t in range(0, 600, 10):
        trend.add(T0 + t, 91.3)
    fitted = trend.fit(T0 + 590)
    assert fitted is not None
    assert hours_until(fitted, 95.0, rising=True, horizon=400 * 86400) is None


def test_a_gap_longer_than_the_window_starts_the_fit_again() -> None:
    trend = Trend(60.0)
    for t in range(0, 300, 10):
        trend.add(T0 + t, 1e6 + 3.0 * t)
    assert trend.fit(T0 + 1000) is None  # all expired
    for t in range(1000, 1061, 20):
        trend.add(T0 + t, 5.0 - 0.5 * (t - 1000))
    assert trend.fit(T0 + 1060) == pytest.approx((-0.5, -25.0), rel=1e-12)
