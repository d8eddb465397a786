"""A real, controllable HTTP(S) target server on 127.0.0.1, for any test.

The server runs its own event loop in a background thread, so it answers
while the test blocks: sync tests, async tests, tests that call
``asyncio.run`` themselves and tests that run ``vigild`` in a subprocess can
all use it. Its settings are plain attributes; change them at any time and
the next request sees them::

    def test_down(target_server):
        target_server.status = 503
        target_server.body = {"status": "down"}
        url = target_server.url()          # http://127.0.0.1:PORT/health

Fixtures: ``target_server``, ``tls_target_server``, ``target_server_factory``,
``tls_ca``, ``closed_url``. Helper: ``closed_port()``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import trustme
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "Reply",
    "SeenRequest",
    "TargetServer",
    "TargetServerFactory",
    "closed_port",
]

T = TypeVar("T")

_CHUNK = 64 * 1024
# Cleanup cancels handlers still running after this (a long `delay`, an endless stream).
_SHUTDOWN_TIMEOUT = 0.2
_THREAD_TIMEOUT = 10.0


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused), or a free one to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Reply:
    """How the server answers; change any field at any time.

    ``body``: bytes or str as is, dict or list as JSON. ``content_type`` None
    means application/json for dict/list, text/plain otherwise. ``chunked``
    sends the body without Content-Length; ``endless`` streams chunks until
    the client goes away. ``delay`` waits before answering.
    """

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = field(default_factory=lambda: {"status": "ok"})
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False
    endless: bool = False
    hits: int = 0

    def encoded(self) -> tuple[bytes, str]:
        body = self.body
        if isinstance(body, dict | list):
            return json.dumps(body).encode(), self.content_type or "application/json"
        data = body.encode() if isinstance(body, str) else body
        return data, self.content_type or "text/plain; charset=utf-8"


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    body: bytes


class TargetServer(Reply):
    """A running server. Its own fields are the default reply for every path.

    ``route(path, ...)`` gives one path its own ``Reply`` (for redirects, or
    several targets on one server). ``hits`` counts every request the server
    received, ``requests`` records them in order.
    """

    def __init__(self, scheme: str, port: int, ca: trustme.CA | None = None) -> None:
        super().__init__()
        self.scheme = scheme
        self.host = "127.0.0.1"
        self.port = port
        self.ca = ca
        self.ca_file: Path | None = None
        """PEM of the CA that signed a TLS server's certificate (for SSL_CERT_FILE)."""
        self.routes: dict[str, Reply] = {}
        self.requests: list[SeenRequest] = []

    def url(self, path: str = "/health") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def route(self, path: str, **settings: Any) -> Reply:
        reply = Reply(**settings)
        self.routes[path] = reply
        return reply

    @property
    def last_request(self) -> SeenRequest:
        return self.requests[-1]

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA (TLS servers only)."""
        if self.ca is None:
            raise RuntimeError(f"{self.url('')} does not serve TLS")
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    async def handle(self, request: web.Request) -> web.StreamResponse:
        reply = self.routes.get(request.path, self)
        self.hits += 1
        if reply is not self:
            reply.hits += 1
        received = await request.read()
        self.requests.append(
            SeenRequest(
                request.method,
                request.path,
                request.query_string,
                CIMultiDictProxy(CIMultiDict(request.headers)),
                received,
            )
        )
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        body, content_type = reply.encoded()
        headers = {"Content-Type": content_type, **reply.headers}
        if not (reply.chunked or reply.endless):
            return web.Response(status=reply.status, body=body, headers=headers)
        response = web.StreamResponse(status=reply.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:
            for start in range(0, len(body), _CHUNK):
                await response.write(body[start : start + _CHUNK])
                # Yield so the client side (possibly on this loop in other tests) can run.
                await asyncio.sleep(0)
            if not reply.endless or not body:
                break
        await response.write_eof()
        return response


class _LoopThread:
    """An event loop in a daemon thread; coroutines are run on it from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="target-server", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(_THREAD_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(_THREAD_TIMEOUT)
        self.loop.close()


class TargetServerFactory(Protocol):
    def __call__(
        self, *, tls: bool = False, not_after: datetime.datetime | None = None
    ) -> TargetServer: ...


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A CA that no default trust store knows: its certificates fail verification."""
    return trustme.CA()


@pytest.fixture
def target_server_factory(
    tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TargetServerFactory]:
    """Start as many servers as a test needs; all stop at teardown.

    ``tls=True`` serves HTTPS for 127.0.0.1/localhost with a certificate from
    ``tls_ca``; ``not_after`` sets its expiry.
    """
    loop_thread = _LoopThread()
    runners: list[web.AppRunner] = []

    async def start(
        server: TargetServer, sock: socket.socket, context: ssl.SSLContext | None
    ) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        # handler_cancellation: a client that gives up (timeout) ends a delayed handler.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        runners.append(runner)
        await web.SockSite(runner, sock, ssl_context=context).start()

    def make(*, tls: bool = False, not_after: datetime.datetime | None = None) -> TargetServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        context: ssl.SSLContext | None = None
        server = TargetServer("https" if tls else "http", port, tls_ca if tls else None)
        if tls:
            cert = tls_ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            server.ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
            tls_ca.cert_pem.write_to_path(str(server.ca_file))
        loop_thread.run(start(server, sock, context))
        return server

    async def stop(runner: web.AppRunner) -> None:
        # Drop open connections as a dying server would. A graceful TLS close waits
        # for the client's close_notify, which never comes while the test's own
        # loop sits blocked in this teardown: the socket would leak.
        if runner.server is not None:
            for connection in runner.server.connections:
                if connection.transport is not None:
                    connection.transport.abort()
        await runner.cleanup()
        await asyncio.sleep(0)  # let the aborted transports close their sockets

    try:
        yield make
    finally:
        try:
            for runner in reversed(runners):
                loop_thread.run(stop(runner))
        finally:
            loop_thread.close()


@pytest.fixture
def target_server(target_server_factory: TargetServerFactory) -> TargetServer:
    """A plain HTTP server on 127.0.0.1 answering 200 ``{"status": "ok"}`` on every path."""
    return target_server_factory()


@pytest.fixture
def tls_target_server(target_server_factory: TargetServerFactory) -> TargetServer:
    """An HTTPS server whose certificate is signed by the untrusted ``tls_ca``."""
    return target_server_factory(tls=True)


@pytest.fixture
def closed_url() -> str:
    """An http URL on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{closed_port()}/health"
