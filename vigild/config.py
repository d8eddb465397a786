"""``thresholds.toml``: reading, ``${VAR}`` interpolation, validation, defaults.

Every problem becomes a ``ConfigError`` whose lines each name the file, the
key path and the reason, so ``vigild check-config`` can print them as they
are. Values that came from the environment are remembered as secrets, so the
rest of vigild can redact them wherever text leaves the process.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vigild import thresholds
from vigild.model import Severity
from vigild.probes import REPORTED_METRICS
from vigild.redaction import redact

if TYPE_CHECKING:
    from vigild.alerting.silences import Silence

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "ActionConfig",
    "ActionWhen",
    "AlertingConfig",
    "Bounds",
    "Config",
    "ConfigError",
    "ContainerTarget",
    "DaemonConfig",
    "EngineUrl",
    "HostTarget",
    "HttpTarget",
    "NotifierConfig",
    "ProcessCheck",
    "PrometheusTarget",
    "SilenceConfig",
    "TargetConfig",
    "TcpTarget",
    "ThresholdSpec",
    "TlsTarget",
    "duration_between",
    "find_config",
    "format_duration",
    "http_url",
    "load",
    "parse_duration",
    "size_between",
]

DEFAULT_PATHS = (Path("thresholds.toml"), Path("/etc/vigild/thresholds.toml"))

# Names from DESIGN.md whose features later work adds: they fail loudly, never silently.
NOT_SUPPORTED_YET_SECTIONS: frozenset[str] = frozenset()
NOT_SUPPORTED_YET_DAEMON_KEYS = frozenset({"shard", "retention"})


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` are complete, readable lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------
# Durations and sizes

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}


def parse_duration(value: Any) -> Any:
    """ "30s", "5m", "1h30m", "250ms" or a plain number of seconds, as float seconds."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "30s", "5m" or "1h30m"')
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"invalid duration {value!r}: expected a number with a unit, "
                'such as "30s", "5m" or "1h30m"'
            )
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        return value  # let pydantic report the type
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest unit that says it exactly: 86400 → "1d", 0.1 → "100ms", 90 → "90s"."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", SECOND)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    if seconds == 0 or seconds >= SECOND:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


_SIZE = re.compile(r"([0-9]{1,15})\s*(B|KB|KiB|MB|MiB|GB|GiB)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def _parse_size(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError('expected a size in bytes or e.g. "1MiB"')
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise ValueError(f'invalid size {value!r}: expected bytes or e.g. "1MiB"')
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    return value


def format_size(count: float) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= factor and count % factor == 0:
            return f"{count // factor:g}{unit}"
    return f"{count:g}B"


@dataclass(frozen=True)
class Bounds:
    """The range a duration or size key accepts, inclusive, checked as the value is
    read: a value past it would crash or flood the daemon later (a timedelta overflow
    at start, a thousand probes a second), so it is a config error instead.

    ``Annotated[float, duration_between(SECOND, DAY)]`` on a model field; docs/configuration.md
    lists every one in its table of bounds.
    """

    low: float
    high: float
    parse: Callable[[Any], Any]
    show: Callable[[float], str]

    def __call__(self, value: Any) -> Any:
        parsed = self.parse(value)
        if isinstance(parsed, int | float) and not self.low <= parsed <= self.high:
            raise ValueError(
                f"must be between {self.show(self.low)} and {self.show(self.high)} (got {value!r})"
            )
        return parsed

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self, handler(source))


def duration_between(low: float, high: float) -> Bounds:
    """Bounds of a duration key, in seconds."""
    return Bounds(low, high, parse_duration, format_duration)


def size_between(low: int, high: int) -> Bounds:
    """Bounds of a size key, in bytes."""
    return Bounds(low, high, _parse_size, format_size)


Interval = Annotated[float, duration_between(SECOND, DAY)]
"""A probe interval: below a second is a flood, above a day no longer watches."""

DEFAULT_TIMEOUT = 10.0
DEFAULT_TIMEOUT_SHARE = 0.8

RepeatInterval = Annotated[float, duration_between(MINUTE, 30 * DAY)]

ByteSize = Annotated[int, size_between(256, 2**30)]


# ---------------------------------------------------------------------------
# Models


def _printable(value: str) -> str:
    """A name goes out in logs, ``--once`` text, ``/metrics`` labels and HTML as it is:
    a control character there would forge lines or garble what a person reads."""
    for i, char in enumerate(value):
        if not char.isprintable():
            raise ValueError(f"a name may hold only printable characters, not {char!r} (at {i})")
    return value


Name = Annotated[str, Field(min_length=1), AfterValidator(_printable)]


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

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_is_http(cls, value: str | None) -> str | None:
        return http_url(value, "heartbeat_url") if value else None

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


def unix_listen(listen: str) -> str | None:
    """The socket path of ``"unix:/run/vigild/api.sock"``, None for HOST:PORT."""
    return listen.removeprefix("unix:") if listen.startswith("unix:") else None


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9469"``, ``"[::1]:9469"`` or ``":9469"`` (all interfaces)."""
    if unix_listen(listen) is not None:
        return "localhost", 0
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT or unix:/path, got {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class AlertingConfig(_Strict):
    repeat_interval: RepeatInterval = 4 * HOUR
    flap_limit: int = Field(default=4, ge=1)
    group_wait: Annotated[float, duration_between(0, 5 * MINUTE)] = 1.0
    max_alerts_per_message: int = Field(default=50, ge=1)
    """A host going down is one message, but a message stays readable (and under
    Discord's and Slack's size limits): beyond this, the rest go in further messages."""


class HistoryConfig(_Strict):
    """``[history]``: how long each tier of the metrics history is kept, and its cap."""

    raw: Annotated[float, duration_between(HOUR, 35 * DAY)] = 48 * HOUR
    five_minute: Annotated[float, duration_between(HOUR, 400 * DAY)] = 35 * DAY
    hourly: Annotated[float, duration_between(DAY, 3650 * DAY)] = 400 * DAY
    max_size: Annotated[int, size_between(2**20, 2**40)] = 2**30
    path: Path | None = None
    """Default: beside the state file, ``state.db`` → ``state-history.db``."""

    def file(self, state_path: Path) -> Path:
        if self.path is not None:
            return self.path
        return state_path.with_name(f"{state_path.stem}-history{state_path.suffix or '.db'}")


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
            from vigild.alerting.silences import parse_schedule

            parse_schedule(self.schedule, self.timezone)
        elif self.ends is None and self.duration is None:
            raise ValueError("a silence needs ends, duration or schedule")
        elif self.ends is not None and self.duration is not None:
            raise ValueError("give ends or duration, not both")
        elif self.ends is not None and self.starts is not None and self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self

    def silence(self, silence_id: str, now: float, source: str) -> Silence:
        from vigild.alerting.silences import Silence, parse_schedule

        window = parse_schedule(self.schedule, self.timezone) if self.schedule is not None else None
        starts = self.starts.timestamp() if self.starts is not None else None
        if self.duration is not None:
            ends: float | None = (starts if starts is not None else now) + self.duration
        else:
            ends = self.ends.timestamp() if self.ends is not None else None
        return Silence(
            id=silence_id,
            target=self.matchers.target,
            metric=self.matchers.metric,
            severity=self.matchers.severity,
            starts=starts if window is None else None,
            ends=ends,
            window=window,
            comment=self.comment,
            created_by=self.created_by,
            source=source,
        )


class _TargetBase(_Strict):
    name: Name
    interval: Interval | None = None
    timeout: Annotated[float, duration_between(0.1 * SECOND, DAY)] | None = None
    """At most the target's interval."""
    max_body: ByteSize = 2**20
    labels: dict[str, str] = {}
    thresholds: dict[str, ThresholdSpec] = {}
    depends_on: list[str] = []
    """Targets this one needs: while one is down, this one's alerts are held back."""

    def reported_metrics(self) -> frozenset[str]:
        """The base names of every metric this target can report (for threshold checks)."""
        return REPORTED_METRICS[self.type]  # type: ignore[attr-defined]

    def effective_interval(self, daemon: DaemonConfig) -> float:
        return self.interval if self.interval is not None else daemon.interval

    def effective_timeout(self, daemon: DaemonConfig) -> float:
        """``timeout``, else the smaller of 10 s and 0.8 times the interval: a probe that
        hangs gives up before the next one of its target is due."""
        if self.timeout is not None:
            return self.timeout
        return min(DEFAULT_TIMEOUT, DEFAULT_TIMEOUT_SHARE * self.effective_interval(daemon))


def http_url(value: str, key: str = "url") -> str:
    """An ``http://`` or ``https://`` URL naming a host, with a port in 1-65535, as yarl
    (and so aiohttp) reads it. The reasons never quote the value: URLs carry tokens."""
    import yarl

    reason = f"{key} must start with http:// or https:// and name a host"
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(reason)
    port_reason = f"{key} must have a port between 1 and 65535"
    try:
        parsed = yarl.URL(value)
        port = parsed.port
    except ValueError as exc:
        # yarl's own words may quote the URL: only their gist is passed on.
        if "port" in str(exc).lower():
            raise ValueError(port_reason) from None
        raise ValueError(f"{key} is not a valid URL") from None
    if not parsed.host:
        raise ValueError(reason)
    if port is None or not 1 <= port <= 65535:
        raise ValueError(port_reason)
    return value


HttpUrlText = Annotated[str, AfterValidator(http_url)]


class HttpTarget(_TargetBase):
    type: Literal["http"] = "http"
    url: HttpUrlText
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    expect_status: list[int] | None = None
    tls_verify: bool = True
    follow_redirects: bool = True

    def reported_metrics(self) -> frozenset[str]:
        reported = REPORTED_METRICS["http"]
        return reported if self.url.startswith("https://") else reported - {"cert_expiry_days"}

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 100 <= s <= 599 for s in value)):
            raise ValueError("expect_status must list HTTP status codes (100-599)")
        return value


class ProcessCheck(_Strict):
    """``processes = [{ name = "postgres", min = 1 }]``: at least ``min`` running."""

    name: Name
    min: int = Field(default=1, ge=1)

    @property
    def metric(self) -> str:
        return f"processes:{self.name}"


class HostTarget(_TargetBase):
    type: Literal["host"] = "host"
    disks: list[str] = ["/"]
    processes: list[ProcessCheck] = []

    @field_validator("processes")
    @classmethod
    def _distinct(cls, value: list[ProcessCheck]) -> list[ProcessCheck]:
        names = [check.name for check in value]
        if len(set(names)) != len(names):
            raise ValueError("each process name may be listed once")
        return value


_QUANTILE_DIGITS = re.compile(r"[^0-9]")


def quantile_metric(quantile: float) -> str:
    """0.95 → ``latency_p95_seconds``; 0.5 → ``latency_p50_seconds``; 0.999 → ``…p999…``."""
    digits = _QUANTILE_DIGITS.sub("", f"{quantile * 100:g}")
    return f"latency_p{digits}_seconds"


class PrometheusTarget(_TargetBase):
    """A Prometheus (or OpenMetrics) exposition page, read as error rate, quantiles, gauges."""

    type: Literal["prometheus"] = "prometheus"
    url: HttpUrlText
    headers: dict[str, str] = {}
    tls_verify: bool = True
    requests: str | None = None
    """Series selector of the request counter, e.g. ``http_requests_total``."""
    errors: str | None = None
    """Series selector of the failed requests, e.g. ``http_requests_total{status=~"5.."}``."""
    latency_histogram: str | None = None
    """A histogram's (or summary's) family name, optionally with label matchers."""
    quantiles: list[float] = [0.95, 0.99]
    gauges: dict[str, str] = {}
    """Metric name → series selector: any gauge of the target, thresholded like the rest."""

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < q <= 1 for q in value):
            raise ValueError("quantiles must be numbers above 0 and at most 1, such as 0.95")
        return value

    @field_validator("requests", "errors", "latency_histogram")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            from vigild.probes.exposition import parse_selector

            parse_selector(value)  # its SelectorError is a ValueError with one clear line
        return value

    @field_validator("latency_histogram")
    @classmethod
    def _in_seconds(cls, value: str | None) -> str | None:
        if value is not None:
            from vigild.probes.exposition import latency_scale, parse_selector

            latency_scale(parse_selector(value).metric)  # a SelectorError naming the unit
        return value

    @field_validator("gauges")
    @classmethod
    def _gauge_names(cls, value: dict[str, str]) -> dict[str, str]:
        from vigild.probes.exposition import SelectorError, parse_selector

        taken = REPORTED_METRICS["prometheus"]
        for name, selector in value.items():
            quantile = re.fullmatch(r"latency_p[0-9]+_seconds", name)
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name in taken or quantile:
                raise ValueError(
                    f"gauge name {name!r} must be a metric name of letters, digits and _ "
                    "that vigild does not already report"
                )
            try:
                parse_selector(selector)
            except SelectorError as exc:
                raise ValueError(f"gauge {name!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _errors_need_requests(self) -> Self:
        if (self.errors is None) != (self.requests is None):
            raise ValueError("requests and errors go together: the error rate is errors / requests")
        return self

    def reported_metrics(self) -> frozenset[str]:
        metrics = {"up", "latency_seconds"}
        if self.requests is not None:
            metrics.add("error_rate_percent")
        if self.latency_histogram is not None:
            metrics.update(quantile_metric(q) for q in self.quantiles)
        return frozenset(metrics | self.gauges.keys())


DEFAULT_ENGINES = (
    "unix:///var/run/docker.sock",
    "unix:///run/podman/podman.sock",
    "unix://${XDG_RUNTIME_DIR}/podman/podman.sock",
)


_ENGINE_URL = re.compile(r"^(unix://.+|tcp://[^/\s]+|https?://[^/\s]+)")


def _engine_url(value: str) -> str:
    if not _ENGINE_URL.match(value):
        raise ValueError("engine must be unix:///path/to/docker.sock or tcp://host:port")
    return value


EngineUrl = Annotated[str, AfterValidator(_engine_url)]
"""A container engine's address, as a container target and a container action take it."""


class ContainerTarget(_TargetBase):
    """Containers under Docker or Podman, through the Engine API both serve."""

    type: Literal["container"] = "container"
    container: str | None = None
    """A container's name or id."""
    container_labels: dict[str, str] = {}
    """Every container carrying these labels (``com.docker.compose.service``), one each."""
    engine: EngineUrl | None = None
    """``unix:///var/run/docker.sock`` or ``tcp://host:2375``; unset: ``$DOCKER_HOST``,
    then the first of ``DEFAULT_ENGINES`` that exists."""
    restart_window: Annotated[float, duration_between(MINUTE, 30 * DAY)] = HOUR
    """``recent_restarts`` counts restarts within this long."""

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.container is None) == (not self.container_labels):
            raise ValueError("give either container (a name or id) or container_labels")
        return self

    @property
    def expands(self) -> bool:
        """Selected by labels: one observation per matching container, ``name/container``."""
        return bool(self.container_labels)


class TlsTarget(_TargetBase):
    """A TLS endpoint's handshake and leaf certificate."""

    type: Literal["tls"] = "tls"
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    """SNI and the name the certificate must carry; default ``host``."""
    tls_verify: bool = True


class TcpTarget(_TargetBase):
    """A TCP port: connect, optionally send a line and expect a banner."""

    type: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    send: str | None = None
    expect: str | None = None
    """Text the first bytes the server sends must contain."""


TargetConfig = HttpTarget | HostTarget | PrometheusTarget | ContainerTarget | TlsTarget | TcpTarget
_TARGET_MODELS: dict[str, type[_TargetBase]] = {
    "http": HttpTarget,
    "host": HostTarget,
    "prometheus": PrometheusTarget,
    "container": ContainerTarget,
    "tls": TlsTarget,
    "tcp": TcpTarget,
}


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


_M = TypeVar("_M", bound=BaseModel)
_Backed = TypeVar("_Backed", "NotifierConfig", "ActionConfig")


class _FileShape(_Strict):
    """The top level of the file; each section is then validated on its own, so one
    run reports the problems of every section."""

    daemon: dict[str, Any] = {}
    alerting: dict[str, Any] = {}
    history: dict[str, Any] = {}
    thresholds: dict[str, dict[str, Any]] = {}
    targets: list[dict[str, Any]] = []
    notifiers: list[dict[str, Any]] = []
    silences: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Config:
    path: Path
    daemon: DaemonConfig
    alerting: AlertingConfig
    targets: tuple[TargetConfig, ...]
    rules: Mapping[str, Mapping[str, thresholds.Rule]]
    """Per target name: metric → rule, defaults merged in."""
    notifiers: tuple[NotifierConfig, ...]
    """The enabled notifiers."""
    secrets: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    disabled_notifiers: tuple[str, ...] = field(default=())
    silences: tuple[SilenceConfig, ...] = ()
    actions: tuple[ActionConfig, ...] = ()
    history: HistoryConfig = field(default_factory=HistoryConfig)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    @cached_property
    def _expanding(self) -> frozenset[str]:
        return frozenset(
            t.name for t in self.targets if isinstance(t, ContainerTarget) and t.expands
        )

    def owner_of(self, observed: str) -> str | None:
        """The configured target an observed name belongs to: itself, or for a target
        that expands into several (``web/web-1``), the target it came from."""
        if observed in self.rules:
            return observed
        head = observed
        while "/" in head:
            head = head.rpartition("/")[0]
            if head in self._expanding:
                return head
        return None


# ---------------------------------------------------------------------------
# Loading


def find_config(explicit: str | None) -> Path:
    """``--config``, then ``$VIGILD_CONFIG``, then ./thresholds.toml, then /etc/vigild."""
    chosen = explicit or os.environ.get("VIGILD_CONFIG")
    if chosen:
        return Path(chosen)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_PATHS[0]


def load(path: Path, *, check_notifier_urls: bool = True) -> Config:
    """Read, interpolate and validate ``path``; every problem is in the ``ConfigError``.

    Args:
        check_notifier_urls: parse each notifier's URL with its backend's own parser
            (apprise's import alone takes a few hundred ms). ``vigild --once`` skips it
            to start fast; ``check-config``, ``run`` and a reload never do.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    # tomllib and the builder both walk nesting by recursion: `a = [[[[...]]]]`
    # thousands deep ends in a RecursionError, which is a broken file like any other.
    too_deep = f"{path}: not valid TOML: arrays or tables nested too deeply"
    try:
        raw = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or a limit such as a 5,000-digit integer
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([too_deep]) from None
    try:
        return _Builder(path, os.environ, check_notifier_urls).build(raw)
    except RecursionError:
        raise ConfigError([too_deep]) from None


class _Builder:
    def __init__(self, path: Path, env: Mapping[str, str], check_notifier_urls: bool) -> None:
        self.path = path
        self.env = env
        self.check_notifier_urls = check_notifier_urls
        self.problems: list[str] = []
        self.secrets: set[str] = set()

    def problem(self, loc: Iterable[str | int], reason: str) -> None:
        self.problems.append(f"{self.path}: {_dotted(loc)}: {redact(reason, self.secrets)}")

    def pydantic_problems(self, prefix: tuple[str | int, ...], exc: ValidationError) -> None:
        for err in exc.errors():
            loc = prefix + tuple(err["loc"])
            self.problem(loc, _reason(err))

    def unique(self, loc: tuple[str | int, ...], kind: str, name: str, seen: set[str]) -> None:
        if name in seen:
            self.problem(loc, f"duplicate {kind} name {name!r}")
        seen.add(name)

    def validate(
        self, model: type[_M], raw: dict[str, Any], loc: tuple[str | int, ...]
    ) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self.pydantic_problems(loc, exc)
            return None

    def build(self, raw: dict[str, Any]) -> Config:
        raw = self.interpolate(raw, ())
        for section in NOT_SUPPORTED_YET_SECTIONS & raw.keys():
            self.problem((section,), "not supported yet")
            del raw[section]
        try:
            shape = _FileShape.model_validate(raw)
        except ValidationError as exc:
            self.pydantic_problems((), exc)
            raise ConfigError(self.problems) from None
        daemon = self.daemon(shape.daemon)
        alerting = self.validate(AlertingConfig, shape.alerting, ("alerting",))
        history = self.validate(HistoryConfig, shape.history, ("history",))
        overrides = {
            metric: spec
            for metric, raw_spec in shape.thresholds.items()
            if (spec := self.validate(ThresholdSpec, raw_spec, ("thresholds", metric))) is not None
        }
        defaults = self.default_thresholds(overrides)
        default_rules = {
            metric: rule
            for metric, spec in defaults.items()
            if (rule := self.check_rule(("thresholds", metric), metric, spec)) is not None
        }
        targets, rules = self.targets(shape.targets, defaults, default_rules)
        notifiers, disabled = self.notifiers(shape.notifiers)
        silences = [
            silence
            for i, raw_silence in enumerate(shape.silences)
            if (silence := self.validate(SilenceConfig, raw_silence, ("silences", i))) is not None
        ]
        actions = self.actions(shape.actions)
        self.references(daemon, targets)
        self.timeouts(daemon, targets)
        if self.problems or daemon is None or alerting is None or history is None:
            raise ConfigError(self.problems)
        warnings = tuple(
            f"notifier {name!r} is disabled: its url or key is empty" for name in disabled
        )
        return Config(
            path=self.path,
            daemon=daemon,
            alerting=alerting,
            targets=tuple(targets),
            rules=rules,
            notifiers=tuple(notifiers),
            secrets=frozenset(self.secrets),
            warnings=warnings,
            disabled_notifiers=tuple(disabled),
            silences=tuple(silences),
            actions=tuple(actions),
            history=history,
        )

    def references(self, daemon: DaemonConfig | None, targets: list[TargetConfig]) -> None:
        """Names that must name a target (``depends_on``, ``connectivity_check``), and
        the dependency graph they make: a loop would hold back every alert in it."""
        by_name = {t.name: t for t in targets}
        for i, target in enumerate(targets):
            for dependency in target.depends_on:
                if dependency not in by_name:
                    self.problem(("targets", i, "depends_on"), f"no target named {dependency!r}")
        for cycle in _cycles({t.name: t.depends_on for t in targets}):
            self.problem(("targets",), f"depends_on cycle {' -> '.join(cycle)}")
        check = daemon.connectivity_check if daemon is not None else None
        if check is None:
            return
        if check not in by_name:
            self.problem(("daemon", "connectivity_check"), f"no target named {check!r}")
        elif by_name[check].depends_on:
            # It decides whether every other alert is held back: nothing may hold it back.
            self.problem(
                ("daemon", "connectivity_check"),
                f"target {check!r} must depend on nothing "
                f"(it has depends_on = {by_name[check].depends_on})",
            )

    def timeouts(self, daemon: DaemonConfig | None, targets: list[TargetConfig]) -> None:
        """A probe that may outlast its interval would still run when the next is due."""
        if daemon is None:
            return
        for i, target in enumerate(targets):
            interval = target.effective_interval(daemon)
            if target.timeout is not None and target.timeout > interval:
                self.problem(
                    ("targets", i, "timeout"),
                    f"{format_duration(target.timeout)} is longer than the target's interval "
                    f"({format_duration(interval)}): a timeout must be at most the interval",
                )

    # -- ${VAR} -----------------------------------------------------------

    _VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

    def interpolate(self, node: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(node, dict):
            return {k: self.interpolate(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.interpolate(v, (*loc, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return self._VAR.sub(lambda m: self._substitute(m, loc), node)
        return node

    def _substitute(self, match: re.Match[str], loc: tuple[str | int, ...]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                self.problem(
                    loc,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-}} to make it optional)",
                )
                return ""
            return default
        if value:
            self.secrets.add(value)
        return value

    # -- sections ---------------------------------------------------------

    def daemon(self, raw: dict[str, Any]) -> DaemonConfig | None:
        for key in NOT_SUPPORTED_YET_DAEMON_KEYS & raw.keys():
            self.problem(("daemon", key), "not supported yet")
        known = {k: v for k, v in raw.items() if k not in NOT_SUPPORTED_YET_DAEMON_KEYS}
        try:
            return DaemonConfig(**known)
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                where: tuple[str | int, ...] = ("daemon", *err["loc"])
                if key and key not in known and f"VIGILD_{key.upper()}" in self.env:
                    where = (f"VIGILD_{key.upper()} (environment)",)
                self.problem(where, _reason(err))
            return None

    def default_thresholds(self, overrides: dict[str, ThresholdSpec]) -> dict[str, ThresholdSpec]:
        merged = dict(BUILTIN_THRESHOLDS)
        for metric, spec in overrides.items():
            merged[metric] = spec.merged_over(merged.get(metric))
        return merged

    def check_rule(
        self, loc: tuple[str | int, ...], metric: str, spec: ThresholdSpec, explicit: bool = False
    ) -> thresholds.Rule | None:
        try:
            return thresholds.Rule.from_spec(metric, spec, explicit=explicit)
        except thresholds.RuleError as exc:
            self.problem(loc, str(exc))
            return None

    def targets(
        self,
        raws: list[dict[str, Any]],
        defaults: dict[str, ThresholdSpec],
        default_rules: dict[str, thresholds.Rule],
    ) -> tuple[list[TargetConfig], dict[str, dict[str, thresholds.Rule]]]:
        targets: list[TargetConfig] = []
        rules: dict[str, dict[str, thresholds.Rule]] = {}
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("targets", i)
            kind = raw.get("type")
            if kind not in _TARGET_MODELS:
                expected = ", ".join(sorted(_TARGET_MODELS))
                reason = "required key missing" if kind is None else f"unknown type {kind!r}"
                self.problem((*loc, "type"), f"{reason} (expected one of: {expected})")
                continue
            try:
                target: TargetConfig = _TARGET_MODELS[kind].model_validate(raw)  # type: ignore[assignment]
            except ValidationError as exc:
                self.pydantic_problems(loc, exc)
                continue
            self.unique((*loc, "name"), "target", target.name, seen)
            targets.append(target)
            rules[target.name] = self.target_rules(loc, target, defaults, default_rules)
        return targets, rules

    def target_rules(
        self,
        loc: tuple[str | int, ...],
        target: TargetConfig,
        defaults: dict[str, ThresholdSpec],
        default_rules: dict[str, thresholds.Rule],
    ) -> dict[str, thresholds.Rule]:
        reported = target.reported_metrics()
        # Shared Rule objects: 10,000 targets need not hold 10,000 copies of the defaults.
        result = {m: r for m, r in default_rules.items() if m in reported}
        if isinstance(target, HostTarget):
            result.update(self.process_rules(loc, target, defaults))
        for metric, spec in target.thresholds.items():
            where = (*loc, "thresholds", metric)
            if metric not in reported:
                self.problem(
                    where,
                    f"{target.type} targets do not report {metric!r} "
                    f"(they report: {', '.join(sorted(reported))})",
                )
                continue
            checked = self.check_rule(where, metric, spec.merged_over(defaults.get(metric)), True)
            if checked is not None:
                result[metric] = checked
        return result

    def process_rules(
        self, loc: tuple[str | int, ...], target: HostTarget, defaults: dict[str, ThresholdSpec]
    ) -> dict[str, thresholds.Rule]:
        """One rule per process check, keyed by its qualified metric: fewer than ``min``
        running is critical. ``thresholds.processes`` may add ``for`` and a runbook."""
        timing = target.thresholds.get("processes", defaults.get("processes", ThresholdSpec()))
        rules = {}
        for i, check in enumerate(target.processes):
            spec = timing.model_copy(
                update={"critical": check.min, "warning": None, "direction": "below"}
            )
            rule = self.check_rule((*loc, "processes", i), check.metric, spec, True)
            if rule is not None:
                rules[check.metric] = rule
        return rules

    def backed(
        self,
        loc: tuple[str | int, ...],
        raw: dict[str, Any],
        kind: str,
        backend_of: Callable[[str], Any],
        model: type[_Backed],
    ) -> tuple[_Backed, Any] | None:
        """One ``[[notifiers]]`` or ``[[actions]]`` table: the keys every one takes by
        ``model``, the rest by the backend's own ``Options``."""
        try:
            backend = backend_of(kind)
        except LookupError as exc:
            self.problem((*loc, "type"), str(exc))
            return None
        common = {k: v for k, v in raw.items() if k in model.COMMON_KEYS}
        own = {k: v for k, v in raw.items() if k not in model.COMMON_KEYS}
        try:
            options = backend.Options.model_validate(own)
            return model.model_validate({**common, "options": options}), backend
        except ValidationError as exc:
            self.pydantic_problems(loc, exc)
            return None

    def notifiers(self, raws: list[dict[str, Any]]) -> tuple[list[NotifierConfig], list[str]]:
        from vigild.alerting.notifiers.base import backend

        enabled: list[NotifierConfig] = []
        disabled: list[str] = []
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("notifiers", i)
            found = self.backed(loc, raw, raw.get("type", "apprise"), backend, NotifierConfig)
            if found is None:
                continue
            notifier, notifier_backend = found
            self.unique((*loc, "name"), "notifier", notifier.name, seen)
            if notifier_backend.is_disabled(notifier.options):
                disabled.append(notifier.name)
                continue
            enabled.append(notifier)
            if self.check_notifier_urls:
                reason = notifier_backend.unusable(notifier.options)
                if reason is not None:
                    self.problem((*loc, "url"), reason)
        return enabled, disabled

    def actions(self, raws: list[dict[str, Any]]) -> list[ActionConfig]:
        from vigild.alerting.actions.base import backend

        actions: list[ActionConfig] = []
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("actions", i)
            kind = raw.get("type")
            if kind is None:
                self.problem((*loc, "type"), "required key missing")
                continue
            found = self.backed(loc, raw, kind, backend, ActionConfig)
            if found is None:
                continue
            action, _backend = found
            self.unique((*loc, "name"), "action", action.name, seen)
            actions.append(action)
        return actions


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each loop of ``graph`` once, as the path that closes it (``["x", "y", "x"]``),
    found by a depth-first walk in the graph's order; iterative, as a chain may be
    thousands of targets long."""
    done: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(graph[start])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif step in on_path:
                found.append([*path[path.index(step) :], step])
            elif step not in done and step in graph:
                path.append(step)
                on_path.add(step)
                pending.append(iter(graph[step]))
    return found


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if kind not in {"value_error", "assertion_error"} and "input" in err:
        value = err["input"]
        if not isinstance(value, dict | list):
            msg += f" (got {value!r})"
    return msg
