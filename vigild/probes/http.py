"""HTTP probe: one request, timed to the last byte, read as a health answer.

The story of a probe: send the request on the daemon's shared session, read
the body up to ``max_body``, check the status, and read a JSON health body's
``status`` words (DESIGN.md, "Health body"). Every failure of the exchange
becomes an observation with ``up`` false and one short line of error.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import aiohttp
import yarl

from vigild.config import HttpTarget
from vigild.model import Observation
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.certificate import days_left, not_after
from vigild.redaction import one_line, shorten

__all__ = ["HttpProbe", "describe_client_error", "health_of", "read_body"]

HEALTHY, DEGRADED, UNHEALTHY = 0, 1, 2

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


class HttpProbe(Probe):
    """Probes one ``type = "http"`` target through the daemon's shared session."""

    target: HttpTarget

    def __init__(self, target: HttpTarget, timeout: float, context: ProbeContext) -> None:
        super().__init__(target, timeout, context)
        self.session = context.session
        # Everything that does not change between requests is built once: this runs
        # for every target every cycle (a parsed URL is not parsed again by aiohttp).
        self._url: yarl.URL | str
        try:
            self._url = yarl.URL(target.url)
        except ValueError:
            self._url = target.url  # aiohttp reports it as an invalid URL on each probe
        self._request: dict[str, Any] = {
            "headers": target.headers or None,
            "data": target.body,
            "timeout": aiohttp.ClientTimeout(total=timeout),
            "allow_redirects": target.follow_redirects,
        }
        if not target.tls_verify:
            self._request["ssl"] = False
        self._expected = frozenset(target.expect_status) if target.expect_status else None
        self._expected_text = (
            ", ".join(map(str, target.expect_status)) if target.expect_status else "2xx"
        )
        self._timeout_error = f"timeout after {timeout:g}s"
        self._too_large_error = f"body larger than {target.max_body} bytes"
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
            async with self.session.request(target.method, self._url, **self._request) as resp:
                status = resp.status
                metrics["status_code"] = float(status)
                body = await read_body(resp, target.max_body, trust_length=self._trust_length)
                if body is None:
                    resp.close()  # drop the connection: the rest of the body is never read
                else:
                    metrics["latency_seconds"] = time.perf_counter() - started
                content_type = resp.content_type
        except TimeoutError:
            return Observation(target.name, now, False, self._timeout_error, metrics)
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
        from vigild.probes.tls import client_context, handshake

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
            error = f"HTTP {status} (expected {self._expected_text})"
            return Observation(name, now, False, error, metrics)
        if body is None:
            return Observation(name, now, False, self._too_large_error, metrics)
        if not _looks_like_json(content_type, body):
            return Observation(name, now, True, None, metrics)
        return _health_observation(name, now, body, metrics, self.secrets)


async def read_body(
    resp: aiohttp.ClientResponse, limit: int, *, trust_length: bool = True
) -> bytes | None:
    """The whole body, or None as soon as it is known to pass ``limit`` bytes.

    Memory stays bounded by ``limit`` whatever the server sends (a huge page, an
    endless stream). The caller closes the connection on None: the rest of the
    body is never read.
    """
    length = resp.content_length
    if length is not None and length > limit and trust_length:
        return None
    content = resp.content
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(limit + 1 - size):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        error = one_line(f"invalid JSON body: {str(exc) or type(exc).__name__}", MAX_ERROR, secrets)
        return Observation(name, now, False, error, metrics)
    health = health_of(document, secrets)
    if health is None:
        return Observation(name, now, True, None, metrics, missing=_MISSING_HEALTH)
    level, where, word = health
    metrics["health_status"] = float(level)
    if level == UNHEALTHY:
        return Observation(name, now, False, f"unhealthy: {where}status {word!r}", metrics)
    return Observation(name, now, True, None, metrics)


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


def describe_client_error(exc: aiohttp.ClientError, secrets: frozenset[str] = frozenset()) -> str:
    """One short line for an operator; aiohttp's own messages repeat host and port."""

    def line(text: str) -> str:
        return one_line(text, MAX_ERROR, secrets)

    # Most specific first: the certificate error is also an SSL and a connector error.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or _ssl_text(cert_error)
        return line(f"TLS error: certificate verify failed: {detail}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return line(f"TLS error: {_ssl_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return line(f"DNS lookup failed for {exc.host}: {_os_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection refused"
        return line(f"cannot connect: {_os_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = "redirect" if isinstance(exc, aiohttp.RedirectClientError) else "URL"
        return line(f"invalid {kind}: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return line(f"incomplete body: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        # Parser messages go on to quote the bad line on the lines after "...:".
        return line(f"bad response: {line(exc.message).rstrip(': ')}")
    if isinstance(exc, aiohttp.ClientOSError):
        return line(f"connection error: {_os_text(exc)}")
    return line(f"{type(exc).__name__}: {exc}")


def _os_text(error: OSError) -> str:
    """The errno's own words ("connection reset by peer"), not asyncio's "Connect call failed"."""
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno).lower()
    return error.strerror or str(error) or type(error).__name__


_SSL_NOISE = re.compile(r"^\[SSL(?:: \w+)?\] | \(_ssl\.c:\d+\)$")


def _ssl_text(error: BaseException) -> str:
    """Drops the "[SSL: CODE] " prefix and " (_ssl.c:NNN)" suffix around the reason."""
    return _SSL_NOISE.sub("", str(error)) or type(error).__name__
