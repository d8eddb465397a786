"""The models of ``thresholds.toml``: one per section, and the base of every probe's.

A leaf: it knows no probe, notifier, action or threshold rule. vigild.assembly reads
a file, hands each target to its probe's own options model (found through the
``vigild.probes`` entry points), each notifier and action to its backend's, and
reports every problem at once in a ``ConfigError``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vigild.config_slo import ForecastSpec, SloSpec
from vigild.fields import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    ByteSize,
    Interval,
    Name,
    RepeatInterval,
    duration_between,
    http_url,
    split_listen,
)
from vigild.model import Severity

__all__ = [
    "ActionConfig",
    "ActionWhen",
    "AlertingConfig",
    "ConfigError",
    "DaemonConfig",
    "NotifierConfig",
    "SilenceConfig",
    "TargetConfig",
    "ThresholdSpec",
]

# Names from DESIGN.md whose features later work adds: they fail loudly, never silently.
NOT_SUPPORTED_YET_DAEMON_KEYS = frozenset({"shard", "retention"})


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` are complete, readable lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


DEFAULT_TIMEOUT = 10.0
DEFAULT_TIMEOUT_SHARE = 0.8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThresholdSpec(_Strict):
    """One threshold table as written; merged key by key over the defaults."""

    warning: float | None = None
    critical: float | None = None
    direction: Literal["above", "below"] | None = None
    for_: Annotated[float, duration_between(0, 7 * DAY)] | None = Field(default=None, alias="for")
    recover_for: Annotated[float, duration_between(0, 7 * DAY)] | None = None
    runbook: str | None = None

    def merged_over(self, base: ThresholdSpec | None) -> ThresholdSpec:
        if base is None:
            return self
        return base.model_copy(update={k: getattr(self, k) for k in self.model_fields_set})


# The numbers of our users' alert tables; `[thresholds]` in the file merges over them.
BUILTIN_THRESHOLDS: dict[str, ThresholdSpec] = {
    "up": ThresholdSpec(),
    "cpu_percent": ThresholdSpec(warning=75, critical=80, for_=60),
    "memory_percent": ThresholdSpec(warning=75, critical=85, for_=60),
    "latency_seconds": ThresholdSpec(warning=5, critical=10),
    "latency_p95_seconds": ThresholdSpec(warning=5, critical=10),
    "health_status": ThresholdSpec(warning=0, critical=1),
    "error_rate_percent": ThresholdSpec(warning=2, critical=5),
    "cert_expiry_days": ThresholdSpec(warning=14, critical=7),
    # A container that restarted in the last `restart_window` is worth a look; a crash loop is not.
    "recent_restarts": ThresholdSpec(warning=0, critical=2),
    # A full disk is the alert a homelab box needs most; a full inode table fails writes alike.
    "disk_percent": ThresholdSpec(warning=85, critical=95),
    "inode_percent": ThresholdSpec(warning=90, critical=95),
}


def _default_state_path() -> Path:
    """systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``, the first of a colon-separated
    list) when it set one, so a ``DynamicUser=`` service needs no path in its config."""
    directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(directory or "/var/lib/vigild") / "state.db"


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ALERT_LABELS = frozenset({"instance", "alertname", "target", "metric", "severity"})


class DaemonConfig(BaseSettings):
    """``[daemon]``; ``VIGILD_<KEY>`` environment variables override the file."""

    model_config = SettingsConfigDict(env_prefix="VIGILD_", extra="forbid", frozen=True)

    interval: Interval = 30.0
    listen: str = "127.0.0.1:9469"
    state_path: Path = Field(default_factory=_default_state_path)
    """Default ``/var/lib/vigild/state.db``, or ``$STATE_DIRECTORY/state.db`` under systemd."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    concurrency: int = Field(default=100, ge=1, le=10_000)
    api_token: str | None = None
    """Bearer token that POST/DELETE on the API must carry; unset: writes are refused
    (except on a unix-socket listener, which file permissions guard)."""
    heartbeat_url: str | None = None
    """Pinged after every completed cycle (a healthchecks.io-style dead-man's switch)."""
    connectivity_check: str | None = None
    """A target whose failure means vigild itself lost its network."""
    actions_enabled: bool = True
    """False (or ``vigild --no-actions``): no ``[[actions]]`` runs, whatever they say."""
    instance: str = Field(default_factory=socket.gethostname)
    """The host every alert names (label ``instance``); both vigilds of an HA pair share it."""
    external_labels: dict[str, str] = {}
    """Labels every alert carries, as Prometheus's ``external_labels`` (``env``, ``site``)."""
    replica: str | None = None
    """Which vigild of an HA pair this is: in ``vigild_build_info`` and logs, never in an
    alert's labels or fingerprint, so an Alertmanager cluster deduplicates the pair."""
    external_url: str | None = None
    """The status page as people reach it (behind a proxy, a VPN name): messages link
    to the target's row on it; the webhook's ``externalURL`` names it."""

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_is_http(cls, value: str | None) -> str | None:
        return http_url(value, "heartbeat_url") if value else None

    @field_validator("external_url")
    @classmethod
    def _external_is_http(cls, value: str | None) -> str | None:
        return http_url(value.strip(), "external_url") if value and value.strip() else None

    @field_validator("api_token")
    @classmethod
    def _token_or_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("instance")
    @classmethod
    def _instance_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("instance must not be empty: it names the host in every alert")
        return value.strip()

    @field_validator("external_labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"{name!r} is not a Prometheus label name "
                    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                )
            if name in _ALERT_LABELS:
                raise ValueError(f"{name!r} is a label vigild sets on every alert itself")
            if not value:
                raise ValueError(f"external label {name!r} is empty (Prometheus drops it)")
        return labels

    @field_validator("replica")
    @classmethod
    def _replica_or_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file: that is how containers configure vigild.
        return (env_settings, init_settings)


class AlertingConfig(_Strict):
    repeat_interval: RepeatInterval = 4 * HOUR
    flap_limit: int = Field(default=4, ge=1)
    group_wait: Annotated[float, duration_between(0, 5 * MINUTE)] = 1.0
    max_alerts_per_message: int = Field(default=50, ge=1)
    """A host going down is one message, but a message stays readable (and under
    Discord's and Slack's size limits): beyond this, the rest go in further messages."""


class SilenceMatchers(_Strict):
    """Globs: ``covabot*``, ``disk_percent:*``; severity ``warning``, ``critical``, ``*``."""

    target: str = "*"
    metric: str = "*"
    severity: str = "*"


class SilenceConfig(_Strict):
    """``[[silences]]`` (and the body of ``POST /api/silences``)."""

    matchers: SilenceMatchers = SilenceMatchers()
    starts: AwareDatetime | None = None
    ends: AwareDatetime | None = None
    duration: Annotated[float, duration_between(SECOND, 366 * DAY)] | None = None
    """Instead of ``ends``: how long from ``starts`` (or from now)."""
    schedule: str | None = None
    """A weekly maintenance window: ``"Sun 02:00-04:00"``, ``"Mon-Fri 22:00-23:00"``."""
    timezone: str = "UTC"
    comment: str = ""
    created_by: str = ""

    @model_validator(mode="after")
    def _one_span(self) -> Self:
        if self.schedule is not None:
            if self.starts or self.ends or self.duration:
                raise ValueError("a silence has either a schedule or starts/ends, not both")
            from vigild.schedule import parse_schedule

            parse_schedule(self.schedule, self.timezone)
        elif self.ends is None and self.duration is None:
            raise ValueError("a silence needs ends, duration or schedule")
        elif self.ends is not None and self.duration is not None:
            raise ValueError("give ends or duration, not both")
        elif self.ends is not None and self.starts is not None and self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self


class TargetConfig(_Strict):
    """The keys every target takes. A probe's ``Options`` model extends it with the
    target's own keys, a ``type`` literal naming its entry point, and ``REPORTED``."""

    REPORTED: ClassVar[frozenset[str]] = frozenset({"up"})
    """The base names of the metrics the probe can report."""
    SLO_EVENTS: ClassVar[Literal["probes", "requests"] | None] = None
    """What an slo counts: probes (a failed one is bad), or the requests and errors
    counters' increases; None: the target takes no slo."""

    type: str
    name: Name
    interval: Interval | None = None
    timeout: Annotated[float, duration_between(0.1 * SECOND, DAY)] | None = None
    """At most the target's interval."""
    max_body: ByteSize = 2**20
    labels: dict[str, str] = {}
    thresholds: dict[str, ThresholdSpec] = {}
    depends_on: list[str] = []
    """Targets this one needs: while one is down, this one's alerts are held back."""
    slo: SloSpec | None = None
    forecast: ForecastSpec | None = None

    @field_validator("slo")
    @classmethod
    def _slo_supported(cls, value: SloSpec | None) -> SloSpec | None:
        if value is not None and cls.SLO_EVENTS is None:
            raise ValueError("only http, tcp and prometheus targets take an slo")
        return value

    def objectives(self) -> tuple[tuple[str, SloSpec], ...]:
        """Each SLO of the target, after the prefix of its metrics' names (``slo_burn``,
        ``latency_slo_burn``); its key is that prefix and ``slo``."""
        return () if self.slo is None else (("", self.slo),)

    def reported_metrics(self) -> frozenset[str]:
        """The base names of every metric this target can report (for threshold checks);
        a target whose keys add metrics (a Prometheus target's gauges) says so here."""
        return self.REPORTED

    def implied_thresholds(
        self, defaults: Mapping[str, ThresholdSpec]
    ) -> Iterable[tuple[tuple[str | int, ...], str, ThresholdSpec]]:
        """Thresholds the target's own keys imply, as (key path, qualified metric, table)."""
        return ()

    def warnings(self, daemon: DaemonConfig) -> Iterable[str]:
        """What the target allows but is likely a mistake, said at load."""
        return ()

    @property
    def expands(self) -> bool:
        """Observed as several things, each named ``target/thing`` (containers by label)."""
        return False

    def shown_url(self) -> str | None:
        """The URL the status document shows for the target, if it has one."""
        return None

    def address(self) -> str | None:
        """Where the target is, for the messages that name it (not yet redacted)."""
        return self.shown_url()

    def notes(self) -> tuple[tuple[str, str], ...]:
        """``(label, text)`` lines ``check-config`` adds about this target."""
        return ()

    def effective_interval(self, daemon: DaemonConfig) -> float:
        return self.interval if self.interval is not None else daemon.interval

    def effective_timeout(self, daemon: DaemonConfig) -> float:
        """``timeout``, else the smaller of 10 s and 0.8 times the interval: a probe that
        hangs gives up before the next one of its target is due."""
        if self.timeout is not None:
            return self.timeout
        return min(DEFAULT_TIMEOUT, DEFAULT_TIMEOUT_SHARE * self.effective_interval(daemon))


class NotifierConfig(_Strict):
    """The keys every notifier takes; a backend's own keys are in ``options``."""

    name: Name
    type: str = "apprise"
    min_severity: Literal["warning", "critical"] = "warning"
    send_resolved: bool = True
    repeat_interval: RepeatInterval | None = None
    timeout: Annotated[float, duration_between(0.1 * SECOND, 5 * MINUTE)] = 10.0
    max_age: Annotated[float, duration_between(MINUTE, 30 * DAY)] = DAY
    max_pending: int = Field(default=1000, ge=1)
    """Outbox bound: beyond it, superseded messages go first, then the oldest."""
    options: BaseModel = Field(default_factory=BaseModel, exclude=True)

    COMMON_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "type",
            "min_severity",
            "send_resolved",
            "repeat_interval",
            "timeout",
            "max_age",
            "max_pending",
        }
    )

    @property
    def min_rank(self) -> int:
        return Severity.parse(self.min_severity).routing_rank


class ActionWhen(_Strict):
    """``when = { severity, targets, metrics, for }``: which open alerts an action answers."""

    severity: Literal["warning", "critical"] = "critical"
    targets: list[str] = ["*"]
    metrics: list[str] = ["*"]
    for_: Annotated[float, duration_between(0, 7 * DAY)] = Field(default=0.0, alias="for")
    """How long the alert must have been at ``severity`` (or worse), in a row."""


class ActionConfig(_Strict):
    """The keys every action takes; a backend's own keys are in ``options``."""

    name: Name
    type: str
    when: ActionWhen = ActionWhen()
    max_runs: int = Field(default=1, ge=1)
    """Runs per incident (one alert from opening to resolution)."""
    cooldown: Annotated[float, duration_between(0, 30 * DAY)] = 30 * MINUTE
    max_runs_per_day: int = Field(default=3, ge=1)
    dry_run: bool = False
    timeout: Annotated[float, duration_between(SECOND, DAY)] = 5 * MINUTE
    verify_after: Annotated[float, duration_between(0, DAY)] = 5 * MINUTE
    options: BaseModel = Field(default_factory=BaseModel, exclude=True)

    COMMON_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "type",
            "when",
            "max_runs",
            "cooldown",
            "max_runs_per_day",
            "dry_run",
            "timeout",
            "verify_after",
        }
    )
