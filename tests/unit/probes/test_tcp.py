"""The TCP probe against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
import tracemalloc
from typing import Any

import aiohttp
from process import until
from targets import StreamServer, closed_port

from vigild.model import Observation
from vigild.probes._net import describe_connect_error
from vigild.probes.base import ProbeContext, build_probe
from vigild.probes.tcp import READ_LIMIT, TcpProbe, TcpTarget, read_until


def make_probe(port: int, probe_timeout: float = 5.0, **keys: Any) -> TcpProbe:
    target = TcpTarget.model_validate(
        {"name": "port", "type": "tcp", "host": "127.0.0.1", "port": port, **keys}
    )
    return TcpProbe(target, probe_timeout)


async def probe_once(port: int, probe_timeout: float = 5.0, **keys: Any) -> Observation:
    (obs,) = await make_probe(port, probe_timeout, **keys).probe(now=1000.0)
    return obs


async def test_an_open_port_is_up_with_latency(stream_server: StreamServer) -> None:
    obs = await probe_once(stream_server.port)
    assert obs.up is True
    assert obs.error is None
    assert obs.target == "port"
    assert obs.time == 1000.0
    assert set(obs.metrics) == {"up", "latency_seconds"}
    assert 0.0 < obs.metrics["latency_seconds"] < 1.0
    await until(lambda: stream_server.connections == 1, within=2.0, what="the connection")


async def test_banner_with_the_expected_text_is_up(stream_server: StreamServer) -> None:
    stream_server.banner = b"220 mail.test ESMTP ready\r\n"
    obs = await probe_once(stream_server.port, expect="ESMTP")
    assert obs.up is True
    assert obs.error is None
    assert obs.metrics["latency_seconds"] > 0.0


async def test_expected_text_split_across_reads_is_found() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"banner SS")
    asyncio.get_running_loop().call_soon(reader.feed_data, b"H-2.0 and more")
    received = bytearray()
    assert await read_until(reader, b"SSH-2.0", received) is True
    assert bytes(received) == b"banner SSH-2.0 and more"


async def test_banner_without_the_expected_text_is_down_quoting_it(
    stream_server: StreamServer,
) -> None:
    stream_server.banner = b"SSH-2.0-OpenSSH_9.6\r\n"
    stream_server.close_after_banner = True
    obs = await probe_once(stream_server.port, expect="220 ")
    assert obs.up is False
    assert obs.error == r"expected '220 ', got 'SSH-2.0-OpenSSH_9.6\r\n'"
    assert obs.metrics == {"up": 0.0}


async def test_a_long_banner_is_shortened_in_the_error(stream_server: StreamServer) -> None:
    stream_server.banner = b"\x00\x01garbage " * 50
    stream_server.close_after_banner = True
    obs = await probe_once(stream_server.port, expect="+PONG")
    assert obs.error is not None
    assert obs.error.startswith(r"expected '+PONG', got '\x00\x01garbage \x00\x01garbage")
    assert obs.error.endswith("…'")
    assert len(obs.error) < 120
    assert "\n" not in obs.error


async def test_a_server_that_closes_without_a_word(stream_server: StreamServer) -> None:
    stream_server.close_after_banner = True
    obs = await probe_once(stream_server.port, expect="+PONG")
    assert obs.up is False
    assert obs.error == "expected '+PONG', got nothing"


async def test_send_then_expect_the_answer(stream_server: StreamServer) -> None:
    stream_server.echo = True
    obs = await probe_once(stream_server.port, send="PING\r\n", expect="PING")
    assert obs.up is True
    assert bytes(stream_server.received) == b"PING\r\n"


async def test_send_alone_is_written_and_up(stream_server: StreamServer) -> None:
    obs = await probe_once(stream_server.port, send="QUIT\r\n")
    assert obs.up is True
    await until(lambda: stream_server.received == b"QUIT\r\n", within=2.0, what="QUIT")


async def test_refused_port_is_down() -> None:
    obs = await probe_once(closed_port())
    assert obs.up is False
    assert obs.error == "connection refused"
    assert obs.metrics == {"up": 0.0}


async def test_refused_on_every_address_of_a_name_is_refused() -> None:
    # "localhost" may be ::1 and 127.0.0.1: asyncio then reports both failures at once.
    target = TcpTarget.model_validate(
        {"name": "port", "type": "tcp", "host": "localhost", "port": closed_port()}
    )
    (obs,) = await TcpProbe(target, 5.0).probe(now=1.0)
    assert obs.error == "connection refused"


def test_connect_errors_read_as_one_short_line() -> None:
    unresolvable = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert (
        describe_connect_error(unresolvable, "db.test", connected=False)
        == "DNS lookup failed for db.test: Name or service not known"
    )
    both_refused = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 5)"
    )
    assert describe_connect_error(both_refused, "localhost", connected=False) == (
        "connection refused"
    )
    mixed = OSError(
        "Multiple exceptions: [Errno 101] Connect call failed ('::1', 5, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 5)"
    )
    assert describe_connect_error(mixed, "localhost", connected=False).startswith(
        "cannot connect: Multiple exceptions: [Errno 101]"
    )
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    assert (
        describe_connect_error(reset, "db.test", connected=True)
        == "connection error: connection reset by peer"
    )


async def test_silent_server_times_out_waiting_for_the_text(stream_server: StreamServer) -> None:
    started = time.perf_counter()
    obs = await probe_once(stream_server.port, probe_timeout=0.2, expect="220")
    assert 0.2 <= time.perf_counter() - started < 1.0
    assert obs.up is False
    assert obs.error == "timeout after 0.2s"


async def test_a_wrong_banner_on_an_open_connection_is_quoted_at_the_timeout(
    stream_server: StreamServer,
) -> None:
    # As an SSH server does: it says its piece, then waits for the client.
    stream_server.banner = b"SSH-2.0-OpenSSH_9.6\r\n"
    obs = await probe_once(stream_server.port, probe_timeout=0.2, expect="220")
    assert obs.up is False
    assert obs.error == r"expected '220', got 'SSH-2.0-OpenSSH_9.6\r\n'"


async def test_an_endless_stream_is_read_only_up_to_the_limit(stream_server: StreamServer) -> None:
    stream_server.endless = True
    tracemalloc.start()
    try:
        started = time.perf_counter()
        obs = await probe_once(stream_server.port, probe_timeout=5.0, expect="never sent")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # It stops at READ_LIMIT, not at the timeout, and holds no more than a few buffers.
    assert elapsed < 2.0
    assert peak < 16 * READ_LIMIT
    assert obs.up is False
    assert obs.error is not None
    assert obs.error.startswith("expected 'never sent', got '.....")
    assert obs.error.endswith("…'")


async def test_build_probe_makes_a_tcp_probe(stream_server: StreamServer) -> None:
    target = TcpTarget.model_validate(
        {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": stream_server.port}
    )
    probe = build_probe(target, None, 3.0)  # type: ignore[arg-type]  # a tcp probe needs no context
    assert isinstance(probe, TcpProbe)
    (obs,) = await probe.observe(now=7.0)
    assert obs.target == "db"
    assert obs.up is True
    assert obs.duration > 0.0


async def test_a_secret_in_the_answer_is_masked_before_the_quote_is_cut(
    stream_server: StreamServer,
) -> None:
    # 20 characters, then a 52-character secret: cut at 40, 20 of it would be left,
    # and no longer match the secret.
    secret = "tok_9fK2mQ7xLw4RzP8vN3sT6yH1bJ5cD0gEAq2Wn8Ut5Yr3IoZk"
    stream_server.banner = b"-ERR wrong password " + secret.encode() + b" try again later\r\n"
    target = TcpTarget.model_validate(
        {"name": "auth", "type": "tcp", "host": "127.0.0.1", "port": stream_server.port}
        | {"send": f"AUTH {secret}\r\n", "expect": "+OK"}
    )
    async with aiohttp.ClientSession() as session:
        context = ProbeContext(session, lambda: frozenset({secret}))
        (obs,) = await build_probe(target, context, 0.2).observe(now=1.0)
    assert obs.error == r"expected '+OK', got '-ERR wrong password *** try again later\r\n'"
    assert not any(secret[i : i + 8] in obs.error for i in range(len(secret) - 7))
