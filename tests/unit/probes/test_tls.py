"""The TLS probe against real TLS servers on 127.0.0.1, with certificates made here."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
import time
from datetime import UTC
from typing import Any

import pytest
from process import until
from targets import (
    CertificateAuthority,
    IssuedCertificate,
    StreamServer,
    StreamServerFactory,
    TargetServer,
    closed_port,
)

from vigild.model import Observation
from vigild.probes.base import build_probe
from vigild.probes.tls import TlsProbe, TlsTarget

DAY = datetime.timedelta(days=1)


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, certificate_authority: CertificateAuthority) -> None:
    """Probes built after this trust ``certificate_authority`` (as an operator's private CA)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate_authority.ca_file))


def issue(ca: CertificateAuthority, *names: str, days: float) -> IssuedCertificate:
    return ca.issue(*names, not_after=datetime.datetime.now(UTC) + days * DAY)


def make_probe(port: int, probe_timeout: float = 5.0, **keys: Any) -> TlsProbe:
    target = TlsTarget.model_validate(
        {"name": "site", "type": "tls", "host": "127.0.0.1", "port": port, **keys}
    )
    return TlsProbe(target, probe_timeout)


async def probe_once(port: int, probe_timeout: float = 5.0, **keys: Any) -> Observation:
    (obs,) = await make_probe(port, probe_timeout, **keys).probe(now=1000.0)
    return obs


def expiry_days(certificate: IssuedCertificate) -> float:
    return (certificate.certificate.not_valid_after_utc.timestamp() - time.time()) / 86400


# --- a good handshake -------------------------------------------------------------


@pytest.mark.usefixtures("trusted")
async def test_verified_handshake_reports_days_left_and_latency(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    certificate = issue(certificate_authority, "svc.test", days=10)
    server = stream_server_factory(certificate=certificate)
    obs = await probe_once(server.port, server_name="svc.test")
    assert obs.up is True
    assert obs.error is None
    assert obs.target == "site"
    assert obs.time == 1000.0
    assert set(obs.metrics) == {"up", "latency_seconds", "cert_expiry_days"}
    assert obs.metrics["cert_expiry_days"] == pytest.approx(10.0, abs=0.001)
    assert obs.metrics["cert_expiry_days"] == pytest.approx(expiry_days(certificate), abs=0.0001)
    assert 0.0 < obs.metrics["latency_seconds"] < 1.0


@pytest.mark.usefixtures("trusted")
async def test_server_name_is_sent_as_sni(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "svc.test", days=30))
    obs = await probe_once(server.port, server_name="svc.test")
    assert obs.up is True
    assert server.server_names == ["svc.test"]


@pytest.mark.usefixtures("trusted")
async def test_host_is_the_server_name_by_default(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "localhost", days=30))
    target = TlsTarget.model_validate(
        {"name": "site", "type": "tls", "host": "localhost", "port": server.port}
    )
    (obs,) = await TlsProbe(target, 5.0).probe(now=1.0)
    assert obs.up is True, obs.error
    assert server.server_names == ["localhost"]


@pytest.mark.usefixtures("trusted")
async def test_the_connection_ends_with_close_notify(
    certificate_authority: CertificateAuthority,
) -> None:
    # A blocking server that refuses to take a bare end of stream for a goodbye.
    context = issue(certificate_authority, "svc.test", days=30).server_context()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)
    ending: list[str] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True, suppress_ragged_eofs=False) as tls:
            try:
                ending.append("close_notify" if tls.recv(1024) == b"" else "data")
            except ssl.SSLError as exc:
                ending.append(f"no close_notify: {exc}")

    server = threading.Thread(target=serve)
    server.start()
    try:
        obs = await probe_once(listener.getsockname()[1], server_name="svc.test")
    finally:
        await asyncio.to_thread(server.join, 5.0)
        listener.close()
    assert obs.up is True
    assert ending == ["close_notify"]


# --- verification ------------------------------------------------------------------


@pytest.mark.usefixtures("trusted")
async def test_expired_certificate_is_down_with_the_verify_reason(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "svc.test", days=-3))
    obs = await probe_once(server.port, server_name="svc.test")
    assert obs.up is False
    assert obs.error == "TLS error: certificate verify failed: certificate has expired"
    assert obs.metrics == {"up": 0.0}


@pytest.mark.usefixtures("trusted")
async def test_without_verification_an_expired_certificate_shows_negative_days(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "svc.test", days=-3))
    obs = await probe_once(server.port, server_name="svc.test", tls_verify=False)
    assert obs.up is True
    assert obs.metrics["cert_expiry_days"] == pytest.approx(-3.0, abs=0.001)
    assert server.server_names == ["svc.test"]  # SNI is sent whether or not we verify


@pytest.mark.usefixtures("trusted")
async def test_a_name_the_certificate_does_not_carry_is_down(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "svc.test", days=30))
    obs = await probe_once(server.port, server_name="other.test")
    assert obs.up is False
    assert obs.error == (
        "TLS error: certificate verify failed: "
        "Hostname mismatch, certificate is not valid for 'other.test'."
    )


async def test_an_unknown_issuer_is_down(tls_target_server: TargetServer) -> None:
    # trustme's CA, which nothing here trusts (an aiohttp server, as the http tests use).
    obs = await probe_once(tls_target_server.port)
    assert obs.up is False
    assert obs.error == (
        "TLS error: certificate verify failed: unable to get local issuer certificate"
    )


async def test_an_unknown_issuer_is_fine_without_verification(
    tls_target_server: TargetServer,
) -> None:
    obs = await probe_once(tls_target_server.port, tls_verify=False)
    assert obs.up is True
    assert obs.metrics["cert_expiry_days"] > 30


# --- failures before or during the handshake --------------------------------------------


async def test_refused_port_is_down() -> None:
    obs = await probe_once(closed_port())
    assert obs.up is False
    assert obs.error == "connection refused"


async def test_a_handshake_that_never_completes_times_out(stream_server: StreamServer) -> None:
    # A plain TCP server that never answers the ClientHello.
    started = time.perf_counter()
    obs = await probe_once(stream_server.port, probe_timeout=0.2)
    assert 0.2 <= time.perf_counter() - started < 1.0
    assert obs.up is False
    assert obs.error == "timeout after 0.2s"
    await until(lambda: stream_server.connections == 1, within=2.0, what="the connection")


async def test_a_server_that_hangs_up_on_the_handshake(stream_server: StreamServer) -> None:
    stream_server.close_after_banner = True  # and no banner: it closes at once
    obs = await probe_once(stream_server.port)
    assert obs.up is False
    assert obs.error == "TLS error: connection closed during the handshake"


async def test_a_server_that_does_not_speak_tls_is_a_tls_error(
    stream_server: StreamServer,
) -> None:
    stream_server.banner = b"SSH-2.0-OpenSSH_9.6\r\n"
    obs = await probe_once(stream_server.port)
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("TLS error: ")
    assert "_ssl.c" not in obs.error
    assert "\n" not in obs.error


# --- wiring ---------------------------------------------------------------------------


def test_probes_share_one_context_per_trust_setting(
    monkeypatch: pytest.MonkeyPatch, certificate_authority: CertificateAuthority
) -> None:
    # A context holds a parsed copy of the trust store: 10,000 targets must not hold 10,000.
    verifying, other, lax = make_probe(1), make_probe(2), make_probe(3, tls_verify=False)
    assert verifying._ssl is other._ssl
    assert verifying._ssl is not lax._ssl
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate_authority.ca_file))
    assert make_probe(4)._ssl is not verifying._ssl


@pytest.mark.usefixtures("trusted")
async def test_build_probe_makes_a_tls_probe(
    certificate_authority: CertificateAuthority, stream_server_factory: StreamServerFactory
) -> None:
    server = stream_server_factory(certificate=issue(certificate_authority, "svc.test", days=30))
    target = TlsTarget.model_validate(
        {
            "name": "cert",
            "type": "tls",
            "host": "127.0.0.1",
            "port": server.port,
            "server_name": "svc.test",
        }
    )
    probe = build_probe(target, None, 3.0)  # type: ignore[arg-type]  # a tls probe needs no context
    assert isinstance(probe, TlsProbe)
    (obs,) = await probe.observe(now=7.0)
    assert obs.target == "cert"
    assert obs.up is True
    assert obs.metrics["cert_expiry_days"] == pytest.approx(30.0, abs=0.001)
