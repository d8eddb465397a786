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
import time
from typing import Literal

from pydantic import Field

from vigild.config import TargetConfig
from vigild.fields import host_port
from vigild.model import Observation
from vigild.probes._net import close, describe_connect_error
from vigild.probes.base import MAX_ERROR, Probe, ProbeContext
from vigild.redaction import one_line, printable, shorten

__all__ = ["READ_LIMIT", "TcpProbe", "read_until"]

READ_LIMIT = 64 * 1024
"""Most bytes read while looking for ``expect``: a banner is short, and a server that
streams must not grow the probe's memory."""

_SHOWN = 40
"""Characters of the server's answer quoted in a mismatch error."""


class TcpTarget(TargetConfig):
    """A TCP port: connect, optionally send a line and expect a banner."""

    REPORTED = frozenset({"up", "latency_seconds"})
    SLO_EVENTS = "probes"

    type: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    send: str | None = None
    expect: str | None = None
    """Text the first bytes the server sends must contain."""

    def address(self) -> str:
        return host_port(self.host, self.port)


class TcpProbe(Probe):
    """Probes one ``type = "tcp"`` target."""

    Options = TcpTarget
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


def _quoted(data: bytes, secrets: frozenset[str]) -> str:
    """The start of ``data`` in quotes, redacted, control characters escaped, "…" when cut."""
    # All of it (READ_LIMIT bounds it) is redacted: a secret must be whole to match.
    text = shorten(data.decode("utf-8", "replace"), _SHOWN + 1, secrets)
    return f"'{printable(text)}'"
