"""vigild's own ``/metrics``, with the names of DESIGN.md.

The per-target families (about twenty series a target, 200,000 at 10,000
targets) are kept in one small record per target and written out by vigild
itself: prometheus-client spends a lock and a value object per series and
~16 µs per line on output, which at that scale cost more memory than all of
vigild and seconds of CPU per scrape. Everything else (process, GC, platform,
notification counters, build info) stays on a prometheus-client registry of
the daemon's own, and is appended to the same exposition.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client import generate_latest as render_registry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from vigild import __version__
from vigild.assembly import Config
from vigild.daemon.push import PING_OUTCOMES
from vigild.daemon.recorder import HistoryWriter
from vigild.events import (
    ActionOutcome,
    CycleCompleted,
    CycleMissed,
    DeliveryOutcome,
    HeartbeatOutcome,
    ProbeResult,
)
from vigild.model import Severity
from vigild.redaction import printable, redact, redact_exposition
from vigild.storage.file import StateFile
from vigild.wording import label_value

__all__ = ["HistoryCollector", "Metrics"]

# The exposition format's float spelling (+Inf, NaN, Go's exponents), as prometheus-client has it.
go_float: Callable[[float], str] = floatToGoString

ACTION_OUTCOMES = ("succeeded", "failed", "timeout", "finished", "skipped", "dry_run")
RELOAD_OUTCOMES = ("applied", "rejected")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BUCKET_LABELS = (*(go_float(b) for b in DURATION_BUCKETS), "+Inf")
TARGETS_A_PIECE = 512
"""Targets per piece of /metrics: about 6 ms of the loop, 860 KB of text."""
SHARED_SEVERITIES = 1024
"""Distinct severity tables kept for sharing; past that the table starts over."""

_FAMILIES = {
    "vigild_probe_success": ("gauge", "1 if the last probe of the target succeeded, else 0."),
    "vigild_probe_duration_seconds": ("histogram", "How long probes of the target took."),
    "vigild_probe_value": ("gauge", "Every metric of the target's last observation."),
    "vigild_alert_severity": (
        "gauge",
        "Alert severity per thresholded metric: 0 ok, 1 warning, 2 critical, 3 unknown.",
    ),
}


class _OutboxCollector(Collector):
    """``vigild_outbox_pending``, read from delivery's counts at scrape time."""

    def __init__(self, pending: Callable[[], Mapping[str, int]]) -> None:
        self._pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vigild_outbox_pending", "Notifications waiting to be delivered.", labels=["notifier"]
        )
        for notifier, count in dict(self._pending()).items():
            family.add_metric([notifier], count)
        yield family


class _StateFileCollector(Collector):
    """The state file's own counts of it deleted or replaced while running."""

    def __init__(self, file: StateFile) -> None:
        self._file = file

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "vigild_state_recreated",
            "State file recreated from memory after it was deleted or replaced while running.",
            value=self._file.recreated,
        )
        yield CounterMetricFamily(
            "vigild_state_recreate_failures",
            "Failed attempts to recreate a deleted or replaced state file.",
            value=self._file.recreate_failures,
        )
        yield CounterMetricFamily(
            "vigild_state_write_failures",
            "Writes of alert state or the outbox that failed (a full disk) and were kept in "
            "memory until the state file could be written again.",
            value=self._file.write_failures,
        )


class HistoryCollector(Collector):
    """``vigild_history_*`` on /metrics, read from the writer at scrape time."""

    def __init__(self, writer: HistoryWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        writer = self._writer
        yield GaugeMetricFamily(
            "vigild_history_bytes", "Bytes of the history file on disk.", value=writer.bytes
        )
        evicted = CounterMetricFamily(
            "vigild_history_evicted",
            "History blocks dropped to stay under [history] max_size.",
            labels=["tier"],
        )
        for tier, count in writer.evicted.items():
            evicted.add_metric([tier], count)
        yield evicted
        dropped = CounterMetricFamily(
            "vigild_history_dropped",
            "Observations not written to the history: the writer was behind, or the file "
            "could not be written; values that came after their hour was compacted (late).",
            labels=["reason"],
        )
        for reason, count in writer.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped


@dataclass(slots=True)
class _Series:
    """Everything /metrics says about one target, updated in place after each probe."""

    target_label: str
    """``target="api"``, escaped and redacted."""
    type_label: str
    """``type="http"``: one string for all the targets of a type."""
    success: str = "0"
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BUCKET_LABELS))
    duration_sum: float = 0.0
    duration_count: int = 0
    values: dict[str, float] = field(default_factory=dict)
    severities: dict[str, Severity] = field(default_factory=dict)
    """Replaced, never changed: targets whose verdicts stand alike share one."""


class Metrics:
    def __init__(
        self,
        secrets: Callable[[], frozenset[str]],
        pending: Callable[[], Mapping[str, int]] = dict,
        *,
        state_file: StateFile,
        replica: str | None = None,
    ) -> None:
        self._secrets = secrets
        self._targets: dict[str, _Series] = {}
        self._metric_labels: dict[str, str] = {}
        self._type_labels: dict[str, str] = {}
        self._severities: dict[tuple[tuple[str, Severity], ...], dict[str, Severity]] = {}
        # `_created` series double the exposition and no dashboard of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.notifications = Counter(
            "vigild_notifications",
            "Notification deliveries by outcome: sent, failed, retried, expired, dropped.",
            ["notifier", "outcome"],
            registry=self.registry,
        )
        # No `instance` here or on any series: Prometheus adds the scraped target's.
        Info("vigild_build", "The running vigild.", registry=self.registry).info(
            {"version": __version__, "replica": replica or ""}
        )
        self.notification_latency = Histogram(
            "vigild_notification_latency_seconds",
            "From the alert transition to the notifier accepting the message.",
            ["notifier"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.last_cycle = Gauge(
            "vigild_last_cycle_timestamp_seconds",
            "When the last cycle completed and was recorded (unix time).",
            registry=self.registry,
        )
        self.heartbeats = Counter(
            "vigild_heartbeats",
            "Pings of heartbeat_url by outcome: sent, failed.",
            ["outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "vigild_actions",
            "Action runs by outcome: succeeded, failed, timeout, skipped, dry_run.",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.cycle_lateness = Histogram(
            "vigild_cycle_lateness_seconds",
            "How late each cycle started against its schedule.",
            ["interval"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "vigild_event_loop_lag_seconds",
            "How late a timer the event loop runs every 0.5 s fires: time the loop was blocked.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.cycle_duration = Histogram(
            "vigild_cycle_duration_seconds",
            "From a cycle's start to its last probe recorded.",
            ["interval"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.probes_skipped = Counter(
            "vigild_probes_skipped",
            "Probes not started because the target's previous probe was still in flight.",
            ["target"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "vigild_reloads",
            "Config reloads by outcome: applied, rejected.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in RELOAD_OUTCOMES:
            self.reloads.labels(outcome)
        self.pings = Counter(
            "vigild_pings",
            "Pings of push targets by outcome: recorded, unknown_key, invalid, failed.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in PING_OUTCOMES:
            self.pings.labels(outcome)
        self.registry.register(_OutboxCollector(pending))
        self.registry.register(_StateFileCollector(state_file))

    # -- recording --------------------------------------------------------

    def probe_result(self, event: ProbeResult) -> None:
        observation = event.observation
        name = observation.target
        series = self._targets.get(name)
        if series is None:
            series = self._targets[name] = self._series(name, event.kind)
        series.success = "1" if observation.up else "0"
        series.buckets[bisect.bisect_left(DURATION_BUCKETS, observation.duration)] += 1
        series.duration_sum += observation.duration
        series.duration_count += 1
        series.values = observation.metrics  # never changed after the probe made it
        severities = series.severities
        changed = [
            (verdict.metric, severity)
            for verdict, severity in zip(event.verdicts, event.severities, strict=True)
            if severities.get(verdict.metric) is not severity
        ]
        if changed:
            series.severities = self._shared({**severities, **dict(changed)})

    def _shared(self, severities: dict[str, Severity]) -> dict[str, Severity]:
        """One table per distinct content: 10,000 targets, all ok, hold one, not 10,000."""
        key = tuple(severities.items())
        found = self._severities.get(key)
        if found is None:
            if len(self._severities) >= SHARED_SEVERITIES:
                self._severities.clear()  # kept by the targets that use them, shared no more
            found = self._severities[key] = severities
        return found

    def delivery_outcome(self, event: DeliveryOutcome) -> None:
        self.notifications.labels(event.notifier, event.outcome).inc()
        if event.outcome == "sent":
            self.notification_latency.labels(event.notifier).observe(event.age)

    def action_outcome(self, event: ActionOutcome) -> None:
        self.actions.labels(event.action, event.outcome).inc()

    def declare_actions(self, names: Iterable[str]) -> None:
        """Every outcome of every configured action at 0, so ``rate()`` sees the first run."""
        for name in names:
            for outcome in ACTION_OUTCOMES:
                self.actions.labels(name, outcome)

    def cycle_completed(self, event: CycleCompleted) -> None:
        interval = f"{event.interval:g}s"
        self.cycle_lateness.labels(interval).observe(event.lateness)
        self.cycle_duration.labels(interval).observe(event.duration)
        if event.recorded:
            self.last_cycle.set(event.now)

    def cycle_missed(self, event: CycleMissed) -> None:
        for target in event.targets:
            self.probes_skipped.labels(target).inc()

    def reloaded(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def ping_outcome(self, outcome: str) -> None:
        self.pings.labels(outcome).inc()

    def heartbeat_outcome(self, event: HeartbeatOutcome) -> None:
        self.heartbeats.labels(event.outcome).inc()

    def retain(self, config: Config) -> None:
        """After a reload: drop targets that are gone, relabel the rest (secrets may differ)."""
        kinds = {t.name: t.type for t in config.targets}
        kept = {}
        for name, series in self._targets.items():
            owner = config.owner_of(name)
            if owner is not None:
                fresh = self._series(name, kinds[owner])
                series.target_label, series.type_label = fresh.target_label, fresh.type_label
                kept[name] = series
        self._targets = kept

    def _series(self, name: str, kind: str) -> _Series:
        target = f'target="{label_value(printable(redact(name, self._secrets())))}"'
        type_label = self._type_labels.get(kind)
        if type_label is None:
            type_label = self._type_labels[kind] = f'type="{label_value(kind)}"'
        return _Series(target, type_label)

    # -- exposition -------------------------------------------------------

    def exposition(self) -> Iterator[bytes]:
        """/metrics, a piece at a time: the registry's metrics, then each per-target
        family in pieces of ``TARGETS_A_PIECE`` targets, each redacted and encoded on its
        own. Rendered on the event loop, where probe results update the series (so a
        target's lines are never torn), by a writer that lets the loop run between
        pieces: a piece costs about 6 ms. Built whole, the page at 10,000 targets (17 MB:
        its lines, their join, a redacted copy, the encoded copy) took 60 MB that the
        process kept after, and a copy of the series made for a thread another 3 MB.
        """
        targets = list(self._targets.values())
        secrets = self._secrets()
        yield redact_exposition(render_registry(self.registry).decode(), secrets).encode()
        for name, lines in self._families:
            kind, help_text = _FAMILIES[name]
            piece = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
            for start in range(0, max(len(targets), 1), TARGETS_A_PIECE):
                piece += "".join(lines(targets[start : start + TARGETS_A_PIECE]))
                yield redact_exposition(piece, secrets).encode()
                piece = ""

    @property
    def _families(self) -> tuple[tuple[str, Callable[[list[_Series]], Iterator[str]]], ...]:
        return (
            ("vigild_probe_success", self._success_lines),
            ("vigild_probe_duration_seconds", self._duration_lines),
            ("vigild_probe_value", self._value_lines),
            ("vigild_alert_severity", self._severity_lines),
        )

    @staticmethod
    def _success_lines(targets: list[_Series]) -> Iterator[str]:
        for s in targets:
            yield f"vigild_probe_success{{{s.target_label},{s.type_label}}} {s.success}\n"

    @staticmethod
    def _duration_lines(targets: list[_Series]) -> Iterator[str]:
        for s in targets:
            labels = f"{s.target_label},{s.type_label}"
            cumulative = 0
            for le, count in zip(_BUCKET_LABELS, s.buckets, strict=True):
                cumulative += count
                yield f'vigild_probe_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative}\n'
            yield f"vigild_probe_duration_seconds_sum{{{labels}}} {go_float(s.duration_sum)}\n"
            yield f"vigild_probe_duration_seconds_count{{{labels}}} {s.duration_count}\n"

    def _value_lines(self, targets: list[_Series]) -> Iterator[str]:
        for s in targets:
            for metric, value in s.values.items():
                yield (
                    f"vigild_probe_value{{{self._metric_label(metric)},{s.target_label}}} "
                    f"{go_float(value)}\n"
                )

    def _severity_lines(self, targets: list[_Series]) -> Iterator[str]:
        for s in targets:
            for metric, severity in s.severities.items():
                labels = f"{self._metric_label(metric)},{s.target_label}"
                yield f"vigild_alert_severity{{{labels}}} {severity:d}\n"

    def _metric_label(self, metric: str) -> str:
        """``metric="disk_percent",series="/var"``; few distinct ones, so cached."""
        label = self._metric_labels.get(metric)
        if label is None:
            name, _, series = metric.partition(":")
            label = f'metric="{label_value(name)}",series="{label_value(series)}"'
            self._metric_labels[metric] = label
        return label
