"""Helpers for testing code built on vigild: a clock that tests move by hand, and
alert events to hand a notifier.

The engine and delivery take ``clock=`` (any ``() -> float``), so a test can
walk an incident through hours in milliseconds; a notifier's ``send`` takes a
``Notification`` of ``AlertEvent``s, which ``alert_event`` builds with
defaults for everything a test does not care about.
"""

from __future__ import annotations

from vigild.model import AlertEvent, EventKind, Identity, Severity

__all__ = ["TEST_HOST", "FakeClock", "alert_event"]

TEST_HOST = Identity("testhost")
"""The host ``alert_event``'s events come from unless told otherwise."""


def alert_event(
    target: str = "covabot",
    metric: str = "up",
    kind: EventKind = "firing",
    severity: Severity = Severity.CRITICAL,
    *,
    previous: Severity | None = None,
    value: float | None = 0.0,
    threshold: float | None = None,
    since: float = 1_714_564_984.0,
    ended: float | None = None,
    runbook: str | None = None,
    labels: tuple[tuple[str, str], ...] = (),
    note: str | None = None,
    identity: Identity = TEST_HOST,
    address: str | None = None,
) -> AlertEvent:
    """One alert's line in a notification; the fingerprint is the real one for ``identity``."""
    return AlertEvent(
        fingerprint=identity.fingerprint(target, metric),
        target=target,
        metric=metric,
        kind=kind,
        severity=severity,
        previous=previous,
        value=value,
        threshold=threshold,
        since=since,
        ended=ended,
        runbook=runbook,
        labels=labels,
        note=note,
        origin=identity.labels,
        address=address,
    )


class FakeClock:
    """Unix time that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
