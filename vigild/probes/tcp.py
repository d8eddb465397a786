"""TCP probe: a port that accepts connections, and optionally says the right thing.

The story of a probe: connect; write ``send`` if there is one; when
``expect`` is set, read what the server says until the expected text shows
up, the server stops, or ``READ_LIMIT`` bytes came without it. The
connection is closed before the probe returns. ``latency_seconds`` is the
time to the connection (and the sent text), or to the expected text.

Everything, the close included, runs inside the target's timeout: a server
that never answers, or streams forever, costs one timeout and a bounded
buffer, never more.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import time

from vigild.config import TcpTarget
from vigild.model import Observation
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.probes.http import _os_text
from vigild.redaction import one_line, printable, shorten

__all__ = ["READ_LIMIT", "TcpProbe", "close", "describe_connect_error", "read_until"]

READ_LIMIT = 64 * 1024
"""Most bytes read while looking for ``expect``: a banner is short, and a server that
streams must not grow the probe's memory."""

_SHOWN = 40
"""Characters of the server's answer quoted in a mismatch error."""


class TcpProbe(Probe):
    """Probes one ``type = "tcp"`` target."""

    target: TcpTarget

    def __init__(
        self, target: TcpTarget, timeout: float, context: ProbeContext | None = None
    ) -> None:
        super().__init__(target, timeout, context)
        # An empty ``send`` or ``expect`` asks for nothing: there is nothing to write or wait for.
        self._send = target.send.encode() if target.send else None
        self._expect = target.expect.encode() if target.expect else None
        self._timeout_error = f"timeout after {timeout:g}s"

    async def probe(self, now: float) -> tuple[Observation]:
        target = self.target
        deadline = asyncio.get_running_loop().time() + self.timeout
        received = bytearray()
        writer: asyncio.StreamWriter | None = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_connection(target.host, target.port)
                if self._send is not None:
                    writer.write(self._send)
                    await writer.drain()
                found = self._expect is None or await read_until(reader, self._expect, received)
                latency = time.perf_counter() - started
        except TimeoutError:
            # A server that answered, then went quiet without the expected text, said the
            # wrong thing: quoting it helps more than "timeout".
            error = self._mismatch(received) if received else self._timeout_error
            return (Observation(target.name, now, False, error),)
        except OSError as exc:
            error = describe_connect_error(
                exc, target.host, connected=writer is not None, secrets=self.secrets
            )
            return (Observation(target.name, now, False, error),)
        finally:
            if writer is not None:
                await close(writer, deadline)
        if not found:
            return (Observation(target.name, now, False, self._mismatch(received)),)
        return (Observation(target.name, now, True, None, {"latency_seconds": latency}),)

    def _mismatch(self, received: bytearray) -> str:
        secrets = self.secrets
        expected = _quoted(self._expect or b"", secrets)
        got = _quoted(bytes(received), secrets) if received else "nothing"
        return one_line(f"expected {expected}, got {got}", MAX_ERROR, secrets)


async def read_until(reader: asyncio.StreamReader, expect: bytes, received: bytearray) -> bool:
    """Reads into ``received`` until ``expect`` shows up (True), or the server stops
    or ``READ_LIMIT`` is reached without it (False)."""
    while len(received) < READ_LIMIT:
        chunk = await reader.read(READ_LIMIT - len(received))
        if not chunk:
            return False
        # The text may straddle two reads; nothing before this point can hold a new match.
        start = max(0, len(received) - len(expect) + 1)
        received += chunk
        if received.find(expect, start) >= 0:
            return True
    return False


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


def describe_connect_error(
    exc: OSError, host: str, *, connected: bool, secrets: frozenset[str] = frozenset()
) -> str:
    """One short line for a failed connection: refused, unresolvable, reset."""
    if isinstance(exc, socket.gaierror):
        return one_line(f"DNS lookup failed for {host}: {_os_text(exc)}", MAX_ERROR, secrets)
    code = exc.errno if exc.errno is not None else _shared_errno(str(exc))
    if code == errno.ECONNREFUSED:
        return "connection refused"
    text = os.strerror(code).lower() if code is not None and code > 0 else _os_text(exc)
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


def _quoted(data: bytes, secrets: frozenset[str]) -> str:
    """The start of ``data`` in quotes, redacted, control characters escaped, "…" when cut."""
    # All of it (READ_LIMIT bounds it) is redacted: a secret must be whole to match.
    text = shorten(data.decode("utf-8", "replace"), _SHOWN + 1, secrets)
    return f"'{printable(text)}'"
