"""GET /metrics: the gateway's Prometheus registry, in the format the scraper asks for, no auth."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from gateway.web.keys import GATEWAY

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every series of this gateway's registry (docs/api.md, "Metrics"); no secrets in it.

    The Prometheus text format (0.0.4), or OpenMetrics when the scraper's Accept prefers it.
    """
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encode(request.app[GATEWAY].metrics.registry))
    response.headers["Content-Type"] = content_type
    return response
