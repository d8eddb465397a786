"""The HTTP endpoints on ``listen``: / (the status page), /history (a target's last 7
days), /metrics, /healthz, /readyz, /api/status, /api/history, /api/silences,
/ping/<key> (push targets' jobs).

Reads are open, like ``/metrics``; writes (creating and expiring silences)
need a bearer token: ``[daemon] api_token`` (for remote clients), or the
daemon's cookie (see ``vigild.cookie``: the CLI on the same host) — or a
unix-socket listener, whose file permissions decide who may write. Pings need
no token: a job should not carry one, and a push target's ``ping_key`` makes its
URL unguessable.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import StreamReader, web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from vigild.alerting.silences import Silences
from vigild.config import DaemonConfig, SilenceConfig
from vigild.daemon.push import PushReceiver, UnknownKey
from vigild.daemon.shared import SharedBuilds
from vigild.fields import is_loopback, split_listen, unix_listen
from vigild.probes.push import Tail
from vigild.redaction import redact_values
from vigild.status import Moment
from vigild.storage.errors import StateFileError

if TYPE_CHECKING:
    from vigild.daemon.page import Snapshot, WeekSnapshot

__all__ = ["make_app", "open_site"]

log = structlog.get_logger("vigild")

MAX_REQUEST_BODY = 64 * 1024
JSON_UTF8 = "application/json; charset=utf-8"
ENTRIES_A_PIECE = 256
"""Targets per piece of ``/api/status``: about 250 KB of JSON."""


def make_app(
    *,
    exposition: Callable[[], Iterator[bytes]],
    status: Callable[[], Moment],
    ready: Callable[[], bool],
    secrets: Callable[[], frozenset[str]],
    silences: Callable[[], Silences],
    api_token: Callable[[], str | None],
    cookie: str,
    unix_socket: bool = False,
    clock: Callable[[], float] = time.time,
    page: Callable[[int, str | None], Snapshot] | None = None,
    history: Callable[[Mapping[str, str], float], dict[str, Any]] | None = None,
    pushes: PushReceiver | None = None,
    week: Callable[[str], WeekSnapshot] | None = None,
) -> web.Application:
    """``status``, ``page`` and ``week`` take what their endpoint shows on the event
    loop, cheaply; the rest of the work is done in a worker thread, one build at a time
    per endpoint, shared by the requests that come while it is pending
    (``SharedBuilds``). ``exposition`` renders /metrics on the loop a piece at a time,
    written as it comes."""
    pages: SharedBuilds[str | None] = SharedBuilds()
    statuses: SharedBuilds[list[bytes]] = SharedBuilds()

    def json_response(document: Any, status: int = 200) -> web.Response:
        text = _json_text(document, secrets())
        return web.Response(text=text, status=status, content_type="application/json")

    def refuse_write(request: web.Request) -> web.Response | None:
        if unix_socket:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        tokens = [cookie] if (token := api_token()) is None else [token, cookie]
        # Compared with every token, not up to the first match: the time taken says nothing.
        matches = [hmac.compare_digest(given.encode(), t.encode()) for t in tokens]
        if scheme.lower() != "bearer" or not any(matches):
            return web.json_response(
                {"error": "a valid bearer token is required ([daemon] api_token, or the cookie)"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    async def metrics(request: web.Request) -> web.StreamResponse:
        return await send_pieces(request, exposition(), {"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def status_body() -> list[bytes]:
        # The moment is taken on the loop, where the engine lives; building, redacting
        # and writing 10,000 targets' worth of document held it for hundreds of ms.
        return await asyncio.to_thread(_status_body, status(), secrets())

    async def api_status(request: web.Request) -> web.StreamResponse:
        pieces = await statuses.get(None, status_body)
        length = sum(len(piece) for piece in pieces)
        return await send_pieces(request, pieces, {"Content-Type": JSON_UTF8}, length=length)

    async def api_history(request: web.Request) -> web.Response:
        from vigild.daemon.recorder import QueryError

        assert history is not None
        try:
            # Decoding blocks of a long range is worth a thread.
            document = await asyncio.to_thread(history, dict(request.query), clock())
        except QueryError as exc:
            return json_response({"error": str(exc)}, exc.status)
        return json_response(document)

    async def status_page(request: web.Request) -> web.Response:
        # The pages' code (sparklines, markupsafe) loads with the first page asked for.
        from vigild.daemon.page import render

        assert page is not None
        try:
            number = int(request.query.get("page", "1"))
        except ValueError:
            number = 1
        target = request.query.get("target")

        async def build() -> str | None:
            # The snapshot is taken on the loop, where the engine lives; the document,
            # the history and the HTML are built in a thread.
            return await asyncio.to_thread(render, page(number, target), secrets())

        html = await pages.get(("page", number, target), build)
        assert html is not None
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def week_page(request: web.Request) -> web.Response:
        # The pages' code (sparklines, markupsafe) loads with the first page asked for.
        from vigild.daemon.page import render_week

        assert week is not None
        target = request.query.get("target", "")

        async def build() -> str | None:
            # Reading a week of five-minute buckets is worth a thread, as the page is.
            return await asyncio.to_thread(render_week, week(target), secrets())

        html = await pages.get(("week", target), build)
        if html is None:
            return web.Response(text=f"no target {target!r}\n", status=404)
        return web.Response(
            text=html, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def list_silences(_request: web.Request) -> web.Response:
        return json_response(silences().listing(clock()))

    async def add_silence(request: web.Request) -> web.Response:
        if (refused := refuse_write(request)) is not None:
            return refused
        try:
            spec = SilenceConfig.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()
            ]
            return json_response({"error": "invalid silence", "problems": problems}, 400)
        silence = silences().add(spec, clock())
        return json_response({"id": silence.id, "silence": silence.to_json(clock())}, 201)

    async def expire_silence(request: web.Request) -> web.Response:
        if (refused := refuse_write(request)) is not None:
            return refused
        silence_id = request.match_info["id"]
        current = silences()
        if current.expire(silence_id):
            return json_response({"id": silence_id, "expired": True})
        if any(s.id == silence_id for s in current):
            return json_response(
                {"error": f"silence {silence_id} is defined in the config file"}, 409
            )
        return json_response({"error": f"no silence {silence_id}"}, 404)

    async def ping(request: web.Request) -> web.Response:
        assert pushes is not None
        key, what = request.match_info["key"], request.match_info.get("what", "")
        # A body of any size costs neither the ping nor memory: its end is kept, where a
        # failing job says why (Healthchecks.io, too, records the ping and cuts the body).
        body = await tail(request.content)
        authorized = refuse_write(request) is None  # the API token, the cookie, a unix socket
        try:
            target = pushes.receive(key, what, body, authorized=authorized)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        except UnknownKey:
            return json_response({"error": "no push target has this key"}, 404)
        except (StateFileError, sqlite3.Error) as exc:
            # A job retrying (curl --retry) gets its ping in once the file is back.
            return json_response({"error": f"cannot record the ping: {exc}"}, 503)
        return json_response({"target": target, "ping": what or "success"})

    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    if page is not None:
        app.router.add_get("/", status_page)
    if week is not None:
        app.router.add_get("/history", week_page)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", api_status)
    if history is not None:
        app.router.add_get("/api/history", api_history)
    app.router.add_get("/api/silences", list_silences)
    app.router.add_post("/api/silences", add_silence)
    app.router.add_delete("/api/silences/{id}", expire_silence)
    if pushes is not None:
        app.router.add_post("/ping/{key}", ping)
        app.router.add_post("/ping/{key}/{what}", ping)
    return app


def _json_text(document: Any, secrets: frozenset[str]) -> str:
    return json.dumps(redact_values(document, secrets), indent=2)


_NO_TARGETS = '\n  "targets": [],'
"""The head document's empty list of targets as ``_json_text`` writes it: the only list
at this depth so named (a value is quoted, a label's key is indented deeper)."""


def _status_body(moment: Moment, secrets: frozenset[str]) -> list[bytes]:
    """``moment``'s document as ``_json_text`` writes it, in UTF-8, one target at a time:
    10,000 entries alive at once would set off a full collection, which holds the event
    loop too, for about 100 ms. It comes in pieces of ``ENTRIES_A_PIECE`` targets, sent
    one after the other: the whole text is never copied into one answer."""
    head, tail = _json_text(moment.document([]), secrets).split(_NO_TARGETS)
    listed = moment.listed()
    if not listed:
        return [f"{head}{_NO_TARGETS}{tail}".encode()]
    pieces = [f'{head}\n  "targets": [\n'.encode()]
    for start in range(0, len(listed), ENTRIES_A_PIECE):
        entries = (
            "    " + _json_text(moment.entry(*shown), secrets).replace("\n", "\n    ")
            for shown in listed[start : start + ENTRIES_A_PIECE]
        )
        pieces.append(((",\n" if start else "") + ",\n".join(entries)).encode())
    pieces.append(f"\n  ],{tail}".encode())
    return pieces


async def send_pieces(
    request: web.Request,
    pieces: Iterable[bytes],
    headers: Mapping[str, str],
    *,
    length: int | None = None,
) -> web.StreamResponse:
    """``pieces`` as one answer, written one at a time with the loop let run between
    them: the writer waits for the client to take each, so a page is never copied whole
    into a buffer. Without ``length`` the answer is chunked. A client that leaves before
    the end (a scrape timing out) is no error of ours."""
    response = web.StreamResponse(headers=headers)
    response.content_length = length
    await response.prepare(request)
    try:
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0)
        await response.write_eof()
    except ConnectionResetError:
        log.debug("client left before the answer was written", path=request.path)
    return response


async def tail(content: StreamReader) -> bytes:
    """The end of a body of any size (see ``Tail``)."""
    kept = Tail()
    async for chunk in content.iter_any():
        kept.add(chunk)
    return kept.value()


async def open_site(runner: web.AppRunner, daemon: DaemonConfig) -> None:
    """Serve ``runner`` on ``[daemon] listen``: a unix socket, or a TCP host and port."""
    socket_path = unix_listen(daemon.listen)
    if socket_path is not None:
        # Owner and group only, from the moment it exists: the socket's permissions
        # are who may write through the API.
        previous = os.umask(0o117)
        try:
            await web.UnixSite(runner, socket_path).start()
        finally:
            os.umask(previous)
        return
    host, port = split_listen(daemon.listen)
    await web.TCPSite(runner, host, port).start()
    if daemon.api_token is None and not is_loopback(host):
        log.warning(
            "listening beyond this host without api_token: the status page and "
            "/api/status are open to the network; writes need the cookie file, "
            "so only local users who can read it can write",
            listen=daemon.listen,
        )
