"""TLS probe: a handshake, and the days its leaf certificate has left.

The story of a probe: connect and shake hands, sending ``server_name`` as
SNI and, with ``tls_verify``, checking the chain and that name; read the
leaf certificate's expiry from its DER bytes (there even when nothing was
verified); close the connection. ``latency_seconds`` is connect plus
handshake. A handshake that fails is the probe's error, in one short line.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Literal

from pydantic import Field

from vigild.config import TargetConfig
from vigild.fields import host_port
from vigild.model import Observation
from vigild.probes._net import client_context, describe_connect_error, handshake, ssl_text
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.certificate import days_left, not_after
from vigild.redaction import one_line

__all__ = ["TlsProbe"]

_NO_EXPIRY = frozenset({"cert_expiry_days"})


class TlsTarget(TargetConfig):
    """A TLS endpoint's handshake and leaf certificate."""

    REPORTED = frozenset({"up", "latency_seconds", "cert_expiry_days"})

    type: Literal["tls"] = "tls"
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    """SNI and the name the certificate must carry; default ``host``."""
    tls_verify: bool = True

    def address(self) -> str:
        return host_port(self.host, self.port)


class TlsProbe(Probe):
    """Probes one ``type = "tls"`` target."""

    Options = TlsTarget
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
            why = {"cert_expiry_days": "the certificate's expiry date cannot be read"}
            observation = Observation(
                target.name, now, True, None, metrics, missing=_NO_EXPIRY, reasons=why
            )
            return (observation,)
        return (Observation(target.name, now, True, None, metrics),)

    def _describe(self, exc: OSError) -> str:
        """The failure in one short line, the handshake's reason first."""
        if isinstance(exc, TimeoutError):
            return self._timeout_error
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or ssl_text(exc)
            return one_line(
                f"TLS error: certificate verify failed: {reason}", MAX_ERROR, self.secrets
            )
        if isinstance(exc, ssl.SSLError):
            return one_line(f"TLS error: {ssl_text(exc)}", MAX_ERROR, self.secrets)
        if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            # Connecting does not fail this way: the server took the connection, then
            # dropped it in the middle of the handshake.
            return "TLS error: connection closed during the handshake"
        return describe_connect_error(exc, self.target.host, connected=False, secrets=self.secrets)
