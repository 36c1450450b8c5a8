"""The plan endpoint: what ``autonomous`` intends to do over the next hours, and why."""

from __future__ import annotations

from aiohttp import web

from gateway.web.auth import READ_SCOPE
from gateway.web.errors import ok
from gateway.web.keys import GATEWAY, site_for
from gateway.web.renderers.plan import plan_body

routes = web.RouteTableDef()


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/plan")
async def plan(request: web.Request) -> web.Response:
    """The planner's latest plan for the site (same auth as the Fleet reads)."""
    site = site_for(request, READ_SCOPE)
    return ok(plan_body(request.app[GATEWAY].planners[site.id]))
