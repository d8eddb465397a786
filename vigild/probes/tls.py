"""TLS probe: a handshake, and the days its leaf certificate has left.

The story of a probe: connect and shake hands, sending ``server_name`` as
SNI and, with ``tls_verify``, checking the chain and that name; read the
leaf certificate's expiry from its DER bytes (there even when nothing was
verified); close the connection. ``latency_seconds`` is connect plus
handshake. A handshake that fails is the probe's error, in one short line.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from functools import cache

from vigild.config import TlsTarget
from vigild.model import Observation
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.certificate import days_left, not_after
from vigild.probes.http import _ssl_text
from vigild.probes.tcp import close, describe_connect_error
from vigild.redaction import one_line

__all__ = ["TlsProbe", "client_context", "handshake"]

_NO_EXPIRY = frozenset({"cert_expiry_days"})


class TlsProbe(Probe):
    """Probes one ``type = "tls"`` target."""

    target: TlsTarget

    def __init__(
        self, target: TlsTarget, timeout: float, context: ProbeContext | None = None
    ) -> None:
        super().__init__(target, timeout, context)
        self._server_name = target.server_name or target.host
        self._ssl = client_context(verify=target.tls_verify)
        self._timeout_error = f"timeout after {timeout:g}s"

    async def probe(self, now: float) -> tuple[Observation]:
        target = self.target
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            der, latency = await handshake(
                target.host, target.port, self._server_name, self._ssl, deadline
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError among them
            return (Observation(target.name, now, False, self._describe(exc)),)
        metrics = {"latency_seconds": latency}
        try:
            # The wall clock, not the cycle's tick: the tick may be a while back.
            metrics["cert_expiry_days"] = days_left(not_after(der), time.time())
        except ValueError:
            # The handshake worked, so the target is up; only the expiry is unknown.
            return (Observation(target.name, now, True, None, metrics, missing=_NO_EXPIRY),)
        return (Observation(target.name, now, True, None, metrics),)

    def _describe(self, exc: OSError) -> str:
        """The failure in one short line, the handshake's reason first."""
        if isinstance(exc, TimeoutError):
            return self._timeout_error
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or _ssl_text(exc)
            return one_line(
                f"TLS error: certificate verify failed: {reason}", MAX_ERROR, self.secrets
            )
        if isinstance(exc, ssl.SSLError):
            return one_line(f"TLS error: {_ssl_text(exc)}", MAX_ERROR, self.secrets)
        if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            # Connecting does not fail this way: the server took the connection, then
            # dropped it in the middle of the handshake.
            return "TLS error: connection closed during the handshake"
        return describe_connect_error(exc, self.target.host, connected=False, secrets=self.secrets)


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
