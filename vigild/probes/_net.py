"""What the network probes share: reading a bounded body, closing a stream inside
the deadline, a TLS handshake and its client contexts, and one short line for each
way a connection fails.

The probes import this module, never each other; the daemon's heartbeat uses the
same error wording for its own pings.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import ssl
import time
from functools import cache

import aiohttp

from vigild.probes.base import MAX_ERROR
from vigild.redaction import one_line
from vigild.wording import os_text

__all__ = [
    "client_context",
    "close",
    "describe_client_error",
    "describe_connect_error",
    "handshake",
    "read_body",
    "ssl_text",
]


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


async def close(writer: asyncio.StreamWriter, deadline: float) -> None:
    """Closes the connection, waiting for it to go until ``deadline`` (loop time).

    Closing a TLS stream waits for the peer's close_notify; a peer that never
    sends it, or a stream still pouring in, is dropped at the deadline so the
    probe stays inside its timeout and leaves no socket behind.
    """
    writer.close()
    try:
        async with asyncio.timeout_at(deadline):
            await writer.wait_closed()
    except (TimeoutError, OSError):  # OSError: a reset on a connection we are done with
        writer.transport.abort()


async def handshake(
    host: str, port: int, server_name: str, context: ssl.SSLContext, deadline: float
) -> tuple[bytes, float]:
    """Connect and shake hands (SNI ``server_name``), then close: the leaf certificate's
    DER bytes, and how long connect plus handshake took. Failures raise OSError."""
    writer: asyncio.StreamWriter | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            _, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=server_name
            )
        latency = time.perf_counter() - started
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) or b"", latency
    finally:
        if writer is not None:
            await close(writer, deadline)


def client_context(*, verify: bool) -> ssl.SSLContext:
    """The client context for ``tls_verify``, shared by every tls target.

    A context holds its own parsed copy of the trust store (close to 1 MB and
    tens of ms each), so 10,000 targets share two. The store is read once, from
    the system or from ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set (a private CA).
    """
    if not verify:
        return _context(verify=False, cafile=None, capath=None)
    env = os.environ
    return _context(verify=True, cafile=env.get("SSL_CERT_FILE"), capath=env.get("SSL_CERT_DIR"))


@cache
def _context(*, verify: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    # The trust store paths are part of the key so that a changed SSL_CERT_FILE gets
    # its own context; ``create_default_context`` reads them from the environment.
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def describe_connect_error(
    exc: OSError, host: str, *, connected: bool, secrets: frozenset[str] = frozenset()
) -> str:
    """One short line for a failed connection: refused, unresolvable, reset."""
    if isinstance(exc, socket.gaierror):
        return one_line(f"DNS lookup failed for {host}: {os_text(exc)}", MAX_ERROR, secrets)
    code = exc.errno if exc.errno is not None else _shared_errno(str(exc))
    if code == errno.ECONNREFUSED:
        return "connection refused"
    text = os_text(exc, errno_found=code)
    return one_line(
        f"{'connection error' if connected else 'cannot connect'}: {text}", MAX_ERROR, secrets
    )


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


def _shared_errno(text: str) -> int | None:
    """The errno of asyncio's "Multiple exceptions: [Errno 111] ..., [Errno 111] ..."
    (a name with an IPv6 and an IPv4 address, both failing), when every attempt
    failed the same way; None when they differ."""
    codes = set(_ERRNO_IN_TEXT.findall(text))
    return int(codes.pop()) if len(codes) == 1 else None


def describe_client_error(exc: aiohttp.ClientError, secrets: frozenset[str] = frozenset()) -> str:
    """One short line for an operator; aiohttp's own messages repeat host and port."""

    def line(text: str) -> str:
        return one_line(text, MAX_ERROR, secrets)

    # Most specific first: the certificate error is also an SSL and a connector error.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or ssl_text(cert_error)
        return line(f"TLS error: certificate verify failed: {detail}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return line(f"TLS error: {ssl_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return line(f"DNS lookup failed for {exc.host}: {os_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection refused"
        return line(f"cannot connect: {os_text(exc.os_error)}")
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
        return line(f"connection error: {os_text(exc)}")
    return line(f"{type(exc).__name__}: {exc}")


_SSL_NOISE = re.compile(r"^\[SSL(?:: \w+)?\] | \(_ssl\.c:\d+\)$")


def ssl_text(error: BaseException) -> str:
    """Drops the "[SSL: CODE] " prefix and " (_ssl.c:NNN)" suffix around the reason."""
    return _SSL_NOISE.sub("", str(error)) or type(error).__name__
