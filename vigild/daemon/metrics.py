"""vigild's own ``/metrics``: the names of DESIGN.md, on a registry of its own.

A registry per daemon (not prometheus-client's global one) keeps tests that
run several daemons in one process apart, and lets a reload drop the series
of targets that are gone.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from vigild import __version__
from vigild.alerting.engine import Engine
from vigild.daemon.cycle import Watched
from vigild.model import Observation
from vigild.thresholds import Verdict

__all__ = ["Metrics"]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _split(metric: str) -> tuple[str, str]:
    name, _, series = metric.partition(":")
    return name, series


class Metrics:
    def __init__(self, engine: Engine) -> None:
        # `_created` series double the exposition and no dashboard of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.engine = engine
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.probe_success = Gauge(
            "vigild_probe_success",
            "1 if the last probe of the target succeeded, else 0.",
            ["target", "type"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            "vigild_probe_duration_seconds",
            "How long probes of the target took.",
            ["target", "type"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.probe_value = Gauge(
            "vigild_probe_value",
            "Every metric of the target's last observation.",
            ["target", "metric", "series"],
            registry=self.registry,
        )
        self.alert_severity = Gauge(
            "vigild_alert_severity",
            "Alert severity per thresholded metric: 0 ok, 1 warning, 2 critical, 3 unknown.",
            ["target", "metric", "series"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "vigild_notifications",
            "Notification deliveries by outcome: sent, failed, retried, expired, dropped.",
            ["notifier", "outcome"],
            registry=self.registry,
        )
        Info("vigild_build", "The running vigild.", registry=self.registry).info(
            {"version": __version__}
        )
        self._series: dict[str, set[str]] = {}

    def observed(self, item: Watched, observation: Observation, verdicts: list[Verdict]) -> None:
        target, kind = item.target.name, item.target.type
        self.probe_success.labels(target, kind).set(1 if observation.up else 0)
        self.probe_duration.labels(target, kind).observe(observation.duration)
        current = set(observation.metrics)
        for metric, value in observation.metrics.items():
            self.probe_value.labels(target, *_split(metric)).set(value)
        for gone in self._series.get(target, set()) - current:
            self.probe_value.remove(target, *_split(gone))
        self._series[target] = current
        for verdict in verdicts:
            severity = self.engine.severity_of(target, verdict.metric)
            self.alert_severity.labels(target, *_split(verdict.metric)).set(severity)

    def notification(self, notifier: str, outcome: str, _age: float) -> None:
        self.notifications.labels(notifier, outcome).inc()

    def retain(self, targets: set[str]) -> None:
        """Drop every series of targets a reload removed."""
        for gauge in (
            self.probe_success,
            self.probe_duration,
            self.probe_value,
            self.alert_severity,
        ):
            for labels in list(_label_sets(gauge)):
                if labels[0] not in targets:
                    gauge.remove(*labels)
        for name in self._series.keys() - targets:
            del self._series[name]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _label_sets(metric: Gauge | Histogram) -> list[tuple[str, ...]]:
    # prometheus-client offers no public way to list children; _metrics is its stable internal.
    return [tuple(labels) for labels in metric._metrics]
