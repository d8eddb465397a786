"""One POST to a receiver, and its failures as ``DeliveryError`` in words safe to log.

Every HTTP backend (webhook, PagerDuty, Alertmanager) classifies failures the
same way: network trouble and 408, 429 and 5xx are worth retrying, any other
answer is not. The reasons never carry the URL (it often holds a token), only
what went wrong.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

import aiohttp

from vigild.alerting.notifiers.base import DeliveryError
from vigild.redaction import shorten

__all__ = ["RETRYABLE_4XX", "answer_error", "os_reason", "post", "said_in"]

RETRYABLE_4XX = frozenset({408, 429})
REASON_MAX = 300


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 - aiohttp's own, per request
) -> tuple[int, str, bytes]:
    """POST and return (status, reason phrase, body); a failed exchange raises."""
    try:
        async with session.post(
            url,
            json=json_body,
            data=data,
            headers=headers,
            timeout=timeout,
            # A redirect would turn the POST into a GET and lose the body: a config error.
            allow_redirects=False,
        ) as response:
            # Drained, so the connection is kept alive.
            return response.status, response.reason or "", await response.read()
    except aiohttp.ClientSSLError:
        raise DeliveryError("TLS handshake failed") from None
    except aiohttp.ClientConnectorError as exc:
        raise DeliveryError(f"cannot connect: {os_reason(exc.os_error)}") from None
    except TimeoutError:
        total = timeout.total if timeout is not None else None
        raise DeliveryError(f"no answer within {total:g}s" if total else "timed out") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"request failed: {type(exc).__name__}") from None


def answer_error(status: int, said: str) -> DeliveryError:
    """A non-2xx answer: retried when the receiver may accept it later."""
    return DeliveryError(
        f"answered {status}: {said}".rstrip(": "),
        retryable=status >= 500 or status in RETRYABLE_4XX,
    )


def said_in(answer: bytes, *keys: str, redact: Callable[[str], str]) -> str:
    """The receiver's own explanation (a JSON object's ``keys``, a JSON string, or text),
    redacted (a receiver may quote the token it refused), on one short line."""
    try:
        data: Any = json.loads(answer)
    except ValueError:
        data = answer.decode("utf-8", errors="replace")
    if isinstance(data, dict):
        parts = []
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if value:
                parts.append(str(value))
        data = ": ".join(parts)
    return shorten(redact(" ".join(str(data).split())), REASON_MAX)


def os_reason(error: OSError) -> str:
    """What went wrong, without the host and port that ``str(error)`` carries."""
    if isinstance(error, socket.gaierror):
        return f"name lookup failed ({error.strerror or 'no address'})"
    if error.errno:
        return os.strerror(error.errno)
    return "connection error"
