"""The value types of config keys: durations, sizes, the bounds a key accepts,
names and URLs.

``"30s"``, ``"1h30m"``, ``"250ms"``; ``"1MiB"``, ``"64KB"``; read by the config's
models and by every probe's, notifier's and action's options alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "Bounds",
    "ByteSize",
    "EngineUrl",
    "HttpUrlText",
    "Interval",
    "Name",
    "RepeatInterval",
    "duration_between",
    "format_duration",
    "format_size",
    "host_port",
    "http_url",
    "is_loopback",
    "parse_duration",
    "parse_size",
    "size_between",
    "split_listen",
    "unix_listen",
]

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


def parse_size(value: Any) -> Any:
    """``1024``, ``"64KB"``, ``"1 MiB"``: whole bytes, B to GiB. Not pydantic's ``ByteSize``,
    which also takes trailing words, ``true``, fractions and one-letter units
    (tests/unit/test_fields.py lists them)."""
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
    return Bounds(low, high, parse_size, format_size)


Interval = Annotated[float, duration_between(SECOND, DAY)]
"""A probe interval: below a second is a flood, above a day no longer watches."""

RepeatInterval = Annotated[float, duration_between(MINUTE, 30 * DAY)]
"""How often an open alert is told again."""

ByteSize = Annotated[int, size_between(256, 2**30)]
"""The most of an answer a probe reads."""


def _printable(value: str) -> str:
    """A name goes out in logs, ``--once`` text, ``/metrics`` labels and HTML as it is:
    a control character there would forge lines or garble what a person reads."""
    for i, char in enumerate(value):
        if not char.isprintable():
            raise ValueError(f"a name may hold only printable characters, not {char!r} (at {i})")
    return value


Name = Annotated[str, Field(min_length=1), AfterValidator(_printable)]


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


_ENGINE_URL = re.compile(r"^(unix://.+|tcp://[^/\s]+|https?://[^/\s]+)")


def _engine_url(value: str) -> str:
    if not _ENGINE_URL.match(value):
        raise ValueError("engine must be unix:///path/to/docker.sock or tcp://host:port")
    return value


EngineUrl = Annotated[str, AfterValidator(_engine_url)]
"""A container engine's address, as a container target and a container action take it."""


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


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets: ``[::1]:9469``."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
