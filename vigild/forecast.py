"""When a gauge will cross a line, from a least-squares fit over a window. Pure.

The fit is PromQL's ``predict_linear``: ordinary least squares over the values
of the window, the intercept taken at the time of the reading, so
``Trend.predict(now, t)`` is ``predict_linear(g[window], t)`` evaluated at
``now``. A flat series has no forecast: its slope is 0, or a rounding's worth,
which reaches no line within a horizon.

Running sums keep a reading O(1): times are held relative to an origin that is
moved up (and the sums made again from the values held) once per window, so
neither the sums' rounding nor the size of unix times grows with uptime.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["Trend", "hours_until"]


class Trend:
    """The values of one gauge over the last ``window`` seconds, fitted on demand.

    Held in two arrays of doubles (16 bytes a value, where tuples of floats would take
    about 100): six hours every 30 s is 11 KiB. Expired values are skipped by an index
    and cut off when the origin moves.
    """

    __slots__ = ("_first", "_n", "_origin", "_sx", "_sxx", "_sxy", "_sy", "_t", "_v", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._t = array("d")
        self._v = array("d")
        self._first = 0
        """Index of the oldest value in the window."""
        self._origin = 0.0
        self._n = 0
        self._sx = self._sy = self._sxx = self._sxy = 0.0

    def add(self, at: float, value: float) -> None:
        if not math.isfinite(value) or (self._n and at <= self._t[-1]):
            return
        if not self._n:
            self._origin = at
        self._t.append(at)
        self._v.append(value)
        self._sum(at, value, 1)

    def _sum(self, at: float, value: float, sign: int) -> None:
        x = at - self._origin
        self._n += sign
        self._sx += sign * x
        self._sy += sign * value
        self._sxx += sign * x * x
        self._sxy += sign * x * value

    def _expire(self, now: float) -> None:
        # PromQL's range [now - window, now] holds both ends.
        times, values = self._t, self._v
        first, start = self._first, now - self.window
        while first < len(times) and times[first] < start:
            self._sum(times[first], values[first], -1)
            first += 1
        self._first = first
        if first < len(times) and times[first] - self._origin > self.window:
            del times[:first], values[:first]
            self._first = 0
            self._origin = times[0]
            self._n = 0
            self._sx = self._sy = self._sxx = self._sxy = 0.0
            for at, value in zip(times, values, strict=True):
                self._sum(at, value, 1)
        elif first == len(times) and first:
            del times[:], values[:]
            self._first = 0
            self._sx = self._sy = self._sxx = self._sxy = 0.0  # what rounding left

    def fit(self, now: float) -> tuple[float, float] | None:
        """(slope per second, value at ``now``) over the window ending at ``now``; None
        with fewer than two values."""
        self._expire(now)
        n = self._n
        if n < 2:
            return None
        mean_x, mean_y = self._sx / n, self._sy / n
        var_x = self._sxx / n - mean_x * mean_x
        if var_x <= 0:
            return None
        slope = (self._sxy / n - mean_x * mean_y) / var_x
        return slope, mean_y + slope * (now - self._origin - mean_x)

    def predict(self, now: float, ahead: float) -> float | None:
        """The fitted value ``ahead`` seconds after ``now``: ``predict_linear``."""
        fitted = self.fit(now)
        return None if fitted is None else fitted[1] + fitted[0] * ahead


def hours_until(
    fitted: tuple[float, float], limit: float, *, rising: bool, horizon: float
) -> float | None:
    """Hours until the fitted line reaches ``limit`` from its good side (0 when it is
    past it); None when it does not move towards it or gets there after ``horizon``."""
    slope, value = fitted
    toward = slope > 0 if rising else slope < 0
    if not toward:
        return None
    past = value >= limit if rising else value <= limit
    seconds = 0.0 if past else (limit - value) / slope
    return seconds / 3600.0 if seconds <= horizon else None
