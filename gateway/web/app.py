"""create_app(config): the gateway's aiohttp application, its middlewares and background tasks."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from drivers.errors import DriverError
from gateway.core.config import Config
from gateway.core.errors import GatewayError
from gateway.runtime.clock import Clock, Timebase, utc_now
from gateway.runtime.gateway import Gateway
from gateway.runtime.logs import add_redacted_secret
from gateway.runtime.storage.tokens import watch_revocations
from gateway.web.auth import TokenVerifier, bearer
from gateway.web.errors import (
    SERVER,
    FleetError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    dumps,
    error_response,
    to_fleet,
)
from gateway.web.handlers import commands, health, history, metrics, plan, sites, storm, ui
from gateway.web.keys import (
    BODIES,
    CLOCK,
    CONFIG,
    GATEWAY,
    HISTORY,
    LIMITER,
    PRINCIPAL,
    PROXIES,
    SITES,
    VERIFIER,
)
from gateway.web.openapi import build_openapi
from gateway.web.ratelimit import RateLimiter
from gateway.web.renderers.sites import BodyCache
from gateway.web.uplink_bridge import WebBridge

log = structlog.get_logger("gateway.web.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Request ids for log correlation: a per-process random prefix and a counter (uuid4 per request
# showed up in the live_status profile).
_ID_PREFIX = os.urandom(3).hex() + "-"
_REQUEST_IDS = itertools.count(1)
#: On every answer to a test token (docs/api.md "Sandbox sites"): the data is simulated.
SANDBOX_HEADER = "Energy-Gateway-Sandbox"


@web.middleware
async def fleet_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer leaves in the Fleet envelope; /api/ needs a bearer token within its plan.

    One middleware rather than a chain: this runs on every live_status poll.
    """
    ratelimit_headers: dict[str, str] | None = None
    sandbox = False
    bound = False
    try:
        if request.path.startswith("/api/"):
            app = request.app
            now = time.time()
            who = app[VERIFIER].verify(bearer(request.headers.get("Authorization")), now)
            request[PRINCIPAL] = who
            sandbox = who.sandbox  # a test token reaches only sandbox sites: say so on each answer
            limits = app[CONFIG].gateway.rate_limits
            plan = limits.plans.get(who.plan or limits.default_plan) or \
                limits.plans[limits.default_plan]
            decision = app[LIMITER].hit(who.key, plan, now)
            ratelimit_headers = decision.headers()
            if not decision.allowed:
                app[GATEWAY].metrics.rate_limited(who.plan or limits.default_plan)
                raise RateLimited(  # noqa: TRY301 - the except below renders it like any
                                  "rate limit exceeded for this token",
                                  retry_after_s=decision.retry_after_s)
            if request.method != "GET":  # commands log one canonical line; reads log nothing
                structlog.contextvars.bind_contextvars(
                    request_id=f"{_ID_PREFIX}{next(_REQUEST_IDS):x}", token_sub=who.sub)
                bound = True
        response = await handler(request)
    except FleetError as exc:
        response = error_response(exc)
    except (GatewayError, DriverError) as exc:
        response = error_response(to_fleet(exc))
    except web.HTTPException as exc:
        mapped: FleetError
        if exc.status == 404:
            mapped = NotFound(f"no resource at {request.path}")
        elif exc.status == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        elif 400 <= exc.status < 500:
            mapped = InvalidRequest(exc.reason or "bad request")
            mapped.status = exc.status
        else:
            raise
        response = error_response(mapped)
        if "Allow" in exc.headers:  # RFC 9110: a 405 lists the allowed methods
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("request.crashed", path=request.path, method=request.method)
        response = error_response(FleetError("internal error", error="upstream internal error"))
    finally:
        if bound:
            structlog.contextvars.clear_contextvars()
    if ratelimit_headers is not None:
        response.headers.update(ratelimit_headers)
    if sandbox:
        response.headers[SANDBOX_HEADER] = "true"
    return response


async def _server_header(_: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names the Python and aiohttp versions: a map for an attacker
    response.headers["Server"] = SERVER


def create_app(
    config: Config, *, clock: Clock = utc_now, jwt_secret: str | None = None,
    timebase: Timebase | None = None,
) -> web.Application:
    """Build the gateway application; devices are connected when it starts.

    ``jwt_secret`` overrides the configured one (the demo signs with a per-run secret);
    ``timebase`` the configured ``gateway.clock`` (the demo follows its own simulator). Serve it
    with gateway.web.server.GatewayRunner, which answers unparseable requests the Fleet way.
    """
    # A base URL given with a trailing slash makes clients ask for //api/1/...: answer with a
    # 308 to the merged path, method and body kept (docs/api.md, the first section).
    merge_slashes = web.normalize_path_middleware(
        append_slash=False, merge_slashes=True, redirect_class=web.HTTPPermanentRedirect)
    # auto_decompress off: a command body is a few dozen bytes, and a Content-Encoding the
    # gateway does not decode is answered 415 by read_json instead of failing inside aiohttp.
    app = web.Application(middlewares=[merge_slashes, fleet_middleware],
                          handler_args={"auto_decompress": False})
    app.on_response_prepare.append(_server_header)
    app[CONFIG] = config
    secret = jwt_secret or config.jwt_secret()
    add_redacted_secret(secret)
    app[VERIFIER] = TokenVerifier(secret)
    app[LIMITER] = RateLimiter()
    bridge = WebBridge(lambda: app[GATEWAY].first_started_at)
    gateway = app[GATEWAY] = Gateway(config, clock=clock, timebase=timebase, uplink_bridge=bridge)
    app[CLOCK] = gateway.clock  # domain time; tokens and rate limits keep to the wall clock
    app[SITES] = gateway.sites
    app[PROXIES] = gateway.proxies
    app[HISTORY] = gateway.history
    app[BODIES] = BodyCache()
    app.router.add_routes(health.routes)
    app.router.add_routes(sites.routes)
    app.router.add_routes(commands.routes)
    app.router.add_routes(history.routes)
    app.router.add_routes(storm.routes)
    app.router.add_routes(metrics.routes)
    app.router.add_routes(ui.routes)
    app.router.add_routes(plan.routes)
    openapi_body = dumps(build_openapi())

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    app.cleanup_ctx.append(_runtime)
    app.cleanup_ctx.append(_revocations)  # after the runtime: it reads the runtime's storage
    return app


async def _revocations(app: web.Application) -> AsyncIterator[None]:
    """Keep the verifier's deny-list in step with `energy-gateway token revoke`."""
    async with watch_revocations(app[GATEWAY].tokens, app[VERIFIER].set_revoked,
                                 clock=time.time):
        yield


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    """Run the live system while the app serves (cleanup_ctx: started before, stopped after)."""
    async with app[GATEWAY]:
        yield
