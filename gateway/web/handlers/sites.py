"""Read endpoints: products, live_status, site_info."""

from __future__ import annotations

from aiohttp import web

from gateway.web.auth import READ_SCOPE
from gateway.web.errors import JSON, ok
from gateway.web.keys import BODIES, SITES, principal, site_for
from gateway.web.renderers.models import ProductsResponse, SiteInfoResponse
from gateway.web.renderers.sites import products_entry, site_info_body

routes = web.RouteTableDef()


@routes.get("/api/1/products")
async def products(request: web.Request) -> web.Response:
    """Every energy site the token can reach."""
    who = principal(request)
    who.require(READ_SCOPE)
    entries = [products_entry(s) for s in request.app[SITES].values() if who.can_reach(s.id)]
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
    body = site_info_body(site_for(request, READ_SCOPE))
    return ok(SiteInfoResponse.model_construct(response=body))
