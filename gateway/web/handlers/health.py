"""Unauthenticated probes: /status (liveness) and /health (per-device connectivity)."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.web.errors import ok
from gateway.web.keys import GATEWAY, SITES
from gateway.web.renderers.health import health_body

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Per-site and per-device connectivity and data age; no auth, no secrets."""
    timebase = request.app[GATEWAY].timebase
    return ok(health_body(request.app[SITES].values(), time.monotonic(), timebase.status()))


@routes.get("/status")
async def status(_: web.Request) -> web.Response:
    """Liveness for clients: the text ``ok``."""
    return web.Response(text="ok")
