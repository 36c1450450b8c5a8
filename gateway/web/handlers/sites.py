"""Read endpoints: products, live_status, site_info."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.web.auth import READ_SCOPE
from gateway.web.errors import JSON, ok
from gateway.web.keys import BODIES, CLOCK, GATEWAY, SITES, principal, site_for
from gateway.web.renderers.models import ProductsResponse, SiteInfoResponse
from gateway.web.renderers.sites import products_entry, site_info_body

routes = web.RouteTableDef()


@routes.get("/api/1/products")
async def products(request: web.Request) -> web.Response:
    """Every energy site the token can reach."""
    who = principal(request)
    who.require(READ_SCOPE)
    entries = [products_entry(s) for s in request.app[SITES].values()
               if who.reaches(s.id, sandbox=s.config.sandbox)]
    return ok(ProductsResponse.model_construct(response=entries, count=len(entries)))


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/live_status")
async def live_status(request: web.Request) -> web.Response:
    """Latest telemetry; 408 when a device is offline (serialised once per change)."""
    site = site_for(request, READ_SCOPE)
    site.require_online()
    return web.Response(body=request.app[BODIES].live_status(site), content_type=JSON)


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/site_info")
async def site_info(request: web.Request) -> web.Response:
    """Settings, components and nameplates of a site."""
    body = site_info_body(site_for(request, READ_SCOPE), installed_at(request.app))
    return ok(SiteInfoResponse.model_construct(response=body))


def installed_at(app: web.Application) -> datetime:
    """When the gateway was installed, for sites that configure no ``installation_date``.

    The gateway's first start on its storage (docs/storage.md, "meta"); set when the runtime
    starts, so only a request racing the start itself falls back to now.
    """
    first = app[GATEWAY].first_started_at
    return first if first is not None else app[CLOCK]()
