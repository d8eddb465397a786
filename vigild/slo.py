"""Error budgets: burn rates over windows, from good and bad events. Pure: no I/O, no clock.

Burn rate = (bad / total over the window) / (1 - objective / 100): 1 spends the
budget exactly over the period, 14.4 spends a 30-day budget's 2 % in an hour.
A window with no events has no burn rate (absent, never UNKNOWN).

Each window keeps running sums in ``BUCKETS`` ring buckets of 1/``BUCKETS`` of
its length, so an event costs a few additions whatever the window's length and
memory is fixed per window. The window read at a time is the last ``BUCKETS``
buckets up to the one holding that time: its start moves in steps of one
bucket, so it covers between ``(BUCKETS - 1) / BUCKETS`` of the window and the
whole of it.
"""

from __future__ import annotations

import functools
from array import array
from dataclasses import dataclass

from vigild.config_slo import SloSpec
from vigild.fields import format_duration

__all__ = [
    "BUCKETS",
    "BUDGET",
    "BURN",
    "ERRORS_INCREASE",
    "LATENCY",
    "LATENCY_GOOD_INCREASE",
    "LATENCY_TOTAL_INCREASE",
    "REQUESTS_INCREASE",
    "Burn",
    "ErrorBudget",
    "Window",
    "burn_rate_metric",
]

BUCKETS = 30

BURN = "slo_burn"
"""The alert metric: 2 while a critical window pair burns, 1 a warning one, else 0."""
BUDGET = "slo_error_budget_remaining_percent"
REQUESTS_INCREASE = "requests_increase"
ERRORS_INCREASE = "errors_increase"
LATENCY_TOTAL_INCREASE = "latency_total_increase"
LATENCY_GOOD_INCREASE = "latency_good_increase"
"""For a ``latency_slo``: the histogram's +Inf and ``le`` buckets' increases."""
LATENCY = "latency_"
"""Before the metric names of a latency SLO: ``latency_slo_burn``, ..."""
"""What a prometheus target with an slo reports: its counters' increases since the last
scrape, resets handled; summed over a window, PromQL's ``increase`` less its extrapolation."""


@functools.cache
def burn_rate_metric(window: float, prefix: str = "") -> str:
    """One string per name, shared by every target that reports it."""
    return f"{prefix}slo_burn_rate:{format_duration(window)}"


class Window:
    """Running sums of events over one window length, in ring buckets."""

    __slots__ = ("_head", "_slots", "bad", "length", "total", "width")

    def __init__(self, length: float) -> None:
        self.length = length
        self.width = length / BUCKETS
        self._slots = array("d", bytes(16 * BUCKETS))
        """Bucket i's total at 2i, its bad events at 2i + 1: one array, half the overhead."""
        self._head: int | None = None
        """Index (time // width) of the newest bucket."""
        self.total = 0.0
        self.bad = 0.0

    def _advance(self, index: int) -> None:
        """Empty the buckets between the newest one and ``index``, which becomes it."""
        head = self._head
        stale = BUCKETS if head is None else min(index - head, BUCKETS)
        slots = self._slots
        for i in range(index - stale + 1, index + 1):
            at = 2 * (i % BUCKETS)
            self.total -= slots[at]
            self.bad -= slots[at + 1]
            slots[at] = slots[at + 1] = 0.0
        self._head = index
        if stale == BUCKETS:
            # Nothing is left: drop what subtraction rounded rather than carry it.
            self.total = self.bad = 0.0

    def add(self, at: float, total: float, bad: float) -> None:
        index = int(at // self.width)
        head = self._head
        if head is None or index > head:
            self._advance(index)
        elif index <= head - BUCKETS:
            return  # older than the window
        slot = 2 * (index % BUCKETS)
        self._slots[slot] += total
        self._slots[slot + 1] += bad
        self.total += total
        self.bad += bad

    def sums(self, now: float) -> tuple[float, float]:
        """(total, bad) over the window ending at ``now``."""
        index = int(now // self.width)
        head = self._head
        if head is not None and index > head:
            self._advance(index)
        return self.total, self.bad


@dataclass(frozen=True, slots=True)
class Burn:
    """What an error budget says at one time."""

    rates: dict[float, float]
    """Burn rate per window with events in it."""
    level: int | None
    """``slo_burn``: 2 a critical pair burns, 1 a warning pair, 0 none; None: no events
    in any window."""
    remaining: float | None
    """Percent of the period's budget left (negative when overspent); None: no events."""


class ErrorBudget:
    """One SLO's windows. ``add`` each event count, ``at`` to read them."""

    def __init__(self, spec: SloSpec) -> None:
        self.spec = spec
        self.allowed = (100.0 - spec.objective) / 100.0
        """The share of bad events the objective allows: the budget."""
        self.rated = spec.windows
        """The windows a burn rate is reported for (the alerts'), shortest first."""
        self.pairs = [
            (a.long, a.short, a.factor, 2 if a.severity == "critical" else 1) for a in spec.alerts
        ]
        lengths = sorted({*self.rated, spec.period})
        self.windows = {length: Window(length) for length in lengths}
        self.since: float | None = None
        """When the first event held came."""

    def add(self, at: float, total: float, bad: float, *, now: float | None = None) -> None:
        """``now``: the time the windows will be read at, when known (a warm-up), so the
        windows that end before ``at`` is reached skip it cheaply."""
        if self.since is None or at < self.since:
            self.since = at
        for length, window in self.windows.items():
            if now is None or at > now - length:
                window.add(at, total, bad)

    def rate(self, window: float, now: float) -> float | None:
        total, bad = self.windows[window].sums(now)
        if total <= 0:
            return None
        return (bad / total) / self.allowed

    def at(self, now: float) -> Burn:
        rates = {}
        for length in self.rated:
            rate = self.rate(length, now)
            if rate is not None:
                rates[length] = rate
        level: int | None = None
        if rates:
            level = 0
            for long, short, factor, severity in self.pairs:
                # A window without events does not burn (absent counts as 0 here).
                if (
                    rates.get(long, 0.0) > factor
                    and rates.get(short, 0.0) > factor
                    and severity > level
                ):
                    level = severity
        spent = self.rate(self.spec.period, now)
        return Burn(rates, level, None if spent is None else 100.0 * (1.0 - spent))

    def partial(self, now: float) -> tuple[float, ...]:
        """Windows (and the period) longer than the span of the events held, shortest
        first: computed over what exists."""
        held = 0.0 if self.since is None else now - self.since
        return tuple(w for w in self.windows if w > held)
