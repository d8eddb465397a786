"""The HTTP probe against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from targets import TargetServer, TargetServerFactory

from vigild.model import Observation
from vigild.probes.base import ProbeContext, build_probe
from vigild.probes.http import HttpProbe, HttpTarget

MiB = 2**20


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_probe(
    session: aiohttp.ClientSession, url: str, probe_timeout: float = 5.0, **keys: Any
) -> HttpProbe:
    target = HttpTarget.model_validate({"name": "svc", "type": "http", "url": url, **keys})
    return HttpProbe(target, probe_timeout, ProbeContext(session))


async def probe_once(
    session: aiohttp.ClientSession, url: str, probe_timeout: float = 5.0, **keys: Any
) -> Observation:
    (obs,) = await make_probe(session, url, probe_timeout, **keys).probe(now=1000.0)
    return obs


def assert_short(error: str | None) -> None:
    assert error is not None
    assert "\n" not in error
    assert len(error) <= 200, error
    assert "Traceback" not in error


# --- status -----------------------------------------------------------------


async def test_2xx_is_up_with_latency_and_status_code(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = "fine"
    obs = await probe_once(session, target_server.url())
    assert obs.up is True
    assert obs.error is None
    assert obs.target == "svc"
    assert obs.time == 1000.0
    assert obs.metrics["up"] == 1.0
    assert obs.metrics["status_code"] == 200.0
    assert 0.0 < obs.metrics["latency_seconds"] < 5.0
    assert target_server.hits == 1
    assert target_server.last_request.path == "/health"


async def test_latency_covers_the_wait_for_the_answer(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.delay = 0.2
    obs = await probe_once(session, target_server.url())
    assert obs.up
    assert obs.metrics["latency_seconds"] >= 0.2


async def test_503_is_down_but_reports_status_and_latency(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.status = 503
    obs = await probe_once(session, target_server.url())
    assert obs.up is False
    assert obs.error == "HTTP 503 (expected 2xx)"
    assert obs.metrics["up"] == 0.0
    assert obs.metrics["status_code"] == 503.0
    assert obs.metrics["latency_seconds"] > 0.0


@pytest.mark.parametrize(
    ("served", "expect_status", "up", "error"),
    [
        (204, None, True, None),
        (299, None, True, None),
        (300, None, False, "HTTP 300 (expected 2xx)"),
        (503, [503], True, None),
        (404, [200, 404], True, None),
        (200, [201], False, "HTTP 200 (expected 201)"),
        (500, [200, 204], False, "HTTP 500 (expected 200, 204)"),
    ],
)
async def test_expect_status(
    session: aiohttp.ClientSession,
    target_server: TargetServer,
    *,
    served: int,
    expect_status: list[int] | None,
    up: bool,
    error: str | None,
) -> None:
    target_server.status = served
    target_server.body = ""
    keys: dict[str, Any] = {} if expect_status is None else {"expect_status": expect_status}
    obs = await probe_once(session, target_server.url(), **keys)
    assert obs.up is up
    assert obs.error == error
    assert obs.metrics["status_code"] == float(served)


# --- health body --------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "level"),
    [
        ({"status": "ok"}, 0),
        ({"status": "pass"}, 0),
        ({"status": "HEALTHY"}, 0),
        ({"status": "Up"}, 0),
        ({"status": "green"}, 0),
        ({"status": "warn"}, 1),
        ({"status": "Warning"}, 1),
        ({"status": "DEGRADED"}, 1),
        ({"status": "yellow"}, 1),
        ({"status": " ok "}, 0),
        # nested services, worst wins
        ({"status": "ok", "services": {"db": {"status": "ok"}, "q": {"status": "warn"}}}, 1),
        ({"status": "degraded", "services": {"db": {"status": "ok"}}}, 1),
        ({"services": [{"name": "db", "status": "up"}, {"status": "YELLOW"}]}, 1),
        # checks: name -> object, name -> word, list of objects, health+json lists
        ({"status": "ok", "checks": {"db": {"status": "pass"}, "cache": {"status": "warn"}}}, 1),
        ({"checks": {"db": "UP", "queue": "Yellow"}}, 1),
        ({"checks": [{"status": "green"}, {"status": "warning"}]}, 1),
        ({"status": "pass", "checks": {"db:responseTime": [{"status": "warn"}]}}, 1),
        # entries without a status, and other keys, are ignored
        ({"status": "ok", "services": {"db": {"latency": 3}}, "checks": {"n": 5}}, 0),
    ],
)
async def test_health_up_levels(
    session: aiohttp.ClientSession, target_server: TargetServer, document: Any, level: int
) -> None:
    target_server.body = document
    obs = await probe_once(session, target_server.url())
    assert obs.up is True, obs.error
    assert obs.metrics["health_status"] == float(level)
    assert obs.missing == frozenset()


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"status": "down"}, "unhealthy: status 'down'"),
        ({"status": "FAIL"}, "unhealthy: status 'FAIL'"),
        ({"status": "starting"}, "unhealthy: status 'starting'"),
        ({"status": True}, "unhealthy: status 'true'"),
        (
            {"status": "ok", "services": {"db": {"status": "ok"}, "cache": {"status": "down"}}},
            "unhealthy: services.cache status 'down'",
        ),
        (
            {"status": "pass", "services": [{"name": "db", "status": "fail"}]},
            "unhealthy: services.db status 'fail'",
        ),
        ({"services": [{"status": "red"}]}, "unhealthy: services.0 status 'red'"),
        (
            {"status": "warn", "checks": {"disk": "critical", "db": "ok"}},
            "unhealthy: checks.disk status 'critical'",
        ),
        (
            {"checks": {"db": {"status": "unhealthy"}}},
            "unhealthy: checks.db status 'unhealthy'",
        ),
        ({"checks": [{"status": "ok"}, {"status": "error"}]}, "unhealthy: checks.1 status 'error'"),
        (
            {"status": "pass", "checks": {"api:latency": [{"status": "pass"}, {"status": "fail"}]}},
            "unhealthy: checks.api:latency status 'fail'",
        ),
    ],
)
async def test_unhealthy_is_down_and_names_the_status(
    session: aiohttp.ClientSession, target_server: TargetServer, document: Any, error: str
) -> None:
    target_server.body = document
    obs = await probe_once(session, target_server.url())
    assert obs.up is False
    assert obs.error == error
    assert obs.metrics["health_status"] == 2.0
    assert obs.metrics["status_code"] == 200.0


async def test_health_json_plus_content_type(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b'["not", "an", "object"]'
    target_server.content_type = "application/health+json"
    obs = await probe_once(session, target_server.url())
    assert obs.up is True
    assert "health_status" not in obs.metrics
    assert obs.missing == frozenset({"health_status"})


async def test_body_starting_with_brace_is_json_whatever_the_content_type(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = ' \n {"status": "degraded"}'
    target_server.content_type = "text/plain"
    obs = await probe_once(session, target_server.url())
    assert obs.up is True
    assert obs.metrics["health_status"] == 1.0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("OK", "text/plain"),
        ("<html><body>status: down</body></html>", "text/html"),
        ('["status", "down"]', "text/plain"),  # not an object, not declared JSON
        ("", "text/plain"),
    ],
)
async def test_non_json_2xx_body_is_up_without_health(
    session: aiohttp.ClientSession, target_server: TargetServer, body: str, content_type: str
) -> None:
    target_server.body = body
    target_server.content_type = content_type
    obs = await probe_once(session, target_server.url())
    assert obs.up is True
    assert obs.error is None
    assert "health_status" not in obs.metrics
    assert obs.missing == frozenset()


@pytest.mark.parametrize(
    "body",
    [
        '{"version": "1.2.3"}',
        "{}",
        '{"status": null}',
        '{"services": {"db": {"latency": 1}}, "checks": []}',
        '["a", "list"]',
        '"a string"',
        "42",
    ],
)
async def test_json_without_status_is_missing_health(
    session: aiohttp.ClientSession, target_server: TargetServer, body: str
) -> None:
    target_server.body = body
    target_server.content_type = "application/json"
    obs = await probe_once(session, target_server.url())
    assert obs.up is True
    assert obs.error is None
    assert "health_status" not in obs.metrics
    assert obs.missing == frozenset({"health_status"})


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"status": "ok"', "application/json"),
        ("not json at all", "application/json"),
        ("{oops}", "text/plain"),
        (b'{"status": "\xff\xfe"}', "application/json"),
        ("[" * 100_000 + "]" * 100_000, "application/json"),
    ],
)
async def test_invalid_json_is_down(
    session: aiohttp.ClientSession,
    target_server: TargetServer,
    body: str | bytes,
    content_type: str,
) -> None:
    target_server.body = body
    target_server.content_type = content_type
    obs = await probe_once(session, target_server.url())
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("invalid JSON body: ")
    assert_short(obs.error)
    assert obs.metrics["status_code"] == 200.0


# --- body size ----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_max_body_is_down(
    session: aiohttp.ClientSession, target_server: TargetServer, chunked: bool
) -> None:
    target_server.body = b"x" * (5 * MiB)
    target_server.chunked = chunked
    obs = await probe_once(session, target_server.url())
    assert obs.up is False
    assert obs.error == "body larger than 1048576 bytes"
    assert obs.metrics["status_code"] == 200.0
    assert "latency_seconds" not in obs.metrics


async def test_endless_body_stops_at_the_cap(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b"y" * 65536
    target_server.endless = True
    started = time.perf_counter()
    obs = await asyncio.wait_for(probe_once(session, target_server.url(), probe_timeout=30.0), 10.0)
    assert obs.up is False
    assert obs.error == "body larger than 1048576 bytes"
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("chunked", [False, True])
async def test_max_body_boundary(
    session: aiohttp.ClientSession, target_server: TargetServer, chunked: bool
) -> None:
    target_server.chunked = chunked
    target_server.body = "a" * 1000
    assert (await probe_once(session, target_server.url(), max_body=1000)).up
    target_server.body = "a" * 1001
    obs = await probe_once(session, target_server.url(), max_body=1000)
    assert obs.up is False
    assert obs.error == "body larger than 1000 bytes"


async def test_session_still_works_after_an_oversized_body(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b"z" * 65536
    target_server.endless = True
    probe = make_probe(session, target_server.url(), max_body="64KiB")
    assert (await probe.probe(1.0))[0].error == "body larger than 65536 bytes"
    target_server.endless = False
    target_server.body = {"status": "ok"}
    (obs,) = await probe.probe(2.0)
    assert obs.up is True
    assert obs.metrics["health_status"] == 0.0


# --- failures of the exchange ---------------------------------------------------


async def test_timeout_is_down(session: aiohttp.ClientSession, target_server: TargetServer) -> None:
    target_server.delay = 3.0
    started = time.perf_counter()
    obs = await probe_once(session, target_server.url(), probe_timeout=0.3)
    elapsed = time.perf_counter() - started
    assert obs.up is False
    assert obs.error == "timeout after 0.3s"
    assert 0.25 < elapsed < 2.0


async def test_timeout_while_reading_a_slow_body(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    # Headers come at once, the body never ends: the total timeout must still hold.
    target_server.body = b"."
    target_server.endless = True
    obs = await probe_once(session, target_server.url(), probe_timeout=0.3, max_body="1GiB")
    assert obs.up is False
    assert obs.error == "timeout after 0.3s"
    assert obs.metrics["status_code"] == 200.0


async def test_connection_refused(session: aiohttp.ClientSession, closed_url: str) -> None:
    obs = await probe_once(session, closed_url)
    assert obs.up is False
    assert obs.error == "connection refused"
    assert "status_code" not in obs.metrics


def test_an_invalid_url_never_reaches_the_probe() -> None:
    # Refused when the config is read (``check-config`` says so), not found at 3 a.m.
    with pytest.raises(ValidationError, match="url is not a valid URL"):
        HttpTarget.model_validate({"name": "svc", "type": "http", "url": "http://[::1"})


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A TCP server that reads the request, writes ``answer`` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/health"


async def test_server_disconnect(session: aiohttp.ClientSession) -> None:
    server, url = await _raw_server(b"")
    async with server:
        obs = await probe_once(session, url)
    assert obs.up is False
    assert obs.error == "server disconnected"


async def test_truncated_body(session: aiohttp.ClientSession) -> None:
    server, url = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    async with server:
        obs = await probe_once(session, url)
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("incomplete body")
    assert_short(obs.error)


async def test_garbage_answer(session: aiohttp.ClientSession) -> None:
    server, url = await _raw_server(b"SSH-2.0-OpenSSH_9.6\r\n" + b"x" * 5000 + b"\r\n\r\n")
    async with server:
        obs = await probe_once(session, url)
    assert obs.up is False
    assert_short(obs.error)


# --- TLS --------------------------------------------------------------------------


async def test_untrusted_certificate_is_down_with_tls_error(
    session: aiohttp.ClientSession, tls_target_server: TargetServer
) -> None:
    obs = await probe_once(session, tls_target_server.url())
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("TLS error: certificate verify failed")
    assert_short(obs.error)
    assert tls_target_server.hits == 0


async def test_tls_verify_false_accepts_the_certificate(
    session: aiohttp.ClientSession, tls_target_server: TargetServer
) -> None:
    obs = await probe_once(session, tls_target_server.url(), tls_verify=False)
    assert obs.up is True, obs.error
    assert obs.metrics["health_status"] == 0.0
    assert tls_target_server.hits == 1


async def test_https_reports_days_until_the_certificate_expires(
    session: aiohttp.ClientSession, target_server_factory: TargetServerFactory
) -> None:
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10, hours=12)
    server = target_server_factory(tls=True, not_after=expires)
    probe = make_probe(session, server.url(), tls_verify=False)
    for _ in range(2):  # the second answer comes over a kept-alive connection
        (obs,) = await probe.probe(1.0)
        assert obs.up is True, obs.error
        assert obs.metrics["cert_expiry_days"] == pytest.approx(10.5, abs=0.01)
    assert server.hits == 2


async def test_an_expired_certificate_is_a_negative_day_count_when_not_verified(
    session: aiohttp.ClientSession, target_server_factory: TargetServerFactory
) -> None:
    expired = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    server = target_server_factory(tls=True, not_after=expired)
    obs = await probe_once(session, server.url(), tls_verify=False)
    assert obs.metrics["cert_expiry_days"] == pytest.approx(-3, abs=0.01)
    verified = await probe_once(session, server.url())
    assert verified.up is False and verified.error is not None
    assert "certificate verify failed" in verified.error


async def test_plain_http_reports_no_certificate(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    obs = await probe_once(session, target_server.url())
    assert "cert_expiry_days" not in obs.metrics


async def test_plain_http_to_a_tls_port_is_a_short_error(
    session: aiohttp.ClientSession, tls_target_server: TargetServer
) -> None:
    obs = await probe_once(session, tls_target_server.url().replace("https", "http", 1))
    assert obs.up is False
    assert_short(obs.error)


async def test_https_to_a_plain_port_is_a_tls_error(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    obs = await probe_once(session, target_server.url().replace("http", "https", 1))
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("TLS error: ")
    assert_short(obs.error)


# --- redirects ----------------------------------------------------------------------


async def test_redirect_followed(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    old = target_server.route("/old", status=302, headers={"Location": "/health"}, body="")
    obs = await probe_once(session, target_server.url("/old"))
    assert obs.up is True
    assert obs.metrics["status_code"] == 200.0
    assert obs.metrics["health_status"] == 0.0
    assert old.hits == 1
    assert target_server.hits == 2


async def test_redirect_not_followed(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.route("/old", status=302, headers={"Location": "/health"}, body="")
    obs = await probe_once(session, target_server.url("/old"), follow_redirects=False)
    assert obs.up is False
    assert obs.error == "HTTP 302 (expected 2xx)"
    assert obs.metrics["status_code"] == 302.0
    assert target_server.hits == 1


async def test_redirect_not_followed_but_expected(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.route("/old", status=301, headers={"Location": "/health"}, body="")
    obs = await probe_once(
        session, target_server.url("/old"), follow_redirects=False, expect_status=[301]
    )
    assert obs.up is True


async def test_redirect_loop(session: aiohttp.ClientSession, target_server: TargetServer) -> None:
    loop = target_server.route("/loop", status=302, headers={"Location": "/loop"}, body="")
    obs = await probe_once(session, target_server.url("/loop"))
    assert obs.up is False
    assert obs.error == "too many redirects"
    assert loop.hits > 1


# --- the request itself ------------------------------------------------------------


async def test_method_headers_and_body_reach_the_server(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    obs = await probe_once(
        session,
        target_server.url("/api/ping?x=1"),
        method="post",
        headers={"X-Token": "abc", "Accept": "application/json"},
        body='{"ping": true}',
    )
    assert obs.up is True
    seen = target_server.last_request
    assert seen.method == "POST"
    assert seen.path == "/api/ping"
    assert seen.query_string == "x=1"
    assert seen.headers["X-Token"] == "abc"
    assert seen.headers["Accept"] == "application/json"
    assert seen.body == b'{"ping": true}'


async def test_get_sends_no_body(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    await probe_once(session, target_server.url())
    assert target_server.last_request.method == "GET"
    assert target_server.last_request.body == b""


async def test_head_request(session: aiohttp.ClientSession, target_server: TargetServer) -> None:
    obs = await probe_once(session, target_server.url(), method="HEAD")
    assert obs.up is True, obs.error
    assert target_server.last_request.method == "HEAD"
    assert "health_status" not in obs.metrics
    assert obs.missing == frozenset()


async def test_head_of_a_large_resource_is_not_too_large(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b"x" * (5 * MiB)
    obs = await probe_once(session, target_server.url(), method="HEAD")
    assert obs.up is True, obs.error


async def test_empty_json_body_is_up_without_health(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b""
    target_server.content_type = "application/json"
    obs = await probe_once(session, target_server.url())
    assert obs.up is True, obs.error
    assert "health_status" not in obs.metrics
    assert obs.missing == frozenset()


async def test_probe_is_reusable_and_follows_the_server(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    probe = make_probe(session, target_server.url())
    states = []
    answers: list[tuple[int, str | dict[str, Any]]] = [
        (200, {"status": "ok"}),
        (503, "x"),
        (200, {"status": "degraded"}),
    ]
    for status, body in answers:
        target_server.status, target_server.body = status, body
        (obs,) = await probe.probe(time.time())
        states.append((obs.up, obs.metrics.get("health_status")))
    assert states == [(True, 0.0), (False, None), (True, 1.0)]
    assert target_server.hits == 3


async def test_build_probe_and_observe(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target = HttpTarget.model_validate({"name": "built", "url": target_server.url()})
    probe = build_probe(target, ProbeContext(session), 2.0)
    assert isinstance(probe, HttpProbe)
    (obs,) = await probe.observe(5.0)
    assert obs.up is True
    assert obs.target == "built"
    assert 0.0 < obs.duration < 2.0


async def test_concurrent_probes_share_the_session(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.delay = 0.2
    probes = [make_probe(session, target_server.url(f"/t{i}")) for i in range(20)]
    started = time.perf_counter()
    results = await asyncio.gather(*(p.probe(1.0) for p in probes))
    assert all(obs.up for (obs,) in results)
    assert time.perf_counter() - started < 2.0  # concurrent, not 20 times 0.2 s
    assert target_server.hits == 20


async def test_a_probe_keeps_no_dict_of_its_own(session: aiohttp.ClientSession) -> None:
    # One probe per target: at 10,000 targets a __dict__ each is megabytes.
    https = make_probe(session, "https://127.0.0.1:9/", 0.3, expect_status=[200, 204])
    plain = make_probe(session, "http://127.0.0.1:9/")
    for probe in (https, plain):
        assert not hasattr(probe, "__dict__")
    assert https._timeout is make_probe(session, "http://127.0.0.1:9/x", 0.3)._timeout
