"""Talking to the running daemon's API from the command line (``vigild silence``).

Writes carry ``[daemon] api_token`` when this shell has it, else the daemon's
cookie: on the daemon's own host, reading the cookie file is the permission.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from vigild.config import DaemonConfig
from vigild.cookie import cookie_path, read_cookie
from vigild.fields import host_port, split_listen, unix_listen

__all__ = ["ApiError", "Unreachable", "call", "local_url"]

TIMEOUT = 10.0


class ApiError(Exception):
    """The daemon could not be reached, or refused the request; the message says why."""


class Unreachable(ApiError):
    """No daemon answered: none runs, or it listens elsewhere."""


def _base(listen: str) -> tuple[str, aiohttp.BaseConnector | None]:
    socket_path = unix_listen(listen)
    if socket_path is not None:
        return "http://localhost", aiohttp.UnixConnector(path=socket_path)
    return local_url(listen), None


def local_url(listen: str) -> str:
    """Where a client on this host reaches a ``HOST:PORT`` listener."""
    host, port = split_listen(listen)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://{host_port(host, port)}"


async def call(
    daemon: DaemonConfig, method: str, path: str, body: Any = None, *, data: bytes | None = None
) -> Any:
    """One API request with a JSON ``body`` or raw ``data``; the JSON answer, or
    ``ApiError`` with the daemon's own reason."""
    base, connector = _base(daemon.listen)
    cookie = cookie_path(daemon.state_path)
    token = daemon.api_token or read_cookie(cookie)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.request(method, base + path, json=body, data=data, headers=headers) as resp,
        ):
            text = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise Unreachable(
            f"cannot reach vigild at {daemon.listen}: {reason} (is the daemon running?)"
        ) from None
    try:
        document = json.loads(text)
    except ValueError:
        raise ApiError(f"vigild answered HTTP {status} with something that is not JSON") from None
    if status >= 400:
        problems = document.get("problems") if isinstance(document, dict) else None
        error = document.get("error") if isinstance(document, dict) else None
        details = "".join(f"\n  {p}" for p in problems or [])
        if status == 401 and token is None:
            details += (
                f"\n  {cookie} cannot be read by this user: run as the daemon's user, "
                "or give [daemon] api_token (VIGILD_API_TOKEN)"
            )
        raise ApiError(f"vigild refused: {error or f'HTTP {status}'}{details}")
    return document
