"""Observations held against thresholds: pure functions, so plain values in and out."""

from __future__ import annotations

import math

import pytest

from vigild.config import ThresholdSpec
from vigild.model import Observation, Severity
from vigild.thresholds import Rule, RuleError, evaluate

UP = Rule.from_spec("up", ThresholdSpec())


def rule(metric: str = "m", **spec: object) -> Rule:
    return Rule.from_spec(metric, ThresholdSpec.model_validate(spec))


@pytest.mark.parametrize(
    ("value", "severity", "line"),
    [
        (75, Severity.OK, 75),
        (75.5, Severity.WARNING, 75),
        (80, Severity.WARNING, 75),
        (80.1, Severity.CRITICAL, 80),
        (-1, Severity.OK, 75),
    ],
)
def test_higher_is_worse_strictly(value: float, severity: Severity, line: float) -> None:
    verdict = rule(warning=75, critical=80).judge("m", value)
    assert (verdict.severity, verdict.threshold, verdict.value) == (severity, line, value)


@pytest.mark.parametrize(
    ("days", "severity"),
    [
        (30, Severity.OK),
        (14, Severity.OK),
        (13.9, Severity.WARNING),
        (7, Severity.WARNING),
        (6, Severity.CRITICAL),
    ],
)
def test_lower_is_worse_when_warning_exceeds_critical(days: float, severity: Severity) -> None:
    cert = rule("cert_expiry_days", warning=14, critical=7)
    assert cert.direction == "below"
    assert cert.judge("cert_expiry_days", days).severity is severity


def test_explicit_direction_and_single_levels() -> None:
    assert rule(critical=5, direction="below").judge("m", 4).severity is Severity.CRITICAL
    only_warning = rule(warning=5)
    assert only_warning.judge("m", 100).severity is Severity.WARNING
    assert only_warning.judge("m", 5).threshold == 5
    with pytest.raises(RuleError, match="below critical"):
        rule(warning=1, critical=5, direction="below")


def test_nan_is_unknown() -> None:
    assert rule(warning=1).judge("m", math.nan).severity is Severity.UNKNOWN


def test_failed_probe_is_up_critical_and_nothing_else() -> None:
    rules = {"up": UP, "latency_seconds": rule("latency_seconds", warning=1)}
    observation = Observation("api", 0.0, up=False, error="connection refused")
    verdicts = evaluate(observation, rules)
    assert [(v.metric, v.severity) for v in verdicts] == [("up", Severity.CRITICAL)]


def test_evaluate_judges_reported_metrics_and_qualifiers() -> None:
    rules = {"up": UP, "disk_percent": rule("disk_percent", warning=80, critical=90)}
    observation = Observation(
        "host", 0.0, up=True, metrics={"disk_percent:/": 50, "disk_percent:/var": 95, "load1": 9}
    )
    verdicts = {v.metric: v.severity for v in evaluate(observation, rules)}
    assert verdicts == {
        "up": Severity.OK,
        "disk_percent:/": Severity.OK,
        "disk_percent:/var": Severity.CRITICAL,
    }


def test_missing_metrics_are_unknown_only_when_expected() -> None:
    explicit = Rule.from_spec("latency_seconds", ThresholdSpec(warning=1), explicit=True)
    rules = {
        "up": UP,
        "health_status": rule("health_status", warning=0, critical=1),
        "latency_seconds": explicit,
        "cpu_percent": rule("cpu_percent", warning=75),
    }
    # A JSON body without a status: the probe says health_status is missing.
    observation = Observation("api", 0.0, up=True, missing=frozenset({"health_status"}))
    verdicts = {v.metric: v.severity for v in evaluate(observation, rules)}
    assert verdicts == {
        "up": Severity.OK,
        "health_status": Severity.UNKNOWN,
        "latency_seconds": Severity.UNKNOWN,  # named on the target itself
    }


def test_a_qualified_series_without_data_is_absent_by_its_base_rule() -> None:
    rules = {"up": UP, "disk_percent": rule("disk_percent", warning=80, critical=90)}
    obs = Observation(
        "host",
        0.0,
        up=True,
        metrics={"disk_percent:/": 50},
        no_data=frozenset({"disk_percent:/mnt/usb", "load1:x"}),
        reasons={"disk_percent:/mnt/usb": "no longer mounted or readable"},
    )
    verdicts = {v.metric: v for v in evaluate(obs, rules)}
    assert verdicts["disk_percent:/mnt/usb"].absent
    assert verdicts["disk_percent:/mnt/usb"].note == "no longer mounted or readable"
    assert "load1:x" not in verdicts  # no rule: nothing to resolve
    assert verdicts["disk_percent:/"].severity is Severity.OK
