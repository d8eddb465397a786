"""The HTTP endpoints on ``listen``: /metrics, /healthz, /readyz, /api/status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from vigild.redaction import redact_exposition, redact_values

__all__ = ["make_app"]


def make_app(
    *,
    exposition: Callable[[], bytes],
    status: Callable[[], dict[str, Any]],
    ready: Callable[[], bool],
    secrets: Callable[[], frozenset[str]],
) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        # Rendering 10,000 targets' series takes long enough to be worth a thread.
        body = await asyncio.to_thread(exposition)
        return web.Response(
            body=redact_exposition(body.decode(), secrets()).encode(),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def api_status(_request: web.Request) -> web.Response:
        text = json.dumps(redact_values(status(), secrets()), indent=2)
        return web.Response(text=text, content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", api_status)
    return app
