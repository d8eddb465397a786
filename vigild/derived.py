"""Metrics a target's own recent values give: SLO burn rates and budget, forecasts.

Added to each observation before thresholds see it, so alerting, ``/metrics``,
``/api/status`` and the status page take them like any metric. Pure apart from
one log line per partial window: the windows are fed from the observations (and,
at start, from the history file, through ``count``/``point``).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from vigild.config import TargetConfig
from vigild.fields import format_duration
from vigild.forecast import Trend, hours_until
from vigild.model import Observation
from vigild.slo import (
    BUDGET,
    BURN,
    ERRORS_INCREASE,
    REQUESTS_INCREASE,
    ErrorBudget,
    burn_rate_metric,
)
from vigild.thresholds import Rule, base_metric

__all__ = ["Derived", "forecast_metric"]

log = structlog.get_logger("vigild.derived")


def forecast_metric(metric: str) -> str:
    return f"forecast_hours:{metric}"


class Derived:
    """The derived metrics of one target (and of each thing it expands into)."""

    def __init__(self, target: TargetConfig, rules: Mapping[str, Rule]) -> None:
        self.target = target
        self.budget = None if target.slo is None else ErrorBudget(target.slo)
        self.events = target.SLO_EVENTS
        self._names = (
            {} if target.slo is None else {w: burn_rate_metric(w) for w in target.slo.windows}
        )
        self._told_partial: set[float] = set()
        spec = target.forecast
        self._trends: dict[str, Trend] = {}
        """Per observed name (a container target's ``target/container``)."""
        self._limit = 0.0
        self._rising = True
        if spec is not None:
            rule = rules.get(spec.metric) or rules.get(base_metric(spec.metric))
            self._rising = rule is None or rule.direction == "above"
            limit = spec.limit if spec.limit is not None or rule is None else rule.critical
            # The config refuses a forecast with neither (thresholds.target_rules).
            assert limit is not None, "a forecast without a limit passed validation"
            self._limit = limit

    @classmethod
    def of(cls, target: TargetConfig, rules: Mapping[str, Rule]) -> Derived | None:
        """None for a target with neither an slo nor a forecast: no cost per probe."""
        if target.slo is None and target.forecast is None:
            return None
        return cls(target, rules)

    # -- fed ---------------------------------------------------------------

    def count(self, at: float, total: float, bad: float) -> None:
        """Events for the SLO: ``total`` of them at ``at``, ``bad`` of them bad."""
        if self.budget is not None and (total > 0 or bad > 0):
            self.budget.add(at, total, bad)

    def point(self, observed: str, at: float, value: float) -> None:
        """A value of the forecast's gauge."""
        spec = self.target.forecast
        if spec is None:
            return
        trend = self._trends.get(observed)
        if trend is None:
            trend = self._trends[observed] = Trend(spec.window)
        trend.add(at, value)

    # -- per observation -----------------------------------------------------

    def __call__(self, observation: Observation) -> None:
        """Feed the observation's values in, and add the derived metrics to it."""
        if self.budget is not None:
            self._events(observation)
            self._slo(observation)
        spec = self.target.forecast
        if spec is not None:
            value = observation.metrics.get(spec.metric)
            if value is not None:
                self.point(observation.target, observation.time, value)
            self._forecast(observation)

    def _events(self, observation: Observation) -> None:
        metrics, at = observation.metrics, observation.time
        if self.events == "probes":
            self.count(at, 1.0, 0.0 if observation.up else 1.0)
        elif REQUESTS_INCREASE in metrics:
            self.count(at, metrics[REQUESTS_INCREASE], metrics.get(ERRORS_INCREASE, 0.0))

    def _slo(self, observation: Observation) -> None:
        assert self.budget is not None
        burn = self.budget.at(observation.time)
        metrics = observation.metrics
        for window, name in self._names.items():
            rate = burn.rates.get(window)
            if rate is None:
                _absent(observation, name, "no events in the window")
            else:
                metrics[name] = rate
        if burn.level is None:
            _absent(observation, BURN, "no events in any window")
        else:
            metrics[BURN] = float(burn.level)
        if burn.remaining is None:
            _absent(observation, BUDGET, "no events in the period")
        else:
            metrics[BUDGET] = burn.remaining
        for window in burn.partial:
            if window not in self._told_partial:
                self._told_partial.add(window)
                held = observation.time - (self.budget.since or observation.time)
                log.info(
                    "slo window computed over the events held so far (partial)",
                    target=observation.target,
                    window=format_duration(window),
                    held=format_duration(round(held)),
                )

    def _forecast(self, observation: Observation) -> None:
        spec = self.target.forecast
        assert spec is not None
        name = forecast_metric(spec.metric)
        trend = self._trends.get(observation.target)
        fitted = None if trend is None else trend.fit(observation.time)
        if fitted is None:
            _absent(observation, name, f"fewer than two values of {spec.metric}")
            return
        hours = hours_until(fitted, self._limit, rising=self._rising, horizon=spec.horizon)
        if hours is None:
            within = format_duration(spec.horizon)
            _absent(observation, name, f"{spec.metric} does not reach {self._limit:g} in {within}")
        else:
            observation.metrics[name] = hours


def _absent(observation: Observation, metric: str, why: str) -> None:
    observation.no_data |= {metric}
    observation.reasons[metric] = why
