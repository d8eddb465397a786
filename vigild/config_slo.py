"""The ``slo`` and ``forecast`` keys a target may take (see docs/slo.md)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigild.fields import DAY, HOUR, MINUTE, SECOND, duration_between

__all__ = ["DEFAULT_SLO_ALERTS", "ForecastSpec", "LatencySloSpec", "SloAlert", "SloSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SloAlert(_Strict):
    """One multiwindow alert: ``severity`` when the burn rate is above ``factor`` over
    both ``long`` and ``short`` (the short window makes it resolve soon after a fix)."""

    severity: Literal["warning", "critical"]
    long: Annotated[float, duration_between(SECOND, 400 * DAY)]
    short: Annotated[float, duration_between(SECOND, 400 * DAY)]
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_is_shorter(self) -> Self:
        if self.short > self.long:
            raise ValueError("short must not be longer than long")
        return self


# The SRE workbook's multiwindow, multi-burn-rate alerts for a 30-day objective.
DEFAULT_SLO_ALERTS = (
    SloAlert(severity="critical", long=HOUR, short=5 * MINUTE, factor=14.4),
    SloAlert(severity="critical", long=6 * HOUR, short=30 * MINUTE, factor=6),
    SloAlert(severity="warning", long=DAY, short=2 * HOUR, factor=3),
    SloAlert(severity="warning", long=3 * DAY, short=6 * HOUR, factor=1),
)


class SloSpec(_Strict):
    """``slo = { objective, period, alerts }``: the share of good events promised."""

    objective: float = Field(gt=0, lt=100)
    """Percent of good events (requests, probes), e.g. 99.9."""
    period: Annotated[float, duration_between(MINUTE, 400 * DAY)] = 30 * DAY
    alerts: tuple[SloAlert, ...] = DEFAULT_SLO_ALERTS

    @property
    def windows(self) -> tuple[float, ...]:
        """Every window a burn rate is reported for, shortest first."""
        return tuple(sorted({w for a in self.alerts for w in (a.long, a.short)}))


class LatencySloSpec(SloSpec):
    """``latency_slo = { objective, le, period }``: the share of requests served within
    ``le`` seconds, from the histogram's buckets (``le`` must be one of its bounds)."""

    le: float = Field(gt=0)


class ForecastSpec(_Strict):
    """``forecast = { metric, window, horizon, limit, warning, critical }``: hours until a
    gauge crosses ``limit`` (default its own critical threshold), as ``predict_linear``."""

    metric: str = Field(min_length=1)
    window: Annotated[float, duration_between(10 * SECOND, 30 * DAY)] = 6 * HOUR
    horizon: Annotated[float, duration_between(MINUTE, 400 * DAY)] = DAY
    """Crossings further away than this are no forecast."""
    limit: float | None = None
    warning: float | None = None
    """Hours: fewer is worse."""
    critical: float | None = None
