"""Client of the Docker Engine API, which Podman serves too.

Only what vigild uses: list, inspect and one-shot stats for the container
probe; restart and stop for container actions; the events stream for
discovery. Paths carry no API version: both engines serve unversioned paths at
their own current version, while a pinned version is refused by every engine
older than it.

Every call is bounded (a body cap, a timeout) and every failure is one
``EngineError`` whose message is a short line an operator can act on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from vigild import __version__
from vigild.redaction import one_line
from vigild.wording import os_text

__all__ = [
    "DEFAULT_ENGINES",
    "DEFAULT_TIMEOUT",
    "MAX_BODY",
    "EngineClient",
    "EngineError",
    "connect",
]

MAX_BODY = 4 * 2**20
"""The largest answer read: an inspect is ~10 KiB, a stats answer ~3 KiB."""
DEFAULT_TIMEOUT = 10.0

DEFAULT_ENGINES = (
    "unix:///var/run/docker.sock",
    "unix:///run/podman/podman.sock",
    "unix://${XDG_RUNTIME_DIR}/podman/podman.sock",
)
"""Where an engine is looked for when neither the config nor ``$DOCKER_HOST`` names one."""
CONNECTIONS = 32
"""Connections kept to one engine: enough to fetch many containers' stats at once,
few enough that vigild never floods the engine."""

_ERROR_LIMIT = 200
_XDG = re.compile(r"\$\{XDG_RUNTIME_DIR\}")


class EngineError(Exception):
    """A call that failed; ``status`` is the engine's HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


def connect(
    url: str | None = None,
    *,
    candidates: Iterable[str] = DEFAULT_ENGINES,
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_body: int = MAX_BODY,
    secrets: Callable[[], frozenset[str]] = frozenset,
) -> EngineClient:
    """A client of ``url``; None: ``$DOCKER_HOST``, else the first of ``candidates``
    whose socket exists. Nothing is opened here: an engine that is missing is an
    error of each call, and one that starts later is found by the next call."""
    return EngineClient(
        url,
        candidates=tuple(candidates),
        environ=os.environ if environ is None else environ,
        timeout=timeout,
        max_body=max_body,
        secrets=secrets,
    )


class EngineClient:
    """One engine's connection pool. Every call takes ``within``: the seconds it may
    take, ``timeout`` when None."""

    def __init__(
        self,
        url: str | None,
        *,
        candidates: tuple[str, ...] = DEFAULT_ENGINES,
        environ: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = MAX_BODY,
        secrets: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._configured = url
        self._secrets = secrets
        """Masked in an error before it is shortened (read when needed: a reload changes them)."""
        self._candidates = candidates
        self._environ = os.environ if environ is None else environ
        self.timeout = timeout
        self.max_body = max_body
        self.url: str | None = None
        """The engine's URL once resolved (the first call resolves it)."""
        self._base = ""
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- calls ------------------------------------------------------------

    async def ping(self, *, within: float | None = None) -> str:
        """``GET /_ping``: the engine's ``OK``."""
        _, body = await self._call("GET", "/_ping", None, within)
        return body.decode("utf-8", "replace").strip()

    async def list_containers(
        self, labels: Mapping[str, str] | None = None, *, within: float | None = None
    ) -> list[dict[str, Any]]:
        """Every container, running or not, carrying all of ``labels``."""
        params = {"all": "true"}
        if labels:
            # The list form of a filter: Docker takes it, and it is the only one Podman takes.
            params["filters"] = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        listed = await self._json("GET", "/containers/json", params, within)
        if not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
            raise EngineError("unexpected answer from container engine: not a container list")
        return listed

    async def inspect(self, container: str, *, within: float | None = None) -> dict[str, Any]:
        """``GET /containers/{id}/json``: state, health, restart count, config."""
        info = await self._json("GET", f"{_path(container)}/json", None, within)
        if not isinstance(info, dict):
            raise EngineError("unexpected answer from container engine: inspect is not an object")
        return info

    async def stats(self, container: str, *, within: float | None = None) -> dict[str, Any]:
        """One stats sample, at once: without ``one-shot`` Docker waits a second to fill
        ``precpu_stats``; Podman never fills it without streaming."""
        params = {"stream": "false", "one-shot": "true"}
        stats = await self._json("GET", f"{_path(container)}/stats", params, within)
        if not isinstance(stats, dict):
            raise EngineError("unexpected answer from container engine: stats is not an object")
        return stats

    async def restart(
        self, container: str, *, wait: float | None = None, within: float | None = None
    ) -> None:
        """``POST /containers/{id}/restart``; ``wait``: seconds the engine gives the
        container to stop before it kills it (the engine's default when None)."""
        await self._lifecycle("restart", container, wait, within)

    async def stop(
        self, container: str, *, wait: float | None = None, within: float | None = None
    ) -> None:
        """``POST /containers/{id}/stop``; a container already stopped is not an error."""
        await self._lifecycle("stop", container, wait, within)

    async def _lifecycle(
        self, verb: str, container: str, wait: float | None, within: float | None
    ) -> None:
        params = None if wait is None else {"t": str(max(0, round(wait)))}
        if within is None:
            # The engine answers only once the container has stopped (and started again).
            within = self.timeout + (10.0 if wait is None else wait)
        await self._call("POST", f"{_path(container)}/{verb}", params, within)

    async def events(
        self, filters: Mapping[str, list[str]], opened: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """``GET /events``: each event as the engine streams it, one JSON object a line,
        until the engine closes the stream (an ``EngineError`` when it breaks). Only
        connecting is bounded by the timeout: a quiet host sends nothing for hours.
        ``opened`` is called once the engine has accepted the stream."""
        session = self._open()
        params = {"filters": json.dumps(dict(filters))}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        with self._failures(self.timeout):
            async with session.get(self._base + "/events", params=params, timeout=timeout) as resp:
                if resp.status >= 300:
                    body = await self._read(resp)
                    raise EngineError(
                        _refusal(resp.status, body, "/events", self._secrets()), resp.status
                    )
                if opened is not None:
                    opened()
                while True:
                    try:
                        line = await resp.content.readline()
                    except ValueError:  # a line beyond the reader's limit: not an event of ours
                        raise EngineError("event from container engine too long") from None
                    if not line:
                        return
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except (ValueError, RecursionError):
                        raise EngineError("invalid JSON in container engine's events") from None
                    if isinstance(event, dict):
                        yield event

    # -- transport --------------------------------------------------------

    async def _json(
        self, method: str, path: str, params: dict[str, str] | None, within: float | None
    ) -> Any:
        _, body = await self._call(method, path, params, within)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            detail = _one_line(str(exc), self._secrets()) or type(exc).__name__
            raise EngineError(f"invalid JSON from container engine: {detail}") from None

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None, within: float | None
    ) -> tuple[int, bytes]:
        session = self._open()
        limit = self.timeout if within is None else within
        with self._failures(limit):
            async with session.request(
                method,
                self._base + path,
                params=params,
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as resp:
                body = await self._read(resp)
                status = resp.status
        if status >= 400 or (status >= 300 and status != 304):
            raise EngineError(_refusal(status, body, path, self._secrets()), status)
        return status, body

    @contextlib.contextmanager
    def _failures(self, limit: float) -> Iterator[None]:
        """Every transport failure as one ``EngineError``."""
        try:
            yield
        except TimeoutError:
            raise EngineError(
                f"container engine at {self.url} did not answer within {limit:.3g}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = _os_reason(exc.os_error, self._secrets())
            raise EngineError(f"cannot reach container engine at {self.url}: {reason}") from None
        except aiohttp.ClientError as exc:
            secrets = self._secrets()
            raise EngineError(
                _one_line(
                    f"container engine at {self.url}: {_client_reason(exc, secrets)}", secrets
                )
            ) from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_body
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise EngineError(f"answer from container engine larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(limit + 1 - size):
            size += len(chunk)
            if size > limit:
                resp.close()  # the rest is never read: the connection cannot be reused
                raise EngineError(f"answer from container engine larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        url = self._resolve()
        connector: aiohttp.BaseConnector
        if url.startswith("unix://"):
            connector = aiohttp.UnixConnector(url.removeprefix("unix://"), limit=CONNECTIONS)
            self._base = "http://localhost"  # the engine ignores the host; HTTP needs one
        else:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS)
            self._base = "http://" + url.removeprefix("tcp://") if url.startswith("tcp://") else url
            self._base = self._base.rstrip("/")
        self.url = url
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"vigild/{__version__}"},
        )
        return self._session

    def _resolve(self) -> str:
        if self._configured is not None:
            url = self._configured
        elif self._environ.get("DOCKER_HOST"):
            url = self._environ["DOCKER_HOST"]
        else:
            url = self._discover()
        if not url.startswith(("unix://", "tcp://", "http://", "https://")):
            # Only the scheme is shown: the rest may hold a user name or a password.
            shown = f"{url.partition('://')[0]}://..." if "://" in url else "without a scheme"
            raise EngineError(
                _one_line(
                    f"unsupported container engine URL {shown}: use unix:// or tcp://",
                    self._secrets(),
                )
            )
        return url

    def _discover(self) -> str:
        tried = []
        runtime_dir = self._environ.get("XDG_RUNTIME_DIR")
        for candidate in self._candidates:
            url = candidate
            if _XDG.search(candidate):
                if not runtime_dir:
                    tried.append(f"{candidate} (XDG_RUNTIME_DIR is not set)")
                    continue
                url = _XDG.sub(lambda _: runtime_dir, candidate)
            tried.append(url)
            if os.path.exists(url.removeprefix("unix://")):
                return url
        raise EngineError(
            "no container engine found: tried DOCKER_HOST (not set), " + ", ".join(tried)
        )


def _path(container: str) -> str:
    return "/containers/" + quote(container, safe="")


def _refusal(status: int, body: bytes, path: str, secrets: frozenset[str]) -> str:
    if status == 404 and path.startswith("/containers/") and path != "/containers/json":
        return "no such container"
    message = ""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        message = body.decode("utf-8", "replace")
    else:
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            message = document["message"]
    message = _one_line(message, secrets)
    return _one_line(
        f"container engine answered HTTP {status}" + (f": {message}" if message else ""), secrets
    )


def _os_reason(error: OSError, secrets: frozenset[str]) -> str:
    if error.errno == errno.EACCES:
        return "permission denied (is vigild's user in the docker group?)"
    return _one_line(os_text(error), secrets) or type(error).__name__


def _client_reason(exc: aiohttp.ClientError, secrets: frozenset[str]) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"incomplete answer: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad answer: {exc.message}"
    if isinstance(exc, aiohttp.ClientOSError):
        return _os_reason(exc, secrets)
    return f"{type(exc).__name__}: {exc}"


def _one_line(text: str, secrets: frozenset[str]) -> str:
    return one_line(text.strip(), _ERROR_LIMIT, secrets)
