"""GET /metrics: the gateway's Prometheus registry in the text exposition format, without auth."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.web.keys import GATEWAY

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every series of this gateway's registry (docs/api.md, "/metrics"); no secrets in it."""
    body = generate_latest(request.app[GATEWAY].metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
