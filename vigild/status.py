"""What vigild currently sees: the last observation of every target and every open alert.

The same document is served as ``/api/status`` and printed by
``vigild --once --format json``; the text report is a rendering of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from vigild import __version__
from vigild.alerting import pipeline
from vigild.alerting.alert import Alert
from vigild.alerting.engine import Engine
from vigild.alerting.notifiers import text
from vigild.alerting.silences import Silence
from vigild.assembly import Config
from vigild.config import TargetConfig
from vigild.events import ObservationRetired, ProbeResult
from vigild.model import AlertEvent, Observation, Severity, rfc3339, worst
from vigild.redaction import printable
from vigild.thresholds import Verdict
from vigild.wording import counted

__all__ = ["Board", "Moment", "text_report"]


def _stamp(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


class Board:
    """The latest observation and verdicts per target, as the cycles report them."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[Observation, list[Verdict]]] = {}
        """By observed name: the target's, or ``target/container`` for one that expands."""
        self.expanded: dict[str, set[str]] = {}
        """Configured target → the observed names it expanded into."""

    def record(self, target: str, observation: Observation, verdicts: list[Verdict]) -> None:
        self.latest[observation.target] = (observation, verdicts)
        if observation.target != target:
            self.expanded.setdefault(target, set()).add(observation.target)

    def probe_result(self, event: ProbeResult) -> None:
        self.record(event.target, event.observation, event.verdicts)

    def observation_retired(self, event: ObservationRetired) -> None:
        self.latest.pop(event.observed, None)
        self.expanded.get(event.target, set()).discard(event.observed)

    def retain(self, owner_of: Callable[[str], str | None]) -> None:
        """After a reload: forget what no configured target observes any more."""
        for name in [n for n in self.latest if owner_of(n) is None]:
            del self.latest[name]
        for target in list(self.expanded):
            if owner_of(target) is None:
                del self.expanded[target]

    def worst(self) -> Severity:
        """The worst current verdict of all targets: the ``--once`` exit code."""
        return worst(v.severity for _, verdicts in self.latest.values() for v in verdicts)

    def moment(self, config: Config, engine: Engine, now: float | None = None) -> Moment:
        """What the document shows, taken where cycles update it (the event loop): the
        targets' latest results by reference, the open alerts as they stand. Cheap at
        10,000 targets; ``Moment.document`` builds the rest, in any thread."""
        now = time.time() if now is None else now
        inhibitor, silencer = pipeline.filters(engine)
        seen = Board()
        seen.latest = dict(self.latest)  # a cycle replaces entries, never changes one
        seen.expanded = {target: set(names) for target, names in self.expanded.items()}
        alerts = [
            _open(a, inhibitor.reason(a), silencer.covering(a, now))
            for a in sorted(engine.alerts(), key=lambda a: (a.target, a.metric))
            if a.visible or a.pending
        ]
        return Moment(config, seen, alerts, engine.policy.silences.listing(now), now)

    def document(self, config: Config, engine: Engine, now: float | None = None) -> dict[str, Any]:
        return self.moment(config, engine, now).document()


@dataclass(frozen=True, slots=True)
class Moment:
    """The board and the engine's alerts at one moment (``Board.moment``)."""

    config: Config
    board: Board
    """A copy: the cycles go on updating the live one."""
    alerts: list[_Open]
    silences: list[dict[str, Any]]
    now: float

    def document(self, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The status document; with ``entries`` (of ``entry``), those as its targets."""
        daemon = self.config.daemon
        return {
            "version": __version__,
            "instance": daemon.instance,
            "external_labels": daemon.external_labels,
            "replica": daemon.replica,
            "generated_at": _stamp(self.now),
            "worst": self.board.worst().label,
            "targets": [self.entry(*shown) for shown in self.listed()]
            if entries is None
            else entries,
            "alerts": [_alert(a, self.now) for a in self.alerts],
            "silences": self.silences,
        }

    def listed(self) -> list[tuple[TargetConfig, str]]:
        """(target, name) of each of the document's entries, in its order: one per target,
        or one per container a target selected by labels."""
        listed: list[tuple[TargetConfig, str]] = []
        for target in self.config.targets:
            expanded = self.board.expanded.get(target.name)
            if expanded:
                listed += ((target, name) for name in sorted(expanded))
            else:
                listed.append((target, target.name))
        return listed

    def state(self, name: str) -> str:
        """The colour of ``name``'s row: its worst current verdict, "critical" when down,
        "none" before the first probe."""
        latest = self.board.latest.get(name)
        if latest is None:
            return "none"
        observation, verdicts = latest
        if not observation.up:
            return "critical"
        return worst(v.severity for v in verdicts).label

    def down(self, name: str) -> bool:
        """Whether ``name``'s last probe found it down."""
        latest = self.board.latest.get(name)
        return latest is not None and not latest[0].up

    def entry(self, target: TargetConfig, name: str) -> dict[str, Any]:
        """The document's entry of ``name`` (of ``target``): a new dict each time."""
        entry: dict[str, Any] = {
            "name": name,
            "type": target.type,
            "labels": target.labels,
        }
        url = target.shown_url()
        if url is not None:
            entry["url"] = url
        latest = self.board.latest.get(name)
        if latest is None:
            entry.update(up=None, observation=None, verdicts=[])
        else:
            observation, verdicts = latest
            entry.update(
                up=observation.up,
                observation={
                    "time": _stamp(observation.time),
                    "up": observation.up,
                    "error": observation.error,
                    "duration_seconds": round(observation.duration, 6),
                    "metrics": observation.metrics,
                    "no_data": {
                        metric: observation.reasons.get(metric, "no data")
                        for metric in sorted(observation.no_data)
                    },
                },
                verdicts=[
                    {
                        "metric": v.metric,
                        "severity": v.severity.label,
                        "value": v.value,
                        "threshold": v.threshold,
                        "note": v.note,
                    }
                    for v in verdicts
                ],
            )
        if name == target.name and name in self.config.sources:
            # Found by discovery, not in the file.
            entry["discovered"] = {"container": self.config.sources[name]}
        return entry


class _Open(NamedTuple):
    """An open alert as the document shows it, its fields read on the loop: the engine
    goes on changing the alert itself."""

    fingerprint: str
    target: str
    metric: str
    state: str
    severity: str
    since: float | None
    value: float | None
    threshold: float | None
    runbook: str | None
    note: str | None
    held_back: str | None
    silenced_by: str | None


def _open(alert: Alert, held_back: str | None, silence: Silence | None) -> _Open:
    if alert.flapping:
        state = "flapping"
    elif alert.severity is None:
        state = "pending"
    else:
        state = "firing"
    pending_since = min(alert.breach.values()) if alert.breach else None
    return _Open(
        alert.fingerprint,
        alert.target,
        alert.metric,
        state,
        # A pending alert is heading for the level it breaches, never "ok".
        (alert.severity or _breached(alert) or alert.peak or Severity.OK).label,
        alert.started if alert.severity is not None else pending_since,
        alert.value,
        alert.threshold,
        alert.runbook,
        alert.note,
        held_back,
        silence.id if silence is not None else None,
    )


def _alert(alert: _Open, now: float) -> dict[str, Any]:
    since = alert.since
    return {
        "fingerprint": alert.fingerprint,
        "target": alert.target,
        "metric": alert.metric,
        "state": alert.state,
        "severity": alert.severity,
        "since": _stamp(since),
        "for_seconds": round(now - since, 3) if since is not None else None,
        "value": alert.value,
        "threshold": alert.threshold,
        "runbook": alert.runbook,
        "note": alert.note,
        "inhibited": alert.held_back is not None,
        "inhibited_because": alert.held_back,
        "silenced_by": alert.silenced_by,
    }


def _breached(alert: Alert) -> Severity | None:
    return worst(map(Severity.parse, alert.breach)) if alert.breach else None


def text_report(document: dict[str, Any]) -> str:
    """One line per target and per open alert, for a terminal or a cron mail."""
    lines = [
        f"vigild {document['version']} on {document['instance']}: "
        f"{counted(len(document['targets']), 'target')}, worst {document['worst'].upper()}"
    ]
    names = [printable(t["name"]) for t in document["targets"]]
    width = max(map(len, names), default=0)
    for name, target in zip(names, document["targets"], strict=True):
        observation = target["observation"]
        if observation is None:
            lines.append(f"  {name:<{width}}  NOT PROBED")
            continue
        if not observation["up"]:
            # An error's further lines (a push job's due time, its output) go under it.
            first, *more = str(observation["error"]).split("\n")
            lines.append(f"  {name:<{width}}  DOWN  {first}")
            lines += (f"  {'':<{width}}        {line}" for line in more)
            continue
        absent = observation.get("no_data", {})
        values = ", ".join(_value(v, absent) for v in target["verdicts"] if v["metric"] != "up")
        lines.append(f"  {name:<{width}}  UP    {values}".rstrip())
    alerts = [a for a in document["alerts"] if a["state"] != "pending"]
    if alerts:
        lines.append("open alerts:")
    for alert in alerts:
        extra = f" (held back: {alert['inhibited_because']})" if alert["inhibited"] else ""
        if alert["silenced_by"]:
            extra += f" (silenced by {alert['silenced_by']})"
        lines.append(
            f"  {alert['severity'].upper():<8} {_headline(alert)}, "
            f"since {alert['since']} [{alert['state']}]{extra}"
        )
    # Names, errors and notes may hold control characters: one line each stays one line.
    return "\n".join(map(printable, lines))


def _value(verdict: dict[str, Any], absent: dict[str, str]) -> str:
    """``latency 9.81 ms``, ``disk / 96.2 % (CRITICAL)``, ``health UNKNOWN (why)``."""
    metric, severity = verdict["metric"], verdict["severity"]
    words = text.metric_words(metric)
    if severity == "unknown":
        why = verdict.get("note") or "not reported"
        return f"{words} UNKNOWN ({why})"
    if metric in absent and verdict["value"] is None:
        return f"{words} no data"
    shown = f"{words} {text.reading(metric, verdict['value'])}"
    return shown if severity == "ok" else f"{shown} ({severity.upper()})"


def _headline(alert: dict[str, Any]) -> str:
    """The open alert in the words its notification has."""
    event = AlertEvent(
        fingerprint=alert["fingerprint"],
        target=alert["target"],
        metric=alert["metric"],
        kind="firing",
        severity=Severity.parse(alert["severity"]),
        previous=None,
        value=alert["value"],
        threshold=alert["threshold"],
        since=0.0,
        note=alert["note"],
    )
    return text.headline(event, 0.0)
