"""The alert state machine: it owns time.

Readings (verdicts) move each alert through pending → firing → resolved,
with a separate ``for`` clock per level, ``recover_for`` for the way back,
and flap detection. What is told to whom, and when, is not its business:
``vigild.alerting.pipeline`` takes the alerts it changed (``transitions``)
through inhibition, silences, routing and grouping to the store.

State lives in memory; the pipeline writes what changed at each flush.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import structlog

from vigild.alerting.alert import Alert, severity_label
from vigild.alerting.policy import Policy, no_silences
from vigild.alerting.silences import Silences
from vigild.alerting.stages.route import Addresses, Labels, Route, no_address, no_labels
from vigild.model import FLAP_WINDOW, Identity, Severity
from vigild.storage.alerts import AlertRow
from vigild.thresholds import Verdict

__all__ = ["Engine"]

log = structlog.get_logger("vigild.engine")


_LEVELS = {
    Severity.OK: (),
    Severity.WARNING: ("warning",),
    Severity.CRITICAL: ("warning", "critical"),
    Severity.UNKNOWN: ("unknown",),
}
"""The breach clocks a reading keeps running: a critical reading is a warning breach too."""


def _unchanged(text: str) -> str:
    return text


class Engine:
    def __init__(
        self,
        rows: Iterable[AlertRow],
        routes: Iterable[Route],
        *,
        flap_limit: int,
        labels: Labels = no_labels,
        redact: Callable[[str], str] = _unchanged,
        identity: Identity | None = None,
        silences: Silences | None = None,
        dependencies: Mapping[str, Sequence[str]] | None = None,
        connectivity: str | None = None,
        max_per_message: int = 50,
        addresses: Addresses = no_address,
    ) -> None:
        """``rows``: the alerts as the state file last held them (``AlertStates.load``).

        The engine only keeps of the config what the pipeline's stages work by
        (``policy``), and never changes it: a reload builds a ``successor``.
        """
        self.identity = identity or Identity.local()
        self.flap_limit = flap_limit
        self._redact = redact
        self.policy = Policy(
            routes=tuple(routes),
            labels=labels,
            silences=silences if silences is not None else no_silences(),
            dependencies=dependencies or {},
            connectivity=connectivity,
            max_per_message=max_per_message,
            addresses=addresses,
        )
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._touched: dict[tuple[str, str], Alert] = {}
        for row in rows:
            alert = Alert.from_row(row)
            self._alerts[(alert.target, alert.metric)] = alert

    def successor(
        self,
        routes: Iterable[Route],
        *,
        flap_limit: int,
        labels: Labels,
        redact: Callable[[str], str],
        silences: Silences | None = None,
        dependencies: Mapping[str, Sequence[str]] | None = None,
        connectivity: str | None = None,
        max_per_message: int = 50,
        identity: Identity | None = None,
        addresses: Addresses = no_address,
    ) -> Engine:
        """An engine for a reloaded config that carries this one's alerts on.

        Both hold the same alert state, so a cycle still running on this engine
        goes on stepping the alerts the successor tells about. A new
        ``identity`` names the alerts that open from now on; an open alert keeps
        the one it was announced with until it resolves (a receiver knows it by that).
        """
        successor = Engine(
            (),
            routes,
            flap_limit=flap_limit,
            labels=labels,
            redact=redact,
            identity=identity or self.identity,
            silences=silences,
            dependencies=dependencies,
            connectivity=connectivity,
            max_per_message=max_per_message,
            addresses=addresses,
        )
        successor._alerts, successor._touched = self._alerts, self._touched
        return successor

    # -- reading ----------------------------------------------------------

    def observe(self, target: str, verdicts: Iterable[Verdict], now: float) -> bool:
        """Step the target's alerts with one reading each; True if any open severity moved."""
        moved = False
        for verdict in verdicts:
            key = (target, verdict.metric)
            alert = self._alerts.get(key)
            if alert is None:
                if verdict.severity is Severity.OK:
                    continue  # the common case: nothing to remember
                identity = self.identity
                alert = Alert(
                    target,
                    verdict.metric,
                    identity.fingerprint(target, verdict.metric),
                    origin=identity.labels,
                )
                self._alerts[key] = alert
            moved |= self._step(alert, verdict, now)
            self._touched[key] = alert
        return moved

    def _step(self, alert: Alert, verdict: Verdict, now: float) -> bool:
        reading = verdict.severity
        rule = verdict.rule
        levels = _LEVELS[reading]
        for level in ("warning", "critical", "unknown"):
            if level in levels:
                alert.breach.setdefault(level, now)
            else:
                alert.breach.pop(level, None)
        if reading is Severity.OK:
            alert.good_since = alert.good_since if alert.good_since is not None else now
        else:
            alert.good_since = None
        if reading is Severity.CRITICAL:
            alert.calm_since = None
        elif alert.calm_since is None:
            alert.calm_since = now
        alert.value = verdict.value
        alert.runbook = rule.runbook
        alert.note = self._redact(verdict.note) if verdict.note else None

        def held(level: str) -> bool:
            since = alert.breach.get(level)
            return since is not None and now >= since + rule.for_

        def recovered(since: float | None) -> bool:
            return since is not None and now >= since + rule.recover_for

        current = alert.severity
        wanted: Severity | None = current
        if held("critical"):
            wanted = Severity.CRITICAL
        elif held("warning"):
            calm = current is not Severity.CRITICAL or recovered(alert.calm_since)
            wanted = Severity.WARNING if calm else Severity.CRITICAL
        elif held("unknown"):
            wanted = Severity.UNKNOWN
        elif current is not None and reading is Severity.OK and recovered(alert.good_since):
            wanted = None
        elif current is Severity.CRITICAL and recovered(alert.calm_since):
            wanted = Severity.WARNING
        alert.threshold = rule.line(wanted or reading)

        if alert.flapping and alert.changed is not None and now - alert.changed >= FLAP_WINDOW:
            alert.flapping = False
            alert.fired.clear()
            log.info("alert stable again", target=alert.target, metric=alert.metric)
        if wanted == current:
            return False
        self._move(alert, wanted, now)
        return True

    def _move(self, alert: Alert, wanted: Severity | None, now: float) -> None:
        previous = alert.severity
        alert.severity = wanted
        alert.severity_since = now
        alert.changed = now
        if wanted is None:
            alert.ended = now
        elif previous is None:
            if not alert.told:  # no notifier knows it: it may take the current identity
                self._renew(alert)
            alert.started, alert.ended, alert.peak = now, None, wanted
            alert.closed_by = None
            alert.fired = [t for t in alert.fired if t > now - FLAP_WINDOW] + [now]
            if len(alert.fired) > self.flap_limit and not alert.flapping:
                alert.flapping = True
                log.warning(
                    "alert flapping",
                    target=alert.target,
                    metric=alert.metric,
                    fires_in_last_hour=len(alert.fired),
                )
        if wanted is not None and (alert.peak is None or wanted.urgency > alert.peak.urgency):
            alert.peak = wanted
        log.info(
            "alert transition",
            target=alert.target,
            metric=alert.metric,
            severity=severity_label(wanted) or "resolved",
            previous=severity_label(previous),
            value=alert.value,
            threshold=alert.threshold,
            flapping=alert.flapping,
        )

    def _renew(self, alert: Alert) -> None:
        fingerprint = self.identity.fingerprint(alert.target, alert.metric)
        if fingerprint != alert.fingerprint:
            alert.replaced = alert.replaced or alert.fingerprint
            alert.fingerprint = fingerprint
        alert.origin = self.identity.labels

    # -- handing over -----------------------------------------------------

    def transitions(self) -> tuple[Alert, ...]:
        """The alerts changed since the last ``recorded``: each one to record, and to tell."""
        return tuple(self._touched.values())

    def recorded(self, forgotten: Iterable[Alert]) -> None:
        """The transitions are in the store; ``forgotten`` are not kept there any more."""
        for alert in forgotten:
            self._alerts.pop((alert.target, alert.metric), None)
        self._touched.clear()

    # -- reading the state ------------------------------------------------

    def alerts(self) -> Iterator[Alert]:
        return iter(self._alerts.values())

    def severities(self, target: str, verdicts: Iterable[Verdict]) -> list[Severity]:
        """The severity of each verdict's alert now, in order (what ``/metrics`` shows)."""
        alerts = self._alerts
        ok = Severity.OK
        return [
            ok if (alert := alerts.get((target, v.metric))) is None else alert.severity or ok
            for v in verdicts
        ]

    def retain(
        self, keep: Callable[[str, str], bool], now: float, notes: Mapping[str, str] | None = None
    ) -> None:
        """Close the alerts of targets and metrics a reloaded config no longer watches;
        ``notes``: why, per target (its resolved message says it)."""
        for key, alert in list(self._alerts.items()):
            if keep(alert.target, alert.metric):
                continue
            alert.breach.clear()
            alert.flapping = False
            if alert.severity is not None:
                alert.closed_by = (notes or {}).get(alert.target)
                self._move(alert, None, now)
            self._touched[key] = alert
