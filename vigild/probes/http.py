"""HTTP probe: one request, timed to the last byte, read as a health answer.

The story of a probe: send the request on the daemon's shared session, read
the body up to ``max_body``, check the status, and read a JSON health body's
``status`` words (DESIGN.md, "Health body"). Every failure of the exchange
becomes an observation with ``up`` false and one short line of error.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import aiohttp
import yarl
from pydantic import field_validator

from vigild.config import TargetConfig
from vigild.fields import HttpUrlText
from vigild.model import Observation
from vigild.probes._net import client_context, describe_client_error, handshake, read_body
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.certificate import days_left, not_after
from vigild.redaction import one_line, shorten

__all__ = ["HttpProbe", "health_of"]

HEALTHY, DEGRADED, UNHEALTHY = 0, 1, 2

try:
    _orjson: Any = importlib.import_module("orjson")  # vigild[fast]
except ImportError:
    _orjson = None

_HEALTH_WORDS = {
    "pass": HEALTHY,
    "ok": HEALTHY,
    "healthy": HEALTHY,
    "up": HEALTHY,
    "green": HEALTHY,
    "warn": DEGRADED,
    "warning": DEGRADED,
    "degraded": DEGRADED,
    "yellow": DEGRADED,
}

# JSON's own whitespace, then "{": matched in place, so a large body is never copied to check it.
_JSON_OBJECT_START = re.compile(rb"[ \t\r\n]*\{")
_MISSING_HEALTH = frozenset({"health_status"})
CERT_RECHECK = 3600.0


class HttpTarget(TargetConfig):
    """An HTTP(S) endpoint: its status, latency, JSON health body and certificate."""

    REPORTED = frozenset(
        {"up", "latency_seconds", "status_code", "health_status", "cert_expiry_days"}
    )
    SLO_EVENTS = "probes"

    type: Literal["http"] = "http"
    url: HttpUrlText
    method: str = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    expect_status: list[int] | None = None
    tls_verify: bool = True
    follow_redirects: bool = True

    def reported_metrics(self) -> frozenset[str]:
        https = self.url.startswith("https://")
        return self.REPORTED if https else self.REPORTED - {"cert_expiry_days"}

    def shown_url(self) -> str | None:
        return self.url

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


class HttpProbe(Probe):
    """Probes one ``type = "http"`` target through the daemon's shared session."""

    Options = HttpTarget
    target: HttpTarget
    # One per target: slots, and no field only a failure needs (its error line is made
    # when it happens), keep each probe near 100 bytes.
    __slots__ = (
        "_certificate_checked",
        "_expected",
        "_https",
        "_not_after",
        "_timeout",
        "_trust_length",
        "session",
    )

    def __init__(self, target: HttpTarget, timeout: float, context: ProbeContext) -> None:
        super().__init__(target, timeout, context)
        self.session = context.session
        self._timeout = _client_timeout(timeout)
        self._expected = frozenset(target.expect_status) if target.expect_status else None
        # A HEAD answer's Content-Length is that of the body it does not send.
        self._trust_length = target.method != "HEAD"
        self._https = target.url.startswith("https://")
        self._certificate_checked: float | None = None
        self._not_after: float | None = None

    async def probe(self, now: float) -> tuple[Observation]:
        return (await self._exchange(now),)

    async def _exchange(self, now: float) -> Observation:
        target = self.target
        metrics: dict[str, float] = {}
        started = time.perf_counter()
        try:
            async with self.session.request(
                target.method,
                # A string, parsed by aiohttp each time (~4 µs): a parsed URL kept
                # here grows the caches of its properties, ~1 KB a target.
                target.url,
                headers=target.headers or None,
                data=target.body,
                timeout=self._timeout,
                allow_redirects=target.follow_redirects,
                ssl=target.tls_verify,
            ) as resp:
                status = resp.status
                metrics["status_code"] = float(status)
                body = await read_body(resp, target.max_body, trust_length=self._trust_length)
                if body is None:
                    resp.close()  # drop the connection: the rest of the body is never read
                else:
                    metrics["latency_seconds"] = time.perf_counter() - started
                content_type = resp.content_type
        except TimeoutError:
            error = f"timeout after {self.timeout:g}s"
            return Observation(target.name, now, False, error, metrics)
        except aiohttp.ClientError as exc:
            return Observation(
                target.name, now, False, describe_client_error(exc, self.secrets), metrics
            )
        if self._https and (days := await self._certificate_days()) is not None:
            metrics["cert_expiry_days"] = days
        return self._observation(now, status, content_type, body, metrics)

    async def _certificate_days(self) -> float | None:
        """Days the server's certificate has left, looked at once an hour.

        aiohttp hands the connection back to its pool as soon as a small body is
        read, taking the TLS session with it, so the certificate comes from a
        handshake of its own: one an hour costs nothing, and a renewal shows up
        within the hour.
        """
        now = time.time()
        if self._certificate_checked is None or now - self._certificate_checked >= CERT_RECHECK:
            self._certificate_checked = now
            self._not_after = await self._read_not_after()
        return days_left(self._not_after, now) if self._not_after is not None else None

    async def _read_not_after(self) -> float | None:
        url = yarl.URL(self.target.url)
        host, port = url.raw_host or "", url.port or 443
        deadline = asyncio.get_running_loop().time() + self.timeout
        context = client_context(verify=self.target.tls_verify)
        try:
            der, _latency = await handshake(host, port, host, context, deadline)
            return not_after(der)
        except (OSError, ValueError):
            return None  # the request itself says what is wrong with the connection

    def _observation(
        self,
        now: float,
        status: int,
        content_type: str,
        body: bytes | None,
        metrics: dict[str, float],
    ) -> Observation:
        name = self.target.name
        expected = 200 <= status < 300 if self._expected is None else status in self._expected
        if not expected:
            codes = self.target.expect_status
            wanted = ", ".join(map(str, codes)) if codes else "2xx"
            return Observation(name, now, False, f"HTTP {status} (expected {wanted})", metrics)
        if body is None:
            error = f"body larger than {self.target.max_body} bytes"
            return Observation(name, now, False, error, metrics)
        if not _looks_like_json(content_type, body):
            return Observation(name, now, True, None, metrics)
        return _health_observation(name, now, body, metrics, self.secrets)


@functools.lru_cache(maxsize=64)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    """One (frozen) timeout object for all the probes with the same timeout."""
    return aiohttp.ClientTimeout(total=total)


def _looks_like_json(content_type: str, body: bytes) -> bool:
    if not body:
        return False  # HEAD, 204, or an empty answer: nothing to judge, not broken JSON
    if content_type == "application/json" or content_type.endswith("+json"):
        return True
    return _JSON_OBJECT_START.match(body) is not None


def _health_observation(
    name: str, now: float, body: bytes, metrics: dict[str, float], secrets: frozenset[str]
) -> Observation:
    try:
        document = _json_loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        error = one_line(f"invalid JSON body: {str(exc) or type(exc).__name__}", MAX_ERROR, secrets)
        return Observation(name, now, False, error, metrics)
    health = health_of(document, secrets)
    if health is None:
        why = {"health_status": "the JSON body has no status field"}
        return Observation(name, now, True, None, metrics, missing=_MISSING_HEALTH, reasons=why)
    level, where, word = health
    metrics["health_status"] = float(level)
    if level == UNHEALTHY:
        return Observation(name, now, False, f"unhealthy: {where}status {word!r}", metrics)
    return Observation(name, now, True, None, metrics)


def _json_loads(body: bytes) -> Any:
    """orjson's reading when installed: a tenth of the standard library's 4 µs on a small
    body, about 2 % of a probe. Where orjson refuses (NaN, lone surrogates) the standard
    library reads the body, so health reads alike either way; only an integer beyond 64
    bits comes back as a float."""
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except ValueError:
            pass
    return json.loads(body)


def health_of(document: Any, secrets: frozenset[str] = frozenset()) -> tuple[int, str, str] | None:
    """The worst status in a health document as (level, where, word); None if it has none.

    Reads the top-level ``status``, ``services`` (name → object, or a list of
    objects) and ``checks`` (name → object or status word or, as in
    application/health+json, a list of objects; or a list of objects).
    ``where`` names the nested entry ("services.db ") for the error line.
    """
    if not isinstance(document, dict):
        return None
    worst: tuple[int, str, str] | None = None
    for section, key, status in _statuses(document):
        if status is None:
            continue
        word = status if isinstance(status, str) else json.dumps(status)
        level = _HEALTH_WORDS.get(word.strip().lower(), UNHEALTHY)
        if worst is None or level > worst[0]:
            where = f"{section}.{shorten(str(key), 40, secrets)} " if section else ""
            worst = (level, where, shorten(word, 60, secrets))
            if level == UNHEALTHY:
                break  # nothing is worse; the error names the first unhealthy entry
    return worst


def _statuses(document: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(section, key, status) for every place a health document keeps a status."""
    yield "", "", document.get("status")
    for section in ("services", "checks"):
        entries = document.get(section)
        if isinstance(entries, dict):
            items: Iterable[tuple[Any, Any]] = entries.items()
        elif isinstance(entries, list):
            items = ((_list_key(i, entry), entry) for i, entry in enumerate(entries))
        else:
            continue
        for key, entry in items:
            if isinstance(entry, dict):
                yield section, key, entry.get("status")
            elif section == "checks" and isinstance(entry, str):
                yield section, key, entry
            elif section == "checks" and isinstance(entry, list):
                for item in entry:
                    if isinstance(item, dict):
                        yield section, key, item.get("status")


def _list_key(index: int, entry: Any) -> Any:
    if isinstance(entry, dict):
        name = entry.get("name")
        if isinstance(name, str):
            return name
    return index
