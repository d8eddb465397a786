"""One spelling for durations, values with units, times of day, OS errors and label
values, wherever vigild shows them."""

from __future__ import annotations

import errno

import pytest

from vigild.alerting.notifiers import text
from vigild.wording import (
    clock_time,
    counted,
    duration,
    label_value,
    measure,
    number,
    os_text,
    zone,
)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (720, "12m"),
        (779, "12m59s"),
        (87, "1m27s"),
        (3600, "1h"),
        (3900, "1h5m"),
        (86400 * 2 + 3 * 3600 + 59, "2d3h"),
        (86400, "1d"),
        (-5, "0s"),
    ],
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_notifier_plugins_keep_reaching_duration_through_text() -> None:
    assert text.duration is duration


def test_label_values_escape_backslash_quote_and_newline_only() -> None:
    assert label_value('a\\b"c\nd\te') == 'a\\\\b\\"c\\nd\te'


def test_os_errors_in_the_errnos_own_words() -> None:
    assert os_text(ConnectionResetError(errno.ECONNRESET, "ignored")) == "connection reset by peer"
    assert os_text(OSError("Multiple exceptions: ...")) == "Multiple exceptions: ..."
    found = os_text(OSError("Multiple exceptions: ..."), errno_found=errno.ECONNREFUSED)
    assert found == "connection refused"
    assert os_text(OSError()) == "OSError"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (0.00980668, "0.00981"),
        (12.34, "12.3"),
        (95.0, "95"),
        (1499.6, "1500"),
        (-2.5, "-2.5"),
        (float("nan"), "nan"),
    ],
)
def test_numbers_carry_three_significant_digits_and_no_exponent(value: float, shown: str) -> None:
    assert number(value) == shown


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("latency_seconds", 0.00980668, "9.81 ms"),
        ("latency_seconds", 0.25, "250 ms"),
        ("latency_p95_seconds", 0.9996, "1 s"),
        ("latency_seconds", 12.3, "12.3 s"),
        ("disk_percent:/", 96.04, "96 %"),
        ("cert_expiry_days", 1, "1 day"),
        ("cert_expiry_days", 12.5, "12.5 days"),
        ("forecast_hours:disk_percent:/", 30, "30 h"),
        ("status_code", 503, "503"),
        ("restarts", 3, "3"),
    ],
)
def test_values_carry_the_unit_their_metric_names(metric: str, value: float, shown: str) -> None:
    assert measure(metric, value) == shown


def test_times_of_day_are_local_with_the_zone(local_zone: str) -> None:
    noon_utc = 1_800_014_400.0  # 2027-01-15 12:00 UTC, a winter day: CET is UTC+1
    assert clock_time(noon_utc, noon_utc) == "13:00 CET"
    assert clock_time(noon_utc - 86400, noon_utc) == "14 Jan 13:00 CET"
    assert zone(noon_utc) == "CET (UTC+01:00)"
    summer = noon_utc + 180 * 86400
    assert clock_time(summer, summer) == "14:00 CEST"


@pytest.mark.parametrize(
    ("count", "noun", "said"),
    [(0, "problem", "0 problems"), (1, "problem", "1 problem"), (2, "target", "2 targets")],
)
def test_a_count_agrees_with_its_noun(count: int, noun: str, said: str) -> None:
    assert counted(count, noun) == said
