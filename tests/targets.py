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
``tls_ca``, ``closed_url``. Helper: ``closed_port()``. For tcp and tls
targets: ``stream_server``, ``stream_server_factory`` and
``certificate_authority`` (issues certificates of any validity).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "Reply",
    "SeenRequest",
    "StreamServer",
    "StreamServerFactory",
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


# ---------------------------------------------------------------------------
# Raw TCP and TLS servers, and certificates with chosen names and dates


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its key, as files a server context loads."""

    certificate: x509.Certificate
    cert_file: Path
    key_file: Path

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class CertificateAuthority:
    """A CA made with ``cryptography``, for certificates of any validity.

    ``ca_file`` is its PEM: point ``SSL_CERT_FILE`` at it to make vigild trust it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigild test CA")])
        now = datetime.datetime.now(datetime.UTC)
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._issued = 0

    def issue(
        self,
        name: str,
        *more_names: str,
        not_after: datetime.datetime,
        not_before: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """A server certificate for host names or IP addresses; valid from 30 days before
        ``not_after`` or now, whichever is earlier, unless ``not_before`` says."""
        key = ec.generate_private_key(ec.SECP256R1())
        if not_before is None:
            earliest = min(not_after, datetime.datetime.now(datetime.UTC))
            not_before = earliest - datetime.timedelta(days=30)
        alternative: list[x509.GeneralName] = []
        for each in (name, *more_names):
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(each)))
            except ValueError:
                alternative.append(x509.DNSName(each))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self._issued += 1
        cert_file = self.directory / f"leaf{self._issued}.pem"
        key_file = self.directory / f"leaf{self._issued}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return IssuedCertificate(certificate, cert_file, key_file)


@pytest.fixture(scope="session")
def certificate_authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA of our own; trusted only where a test points ``SSL_CERT_FILE`` at ``ca_file``."""
    return CertificateAuthority(tmp_path_factory.mktemp("test-ca"))


_STREAM_CHUNK = 16 * 1024


class StreamServer:
    """A raw TCP server on 127.0.0.1 (TLS when started with a certificate).

    On each connection it sends ``banner``, then: streams ``filler`` without
    end when ``endless``, waiting ``pace`` seconds between chunks (a trickle);
    closes when ``close_after_banner``; otherwise reads until the client
    leaves, echoing when ``echo``. With no banner and no TLS it never speaks
    first: a TLS client waits forever. Change any setting at any time; the
    next connection sees it.
    """

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.banner = b""
        self.echo = False
        self.endless = False
        self.filler = b"." * _STREAM_CHUNK
        self.pace = 0.0
        self.close_after_banner = False
        self.connections = 0
        self.received = bytearray()
        self.server_names: list[str | None] = []
        """The SNI name of every TLS handshake, None when the client sent none."""
        self.streamed = 0
        """Bytes written to clients by ``endless``."""
        self._writers: set[asyncio.StreamWriter] = set()

    def record_sni(self, _ssl: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.server_names.append(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self.banner:
                writer.write(self.banner)
                await writer.drain()
            if self.endless:
                chunk = self.filler
                while True:
                    writer.write(chunk)
                    await writer.drain()  # paced by the client's reading, as a real server is
                    self.streamed += len(chunk)
                    if self.pace > 0:
                        await asyncio.sleep(self.pace)
            if self.close_after_banner:
                return
            while data := await reader.read(_STREAM_CHUNK):
                self.received += data
                if self.echo:
                    writer.write(data)
                    await writer.drain()
        except OSError:  # the client went away mid-write, as probes do
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()


class StreamServerFactory(Protocol):
    def __call__(self, *, certificate: IssuedCertificate | None = None) -> StreamServer: ...


@pytest.fixture
def stream_server_factory() -> Iterator[StreamServerFactory]:
    """Start raw TCP/TLS servers on their own loop thread; all stop at teardown."""
    loop_thread = _LoopThread()
    started: list[tuple[StreamServer, asyncio.Server]] = []

    async def start(
        server: StreamServer, sock: socket.socket, context: ssl.SSLContext | None
    ) -> asyncio.Server:
        return await asyncio.start_server(server.handle, sock=sock, ssl=context)

    def make(*, certificate: IssuedCertificate | None = None) -> StreamServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = StreamServer(sock.getsockname()[1])
        context = None
        if certificate is not None:
            context = certificate.server_context()
            context.sni_callback = server.record_sni
        started.append((server, loop_thread.run(start(server, sock, context))))
        return server

    async def stop(server: StreamServer, listener: asyncio.Server) -> None:
        listener.close()
        server.abort_all()
        await listener.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports close their sockets

    try:
        yield make
    finally:
        try:
            for server, listener in reversed(started):
                loop_thread.run(stop(server, listener))
        finally:
            loop_thread.close()


@pytest.fixture
def stream_server(stream_server_factory: StreamServerFactory) -> StreamServer:
    """A plain TCP server on 127.0.0.1 that reads and says nothing until told to."""
    return stream_server_factory()
