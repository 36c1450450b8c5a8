"""Typed application and request keys shared by the handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.core.config import Config
from gateway.runtime.clock import Clock
from gateway.runtime.gateway import Gateway
from gateway.runtime.history import HistoryService
from gateway.runtime.proxy import ModbusProxy
from gateway.runtime.site import Site
from gateway.web.auth import Principal, TokenVerifier
from gateway.web.errors import NotFound
from gateway.web.ratelimit import RateLimiter
from gateway.web.renderers.sites import BodyCache

CONFIG = web.AppKey("config", Config)
GATEWAY = web.AppKey("gateway", Gateway)  # the live system; the keys below are its parts
SITES: web.AppKey[dict[int, Site]] = web.AppKey("sites")
LIMITER = web.AppKey("limiter", RateLimiter)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
VERIFIER = web.AppKey("token_verifier", TokenVerifier)
HISTORY = web.AppKey("history", HistoryService)
PROXIES: web.AppKey[dict[tuple[int, str], ModbusProxy]] = web.AppKey("proxies")
BODIES = web.AppKey("bodies", BodyCache)  # serialised answers kept between changes
PRINCIPAL = web.RequestKey("principal", Principal)  # set by the auth middleware


def principal(request: web.Request) -> Principal:
    """The verified caller of an /api/1 request."""
    return request[PRINCIPAL]


def site_for(request: web.Request, scope: str) -> Site:
    """The site named in the path, after scope and site-access checks (403 / 404)."""
    who = principal(request)
    who.require(scope)
    raw = request.match_info["site_id"]
    site_id = int(raw)
    site = request.app[SITES].get(site_id)
    who.require_site(site_id, sandbox=site is not None and site.config.sandbox)
    if site is None:
        raise NotFound(f"energy site {site_id} not found")
    return site
