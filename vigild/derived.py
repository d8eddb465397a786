"""Metrics a target's own recent values give: SLO burn rates and budget, forecasts.

Added to each observation before thresholds see it, so alerting, ``/metrics``,
``/api/status`` and the status page take them like any metric. Pure: the windows
are fed from the observations (and, at start, from the history file, through
``Objective.count`` and ``point``).
"""

from __future__ import annotations

from collections.abc import Mapping

from vigild.config import TargetConfig
from vigild.config_slo import SloSpec
from vigild.fields import format_duration
from vigild.forecast import Trend, hours_until
from vigild.model import Observation
from vigild.slo import (
    BUDGET,
    BURN,
    ERRORS_INCREASE,
    LATENCY,
    LATENCY_GOOD_INCREASE,
    LATENCY_TOTAL_INCREASE,
    REQUESTS_INCREASE,
    ErrorBudget,
    burn_rate_metric,
)
from vigild.thresholds import Rule, base_metric

__all__ = ["Derived", "Objective", "forecast_metric"]


def forecast_metric(metric: str) -> str:
    return f"forecast_hours:{metric}"


class Objective:
    """One SLO of a target: its error budget and the names of its metrics."""

    def __init__(self, prefix: str, spec: SloSpec, events: str | None) -> None:
        self.prefix = prefix
        self.budget = ErrorBudget(spec)
        self.events = "latency" if prefix == LATENCY else events
        """What it counts: ``probes``, ``requests`` (errors are bad) or ``latency``
        (requests slower than ``le`` are bad)."""
        self.rates = {w: burn_rate_metric(w, prefix) for w in spec.windows}
        self.burn = prefix + BURN
        self.left = prefix + BUDGET

    def count(self, at: float, total: float, bad: float, *, now: float | None = None) -> None:
        """``total`` events at ``at``, ``bad`` of them bad (either may be a correction
        of the other's sum: only the sums matter); ``now`` as ``ErrorBudget.add``."""
        if total or bad:
            self.budget.add(at, total, bad, now=now)

    def observed(self, observation: Observation) -> None:
        metrics, at = observation.metrics, observation.time
        if self.events == "probes":
            self.count(at, 1.0, 0.0 if observation.up else 1.0)
        elif self.events == "requests":
            if REQUESTS_INCREASE in metrics:
                self.count(at, metrics[REQUESTS_INCREASE], metrics.get(ERRORS_INCREASE, 0.0))
        elif LATENCY_TOTAL_INCREASE in metrics:
            total = metrics[LATENCY_TOTAL_INCREASE]
            self.count(at, total, total - metrics.get(LATENCY_GOOD_INCREASE, 0.0))


class Derived:
    """The derived metrics of one target (and of each thing it expands into)."""

    def __init__(self, target: TargetConfig, rules: Mapping[str, Rule]) -> None:
        self.target = target
        self.objectives = [
            Objective(prefix, spec, target.SLO_EVENTS) for prefix, spec in target.objectives()
        ]
        spec = target.forecast
        self._trends: dict[str, Trend] = {}
        """Per observed name (a container target's ``target/container``)."""
        self._limit = 0.0
        self._far = ""
        """Why there is no forecast when the line is out of reach."""
        self._rising = True
        if spec is not None:
            rule = rules.get(spec.metric) or rules.get(base_metric(spec.metric))
            self._rising = rule is None or rule.direction == "above"
            limit = spec.limit if spec.limit is not None or rule is None else rule.critical
            # The config refuses a forecast with neither (thresholds.target_rules).
            assert limit is not None, "a forecast without a limit passed validation"
            self._limit = limit
            self._far = f"{spec.metric} does not reach {limit:g} in {format_duration(spec.horizon)}"

    @classmethod
    def of(cls, target: TargetConfig, rules: Mapping[str, Rule]) -> Derived | None:
        """None for a target with neither an slo nor a forecast: no cost per probe."""
        if not target.objectives() and target.forecast is None:
            return None
        return cls(target, rules)

    # -- fed ---------------------------------------------------------------

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
        for objective in self.objectives:
            objective.observed(observation)
            self._slo(objective, observation)
        spec = self.target.forecast
        if spec is not None:
            value = observation.metrics.get(spec.metric)
            if value is not None:
                self.point(observation.target, observation.time, value)
            self._forecast(observation)

    def _slo(self, objective: Objective, observation: Observation) -> None:
        burn = objective.budget.at(observation.time)
        metrics = observation.metrics
        for window, name in objective.rates.items():
            rate = burn.rates.get(window)
            if rate is None:
                _absent(observation, name, "no events in the window")
            else:
                metrics[name] = rate
        if burn.level is None:
            _absent(observation, objective.burn, "no events in any window")
        else:
            metrics[objective.burn] = float(burn.level)
        if burn.remaining is None:
            _absent(observation, objective.left, "no events in the period")
        else:
            metrics[objective.left] = burn.remaining

    def partial(self, now: float) -> list[str]:
        """The SLO metrics whose window is longer than the events held: computed over
        what exists."""
        found = []
        for objective in self.objectives:
            for window in objective.budget.partial(now):
                found.append(objective.rates.get(window, objective.left))
        return found

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
            _absent(observation, name, self._far)
        else:
            observation.metrics[name] = hours


def _absent(observation: Observation, metric: str, why: str) -> None:
    observation.no_data |= {metric}
    observation.reasons[metric] = why
