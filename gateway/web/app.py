"""create_app(config): the gateway's aiohttp application, its middlewares and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from drivers import DRIVERS
from drivers.transport import Transports
from drivers.transport.modbus import ModbusPool
from gateway.core.config import Config, DeviceConfig
from gateway.runtime.history import HistoryService
from gateway.runtime.logs import add_redacted_secret
from gateway.runtime.poller import DeviceHandle, DevicePoller
from gateway.runtime.proxy import ModbusProxy
from gateway.runtime.site import Clock, Site, utc_now
from gateway.runtime.store import Store, keep_journal
from gateway.runtime.tokens import watch_revocations
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
)
from gateway.web.handlers import commands, history, sites
from gateway.web.keys import (
    CLOCK,
    CONFIG,
    HISTORY,
    LIMITER,
    PRINCIPAL,
    PROXIES,
    SITES,
    VERIFIER,
)
from gateway.web.openapi import build_openapi
from gateway.web.ratelimit import RateLimiter

log = structlog.get_logger("gateway.web.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Request ids for log correlation: a per-process random prefix and a counter (uuid4 per request
# showed up in the live_status profile).
_ID_PREFIX = os.urandom(3).hex() + "-"
_REQUEST_IDS = itertools.count(1)


@web.middleware
async def fleet_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer leaves in the Fleet envelope; /api/ needs a bearer token within its plan.

    One middleware rather than a chain: this runs on every live_status poll.
    """
    ratelimit_headers: dict[str, str] | None = None
    bound = False
    try:
        if request.path.startswith("/api/"):
            app = request.app
            now = time.time()
            who = app[VERIFIER].verify(bearer(request.headers.get("Authorization")), now)
            request[PRINCIPAL] = who
            limits = app[CONFIG].gateway.rate_limits
            plan = limits.plans.get(who.plan or limits.default_plan) or \
                limits.plans[limits.default_plan]
            decision = app[LIMITER].hit(who.key, plan, now)
            ratelimit_headers = decision.headers()
            if not decision.allowed:
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
    return response


async def _server_header(_: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names the Python and aiohttp versions: a map for an attacker
    response.headers["Server"] = SERVER


def create_app(
    config: Config, *, clock: Clock = utc_now, jwt_secret: str | None = None,
) -> web.Application:
    """Build the gateway application; devices are connected when it starts.

    ``jwt_secret`` overrides the configured one (the demo signs with a per-run secret). Serve it
    with gateway.web.server.GatewayRunner, which answers unparseable requests the Fleet way.
    """
    # A base URL given with a trailing slash makes clients ask for //api/1/...: answer with a
    # 308 to the merged path (method and body kept), as fleet-api.md §11.2 allows.
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
    app[CLOCK] = clock
    app[LIMITER] = RateLimiter()
    app[SITES] = {}
    app[PROXIES] = {}
    app[HISTORY] = HistoryService(config.gateway.data_dir / "history.sqlite3", clock=clock)
    app.router.add_routes(sites.routes)
    app.router.add_routes(commands.routes)
    app.router.add_routes(history.routes)
    openapi_body = dumps(build_openapi())

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    app.cleanup_ctx.append(_revocations)
    app.cleanup_ctx.append(_runtime)
    return app


async def _revocations(app: web.Application) -> AsyncIterator[None]:
    """Keep the verifier's deny-list in step with `energy-gateway token revoke`."""
    async with watch_revocations(app[CONFIG].gateway.data_dir, app[VERIFIER].set_revoked,
                                 clock=time.time):
        yield


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    """Open storage, build drivers and sites, start pollers and control loops; undo on exit."""
    config = app[CONFIG]
    store = Store(config.gateway.data_dir / "gateway.sqlite3")
    await store.open()
    interrupted = await store.close_interrupted(app[CLOCK]())
    if interrupted:
        log.warning("journal.interrupted", entries=interrupted)
    history_service = app[HISTORY]
    await history_service.open()
    transports = Transports(modbus=ModbusPool())
    tasks: list[asyncio.Task[None]] = []
    handles: list[DeviceHandle] = []
    proxies = app[PROXIES]
    zones = await asyncio.to_thread(
        lambda: {s.time_zone: zoneinfo.ZoneInfo(s.time_zone) for s in config.sites})
    try:
        for site_config in config.sites:
            devices = []
            for dev in site_config.devices:
                driver_cls = DRIVERS[dev.type]
                options = driver_cls.options_model.model_validate(dev.options)
                devices.append(DeviceHandle(dev, driver_cls(dev.name, options, transports)))
            handles.extend(devices)
            site = Site(site_config, devices, store, tz=zones[site_config.time_zone],
                        command_timeout_s=config.gateway.command_timeout_s, clock=app[CLOCK])
            await site.load()
            history_service.add_site(site)
            app[SITES][site.id] = site
            for dev in site_config.devices:
                if dev.proxy_port is not None:
                    proxy = _proxy(transports, dev, config.gateway.proxy_host)
                    proxies[(site.id, dev.name)] = proxy
                    await proxy.start()
        for site in app[SITES].values():
            for handle in site.devices:
                poller = DevicePoller(handle, on_connect=site.on_connect,
                                      on_telemetry=_fan_out(site, history_service), site_id=site.id)
                tasks.append(asyncio.create_task(poller.run(), name=f"poll-{site.id}-{handle.name}"))
            tasks.append(asyncio.create_task(
                site.control_loop(config.gateway.reconcile_interval_s), name=f"control-{site.id}"))
        tasks.append(asyncio.create_task(history_service.run(), name="history"))
        tasks.append(asyncio.create_task(keep_journal(
            store, config.gateway.journal_retention_days, app[CLOCK]), name="journal"))
        site_ids = sorted(app[SITES].keys())
        log.info("gateway.started", sites=site_ids, devices=len(handles))
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for proxy in proxies.values():
            await proxy.stop()
        proxies.clear()
        for handle in handles:
            with contextlib.suppress(Exception):
                await handle.driver.close()
        await transports.close()
        await history_service.close()
        await store.close()
        app[SITES].clear()
        log.info("gateway.stopped")


def _proxy(transports: Transports, dev: DeviceConfig, host: str) -> ModbusProxy:
    """A proxy sharing the device's own endpoint (its one TCP connection)."""
    options = DRIVERS[dev.type].options_model.model_validate(dev.options)
    endpoint = transports.modbus.acquire(options.host, options.port)  # type: ignore[attr-defined]
    return ModbusProxy(endpoint, unit_id=options.unit_id,  # type: ignore[attr-defined]
                       host=host, port=dev.proxy_port or 0, allow_writes=dev.proxy_writes,
                       name=dev.name)


def _fan_out(site: Site, history_service: HistoryService) -> Callable[[DeviceHandle], None]:
    def on_telemetry(handle: DeviceHandle) -> None:
        site.on_telemetry(handle)
        history_service.on_telemetry(site, handle)

    return on_telemetry
