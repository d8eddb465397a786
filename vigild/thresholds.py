"""Observations held against warning/critical lines. Pure: no I/O, no clock.

A qualified metric (``disk_percent:/var``) is judged by the rule of its base
name and keeps its qualifier, so each series becomes its own alert; a rule
keyed by the qualified name itself (``processes:postgres``) wins over it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vigild.model import Observation, Severity

if TYPE_CHECKING:
    from vigild.config import TargetConfig, ThresholdSpec

__all__ = [
    "Problem",
    "Rule",
    "RuleError",
    "Verdict",
    "base_metric",
    "evaluate",
    "merged_defaults",
    "rules_of",
    "target_rules",
]

Problem = tuple[tuple[str | int, ...], str]
"""A key path (relative to the table being read) and what is wrong there."""


class RuleError(ValueError):
    """A threshold table that contradicts itself."""


def base_metric(metric: str) -> str:
    return metric.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Rule:
    """A resolved threshold: defaults, ``[thresholds]`` and the target's override merged."""

    metric: str
    warning: float | None
    critical: float | None
    direction: Literal["above", "below"]
    for_: float
    recover_for: float
    runbook: str | None = None
    explicit: bool = False
    """Named on the target itself, so a reachable target must report it."""

    @classmethod
    def from_spec(cls, metric: str, spec: ThresholdSpec, *, explicit: bool = False) -> Rule:
        warning, critical = spec.warning, spec.critical
        if metric == "up" and (warning is not None or critical is not None):
            raise RuleError(
                "`up` takes only for, recover_for and runbook: a failed probe is critical"
            )
        for name, level in (("warning", warning), ("critical", critical)):
            if level is not None and not math.isfinite(level):
                raise RuleError(f"{name} must be a finite number")
        direction = spec.direction
        if direction is None:
            below = warning is not None and critical is not None and warning > critical
            direction = "below" if below else "above"
        if warning is not None and critical is not None:
            if direction == "above" and warning > critical:
                raise RuleError(
                    f"warning ({warning:g}) is above critical ({critical:g}) "
                    'but direction is "above" (higher is worse)'
                )
            if direction == "below" and warning < critical:
                raise RuleError(
                    f"warning ({warning:g}) is below critical ({critical:g}) "
                    'but direction is "below" (lower is worse)'
                )
        return cls(
            metric=metric,
            warning=warning,
            critical=critical,
            direction=direction,
            for_=spec.for_ or 0.0,
            recover_for=spec.recover_for or 0.0,
            runbook=spec.runbook,
            explicit=explicit,
        )

    def worse(self, value: float, line: float) -> bool:
        """Strictly on the bad side of ``line``, as the usual tables read."""
        return value > line if self.direction == "above" else value < line

    def judge(self, metric: str, value: float) -> Verdict:
        if math.isnan(value):
            return Verdict(metric, Severity.UNKNOWN, None, None, self)
        if self.critical is not None and self.worse(value, self.critical):
            return Verdict(metric, Severity.CRITICAL, value, self.critical, self)
        if self.warning is not None and self.worse(value, self.warning):
            return Verdict(metric, Severity.WARNING, value, self.warning, self)
        return Verdict(metric, Severity.OK, value, self.line(Severity.OK), self)

    def line(self, severity: Severity) -> float | None:
        """The line that an alert of ``severity`` is about (the warning line for OK)."""
        if severity is Severity.CRITICAL:
            return self.critical
        return self.warning if self.warning is not None else self.critical


@dataclass(frozen=True, slots=True)
class Verdict:
    metric: str
    severity: Severity
    value: float | None
    threshold: float | None
    rule: Rule
    note: str | None = None

    @property
    def absent(self) -> bool:
        """No data for a good reason (``note`` says which): good for recovery, as in
        Prometheus an alert whose expression returns nothing is resolved."""
        return self.severity is Severity.OK and self.value is None


def evaluate(observation: Observation, rules: Mapping[str, Rule]) -> list[Verdict]:
    """Every verdict for one observation, ``up`` first.

    A failed probe yields only ``up`` CRITICAL: the target's other metrics are
    inhibited, neither judged nor UNKNOWN. A thresholded metric with no data for a
    good reason (``no_data``, by base name or as one qualified series) gets an
    ``absent`` verdict, which resolves its alert
    after ``recover_for``; one the probe could not find (``missing``), UNKNOWN.
    """
    up_rule = rules["up"]
    if not observation.up:
        return [Verdict("up", Severity.CRITICAL, 0.0, None, up_rule, observation.error)]
    verdicts = [Verdict("up", Severity.OK, 1.0, None, up_rule)]
    judged: set[str] = set()
    for metric, value in observation.metrics.items():
        # A rule of its own (``processes:postgres``) before the rule of its base name.
        key = metric if metric in rules else base_metric(metric)
        rule = rules.get(key)
        if rule is None or key == "up":
            continue
        judged.add(key)
        verdicts.append(rule.judge(metric, value))
    for metric in observation.no_data:
        # One series of a metric that has several (a disk no longer mounted): absent,
        # so its open alert resolves, by the rule of its base name.
        key = base_metric(metric)
        if key != metric and metric not in rules and key in rules and key != "up":
            note = observation.reasons.get(metric) or "no data"
            verdicts.append(Verdict(metric, Severity.OK, None, None, rules[key], note))
    for key, rule in rules.items():
        if key in judged or key == "up":
            continue
        why = observation.reasons.get(key)
        if key in observation.no_data:
            verdicts.append(Verdict(key, Severity.OK, None, None, rule, why or "no data"))
        elif rule.explicit or key in observation.missing:
            verdicts.append(Verdict(key, Severity.UNKNOWN, None, None, rule, why))
    return verdicts


def merged_defaults(
    builtin: Mapping[str, ThresholdSpec], overrides: Mapping[str, ThresholdSpec]
) -> dict[str, ThresholdSpec]:
    """``[thresholds]`` merged key by key over the built-in tables."""
    merged = dict(builtin)
    for metric, spec in overrides.items():
        merged[metric] = spec.merged_over(merged.get(metric))
    return merged


def rules_of(
    specs: Iterable[tuple[tuple[str | int, ...], str, ThresholdSpec]],
    problems: list[Problem],
    *,
    explicit: bool = False,
) -> dict[str, Rule]:
    """A rule per ``(key path, metric, spec)``; a table that contradicts itself is a
    problem at its key path instead."""
    rules = {}
    for loc, metric, spec in specs:
        try:
            rules[metric] = Rule.from_spec(metric, spec, explicit=explicit)
        except RuleError as exc:
            problems.append((loc, str(exc)))
    return rules


def target_rules(
    target: TargetConfig,
    defaults: Mapping[str, ThresholdSpec],
    default_rules: Mapping[str, Rule],
    problems: list[Problem],
) -> dict[str, Rule]:
    """The rules of one target: the defaults of what it reports, the rules its own keys
    imply (a host's process checks), then its ``thresholds`` merged over the defaults.
    Key paths in ``problems`` are relative to the target's table."""
    reported = target.reported_metrics()
    # Shared Rule objects: 10,000 targets need not hold 10,000 copies of the defaults.
    result = {m: r for m, r in default_rules.items() if m in reported}
    result.update(rules_of(target.implied_thresholds(defaults), problems, explicit=True))
    for metric, spec in target.thresholds.items():
        if metric not in reported:
            problems.append(
                (
                    ("thresholds", metric),
                    f"{target.type} targets do not report {metric!r} "
                    f"(they report: {', '.join(sorted(reported))})",
                )
            )
            continue
        merged = spec.merged_over(defaults.get(metric))
        result.update(rules_of([(("thresholds", metric), metric, merged)], problems, explicit=True))
    result.update(rules_of(_derived_thresholds(target, result, problems), problems))
    return result


def _derived_thresholds(
    target: TargetConfig, rules: Mapping[str, Rule], problems: list[Problem]
) -> Iterable[tuple[tuple[str | int, ...], str, ThresholdSpec]]:
    """``slo_burn`` (1 a warning window pair burns, 2 a critical one; ``latency_slo_burn``
    likewise) and the forecast's
    hours; a forecast needs a line to cross: its ``limit`` or its metric's critical."""
    from vigild.config import ThresholdSpec

    for prefix, _ in target.objectives():
        yield (f"{prefix}slo",), f"{prefix}slo_burn", ThresholdSpec(warning=0, critical=1)
    spec = target.forecast
    if spec is None:
        return
    rule = rules.get(spec.metric) or rules.get(base_metric(spec.metric))
    if spec.limit is None and (rule is None or rule.critical is None):
        problems.append(
            (("forecast", "limit"), f"{spec.metric} has no critical threshold: give a limit")
        )
        return
    hours = ThresholdSpec(warning=spec.warning, critical=spec.critical, direction="below")
    yield ("forecast",), f"forecast_hours:{spec.metric}", hours
