"""A real recording webhook receiver on 127.0.0.1, for notifier, engine and daemon tests.

It serves real HTTP on a random port, so another process (a ``vigild``
subprocess) can POST to it too; it records every request and answers with a
status and delay the test sets. The server runs in the test's event loop:
tests await ``wait_for`` (or anything else) to let it serve.

    async def test_x(receiver: Receiver) -> None:
        receiver.status = 503                    # every answer from now on
        receiver.queue(503, 200)                 # or: these first, then .status
        ...POST to receiver.url("/hook")...
        [request] = await receiver.wait_for(1)
        assert request.json["status"] == "firing"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web

__all__ = [
    "PagerDutyReceiver",
    "Receiver",
    "Receivers",
    "Recorded",
    "alerts_of",
    "receiver",
    "receivers",
]


@dataclass
class Recorded:
    """One request as the receiver saw it, and how it was answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names as sent; look them up with ``header()`` for case-insensitivity."""
    body: bytes
    json: Any = None
    """The parsed JSON body, or None when the body is not JSON."""
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` on arrival."""
    status: int = 200
    """The status it is (or was) answered with."""
    answered_at: float | None = None
    """``time.monotonic()`` when the answer went out; None while the receiver holds it.

    From ``received_at`` to ``answered_at`` the sender cannot know the outcome:
    a sender killed in that span may send the same message again.
    """

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), default)


class Receiver:
    """Records every request; answers with ``status`` after ``delay`` seconds.

    Attributes a test may set at any time:
        status: the HTTP status of answers (default 200) once ``queue`` is empty.
        delay: seconds to wait before answering (0). Requests are recorded on
            arrival, before the delay, so a request that times out is still seen.
        response_body: the text of answers (default ``"ok"``).
        response_headers: extra headers of answers (e.g. ``Retry-After``).
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.status = 200
        self.delay = 0.0
        self.response_body = "ok"
        self.response_headers: dict[str, str] = {}
        self._queued: deque[int] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- what tests use -----------------------------------------------------

    def url(self, path: str = "/hook") -> str:
        """``http://127.0.0.1:PORT/hook``: where to send."""
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    def queue(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order, then with ``status``."""
        self._queued.extend(statuses)

    @property
    def bodies(self) -> list[Any]:
        """The parsed JSON bodies of all requests so far, in arrival order."""
        return [r.json for r in self.requests]

    def clear(self) -> None:
        """Forget what was recorded (settings stay)."""
        self.requests.clear()

    async def wait_for(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - a bounded wait is this helper's whole point
    ) -> list[Recorded]:
        """Wait until at least ``count`` requests arrived; return all requests so far.

        Polls in short steps so the server (same event loop) gets to serve; fails
        the test with what did arrive once ``timeout`` seconds have passed.
        """
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"receiver got {len(self.requests)} request(s) within {timeout}s, "
                    f"expected {count}: {[(r.method, r.path) for r in self.requests]}"
                )
            await asyncio.sleep(0.01)
        return list(self.requests)

    async def wait_quiet(self, period: float = 0.2) -> list[Recorded]:
        """Wait ``period`` seconds and return what arrived: for "nothing more was sent"."""
        await asyncio.sleep(period)
        return list(self.requests)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown: a test that left a request hanging must not stall teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        # Bound here rather than by the site, so the random port is known without private API.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        self._closing.set()  # hanging handlers answer now instead of after their delay
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        status = self._queued.popleft() if self._queued else self.status
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            json=parsed,
            status=status,
        )
        self.requests.append(recorded)
        if self.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        recorded.answered_at = time.monotonic()
        return web.Response(status=status, text=self.response_body, headers=self.response_headers)


def alerts_of(requests: list[Recorded]) -> list[tuple[str, str]]:
    """(fingerprint, status) of every alert in these webhook bodies, in order."""
    return [(a["fingerprint"], a["status"]) for r in requests for a in r.json["alerts"]]


class PagerDutyReceiver(Receiver):
    """Answers as the Events API does: 202 with the event's dedup_key, unless told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 202
        self.response_headers = {"Content-Type": "application/json"}

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        if response.status == 202:
            sent = self.requests[-1].json or {}
            response.text = json.dumps(
                {
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": sent.get("dedup_key"),
                }
            )
        return response

    def incidents(self) -> tuple[list[str], set[str]]:
        """PagerDuty's bookkeeping of what it accepted: the dedup_keys in the order they
        opened an incident, and those still open. A trigger for an open key updates its
        incident; a resolve closes it; a trigger after that opens a new one."""
        opened: list[str] = []
        still_open: set[str] = set()
        for request in self.requests:
            key, action = request.json["dedup_key"], request.json["event_action"]
            if action == "trigger" and key not in still_open:
                opened.append(key)
                still_open.add(key)
            elif action == "resolve":
                still_open.discard(key)
        return opened, still_open


_R = TypeVar("_R", bound=Receiver)


class Receivers:
    """Start as many receivers as a test needs, of any ``Receiver`` kind; all stop at teardown."""

    def __init__(self) -> None:
        self._started: list[Receiver] = []

    async def start(self, kind: type[_R]) -> _R:
        server = kind()
        await server.start()
        self._started.append(server)
        return server

    async def stop(self) -> None:
        for server in self._started:
            await server.stop()


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    started = Receivers()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def receiver(receivers: Receivers) -> Receiver:
    """A started ``Receiver`` on 127.0.0.1, stopped after the test."""
    return await receivers.start(Receiver)


@pytest.fixture
async def pd(receivers: Receivers) -> PagerDutyReceiver:
    """A started ``PagerDutyReceiver``: PagerDuty's Events API on 127.0.0.1."""
    return await receivers.start(PagerDutyReceiver)
