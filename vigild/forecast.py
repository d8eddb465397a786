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
from collections import deque

__all__ = ["Trend", "hours_until"]


class Trend:
    """The values of one gauge over the last ``window`` seconds, fitted on demand."""

    __slots__ = ("_n", "_origin", "_points", "_sx", "_sxx", "_sxy", "_sy", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._points: deque[tuple[float, float]] = deque()
        self._origin = 0.0
        self._n = 0
        self._sx = self._sy = self._sxx = self._sxy = 0.0

    def add(self, at: float, value: float) -> None:
        if not math.isfinite(value) or (self._points and at <= self._points[-1][0]):
            return
        if not self._points:
            self._origin = at
        self._points.append((at, value))
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
        points = self._points
        while points and points[0][0] < now - self.window:
            self._sum(*points.popleft(), -1)
        if points and points[0][0] - self._origin > self.window:
            self._origin = points[0][0]
            self._n = 0
            self._sx = self._sy = self._sxx = self._sxy = 0.0
            for at, value in points:
                self._sum(at, value, 1)

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
