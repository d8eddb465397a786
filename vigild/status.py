"""What vigild currently sees: the last observation of every target and every open alert.

The same document is served as ``/api/status`` and printed by
``vigild --once --format json``; the text report is a rendering of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from vigild import __version__
from vigild.alerting.engine import Alert, Engine
from vigild.config import Config, TargetConfig
from vigild.model import Observation, Severity, rfc3339, worst
from vigild.thresholds import Verdict

__all__ = ["Board", "text_report"]


def _stamp(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


class Board:
    """The latest observation and verdicts per target, as the cycles report them."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[Observation, list[Verdict]]] = {}

    def record(self, target: str, observation: Observation, verdicts: list[Verdict]) -> None:
        self.latest[target] = (observation, verdicts)

    def retain(self, targets: Iterable[str]) -> None:
        keep = set(targets)
        for name in self.latest.keys() - keep:
            del self.latest[name]

    def worst(self) -> Severity:
        """The worst current verdict of all targets: the ``--once`` exit code."""
        return worst(v.severity for _, verdicts in self.latest.values() for v in verdicts)

    def document(self, config: Config, engine: Engine, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "version": __version__,
            "generated_at": _stamp(now),
            "worst": self.worst().label,
            "targets": [self._target(t) for t in config.targets],
            "alerts": [
                _alert(a, engine.inhibited(a), now)
                for a in sorted(engine.alerts(), key=lambda a: (a.target, a.metric))
                if a.visible or a.pending
            ],
        }

    def _target(self, target: TargetConfig) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": target.name,
            "type": target.type,
            "labels": target.labels,
        }
        if target.type == "http":
            entry["url"] = target.url
        latest = self.latest.get(target.name)
        if latest is None:
            entry.update(up=None, observation=None, verdicts=[])
            return entry
        observation, verdicts = latest
        entry.update(
            up=observation.up,
            observation={
                "time": _stamp(observation.time),
                "up": observation.up,
                "error": observation.error,
                "duration_seconds": round(observation.duration, 6),
                "metrics": observation.metrics,
            },
            verdicts=[
                {
                    "metric": v.metric,
                    "severity": v.severity.label,
                    "value": v.value,
                    "threshold": v.threshold,
                }
                for v in verdicts
            ],
        )
        return entry


def _alert(alert: Alert, inhibited: bool, now: float) -> dict[str, Any]:
    if alert.flapping:
        state = "flapping"
    elif alert.severity is None:
        state = "pending"
    else:
        state = "firing"
    pending_since = min(alert.breach.values()) if alert.breach else None
    since = alert.started if alert.severity is not None else pending_since
    return {
        "fingerprint": alert.fingerprint,
        "target": alert.target,
        "metric": alert.metric,
        "state": state,
        "severity": (alert.severity or alert.peak or Severity.OK).label,
        "since": _stamp(since),
        "for_seconds": round(now - since, 3) if since is not None else None,
        "value": alert.value,
        "threshold": alert.threshold,
        "runbook": alert.runbook,
        "note": alert.note,
        "inhibited": inhibited,
    }


def text_report(document: dict[str, Any]) -> str:
    """One line per target and per open alert, for a terminal or a cron mail."""
    lines = [
        f"vigild {document['version']}: {len(document['targets'])} targets, "
        f"worst {document['worst'].upper()}"
    ]
    width = max((len(t["name"]) for t in document["targets"]), default=0)
    for target in document["targets"]:
        observation = target["observation"]
        if observation is None:
            lines.append(f"  {target['name']:<{width}}  NOT PROBED")
            continue
        if not observation["up"]:
            lines.append(f"  {target['name']:<{width}}  DOWN  {observation['error']}")
            continue
        values = " ".join(
            f"{v['metric']}={_number(v['value'])}({v['severity'].upper()})"
            for v in target["verdicts"]
            if v["metric"] != "up"
        )
        lines.append(f"  {target['name']:<{width}}  UP    {values}".rstrip())
    alerts = [a for a in document["alerts"] if a["state"] != "pending"]
    if alerts:
        lines.append("open alerts:")
    for alert in alerts:
        extra = " (inhibited: target down)" if alert["inhibited"] else ""
        lines.append(
            f"  {alert['severity'].upper():<8} {alert['target']} {alert['metric']} "
            f"value={_number(alert['value'])} threshold={_number(alert['threshold'])} "
            f"since {alert['since']} [{alert['state']}]{extra}"
            + (f" ({alert['note']})" if alert["note"] else "")
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
