"""create_hub_app(config): the hub's Fleet API, answered from PostgreSQL and Redis state."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.core.access import HUB_ADMIN_SCOPE
from gateway.core.config.hub import HubConfig
from gateway.core.history import (
    MAX_EVENTS,
    HistoryQueryError,
    Outage,
    plan_energy,
    resolve_window,
    zone,
)
from gateway.core.history.charging import ChargeSession, listable
from gateway.core.history.flows import FlowEnergy
from gateway.core.uplink.contract import MAX_COMMAND_TTL_S, UNSETTLED, CommandMessage
from gateway.hub.db import HubStore, SiteRow, connect
from gateway.hub.ingest import Ingest, NotConnected, Outcome, Waiters
from gateway.hub.shared import SharedLimiter, connect_redis
from gateway.runtime.logs import add_redacted_secret
from gateway.runtime.storage.tokens import watch_revocations
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, Principal, TokenVerifier, bearer
from gateway.web.errors import (
    JSON,
    DeviceOffline,
    FleetError,
    InvalidField,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    error_response,
    to_json,
)
from gateway.web.handlers.commands import COMMANDS, Command, read_json, validate
from gateway.web.handlers.history import charge_window
from gateway.web.renderers.history import backup_response, charge_response, energy_body
from gateway.web.renderers.models import (
    BackupHistoryResponse,
    ChargeHistoryResponse,
    EnergyHistoryResponse,
)

log = structlog.get_logger("gateway.hub.app")

CONFIG = web.AppKey("hub_config", HubConfig)
VERIFIER = web.AppKey("hub_verifier", TokenVerifier)
STORE = web.AppKey("hub_store", HubStore)
LIMITER = web.AppKey("hub_limiter", SharedLimiter)
WAITERS = web.AppKey("hub_waiters", Waiters)
INGEST = web.AppKey("hub_ingest", Ingest)
SITE_CACHE: web.AppKey[SiteCache] = web.AppKey("hub_site_cache")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("hub_redis")
PRINCIPAL = web.RequestKey("hub_principal", Principal)
REPLICA = f"{os.uname().nodename}-{os.getpid()}"
IDEMPOTENCY_KEY = "Idempotency-Key"
_READ_TTL_S = 0.5  # a replica reuses a site's row this long for reads (SiteCache)
_RECHECK_S = 1.0  # a waiting command reads the journal this often (an outcome this replica missed)
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()


class GatewayAbsent(DeviceOffline):
    """408: the site's gateway is offline per its presence (the hub does not guess)."""


class NoOutcome(FleetError):
    status, error = 504, "device did not confirm"


class KeyReused(FleetError):
    status, error = 422, "invalid_request"


def answer(status: int, body: Any) -> web.Response:
    """A Fleet body (already a plain value) with its status."""
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON)


@web.middleware
async def hub_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token and the shared per-token plan on /api/; every error in the Fleet envelope."""
    headers: dict[str, str] | None = None
    try:
        if request.path.startswith("/api/"):
            app = request.app
            now = time.time()
            who = app[VERIFIER].verify(bearer(request.headers.get("Authorization")), now)
            request[PRINCIPAL] = who
            limits = app[CONFIG].hub.rate_limits
            plan = limits.plans.get(who.plan or limits.default_plan) or \
                limits.plans[limits.default_plan]
            try:
                decision = await app[LIMITER].hit(who.key, plan, now)
            except aioredis.RedisError as exc:
                raise ServiceUnavailable("the hub cannot count requests right now (Redis: "
                                         f"{type(exc).__name__}); retry shortly") from None
            headers = decision.headers()
            if not decision.allowed:
                raise RateLimited("rate limit exceeded for this token",  # noqa: TRY301
                                  retry_after_s=decision.retry_after_s)
        response = await handler(request)
    except FleetError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status == 404:
            response = error_response(NotFound(f"no resource at {request.path}"))
        elif exc.status == 405:
            response = error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.path}"))
        else:
            raise
    except Exception:
        log.exception("hub.request_crashed", path=request.path, method=request.method)
        response = error_response(FleetError("internal error", error="upstream internal error"))
    if headers is not None:
        response.headers.update(headers)
    return response


def _who(request: web.Request, scope: str) -> Principal:
    who = request[PRINCIPAL]
    who.require(scope)
    return who


class SiteCache:
    """Site rows kept for ``ttl_s`` for reads: a live_status poll costs no PostgreSQL query while
    its row is that fresh (the data are only as fresh as the edge's poll anyway). Bounded."""

    def __init__(self, store: HubStore, ttl_s: float = _READ_TTL_S, max_rows: int = 100_000) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_rows = max_rows
        self._rows: dict[int, tuple[float, SiteRow | None]] = {}

    def forget(self, site_id: int) -> None:
        """Drop a site's row (its owner changed)."""
        self._rows.pop(site_id, None)

    async def get(self, site_id: int) -> SiteRow | None:
        now = time.monotonic()
        hit = self._rows.get(site_id)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        row = await self._store.site(site_id)
        if len(self._rows) >= self._max_rows:
            self._rows.clear()
        self._rows[site_id] = (now, row)
        return row


async def _site(request: web.Request, scope: str) -> SiteRow:
    """The path's site (through the cache), after scope and access checks; see ``_usable``."""
    site_id = _site_id(request, scope)
    return _usable(site_id, await request.app[SITE_CACHE].get(site_id))


def _site_id(request: web.Request, scope: str) -> int:
    """The path's site id, once the token's scope and sites allow it."""
    who = _who(request, scope)
    site_id = int(request.match_info["site_id"])
    who.require_site(site_id)
    return site_id


def _usable(site_id: int, site: SiteRow | None) -> SiteRow:
    """``site``, or 404 when unknown and 503 while two gateways claim it."""
    if site is None:
        raise NotFound(f"energy site {site_id} not found")
    if site.conflict_gateway is not None:
        raise ServiceUnavailable(
            f"site {site_id} is claimed by gateways {site.gateway_id} and {site.conflict_gateway}; "
            "an operator must resolve it (docs/hub.md)")
    return site


async def _site_tz(site: SiteRow) -> ZoneInfo:
    """The site's zone from its site_info (408 before the edge described the site)."""
    tz_name = (site.site_info or {}).get("installation_time_zone")
    if not isinstance(tz_name, str):
        raise DeviceOffline(f"site {site.site_id}: no site_info yet (its time zone is unknown)")
    return await asyncio.to_thread(zone, tz_name)


def _require_present(site: SiteRow) -> None:
    if not site.gateway_online:
        seen = "never" if site.presence_at is None else \
            datetime.fromtimestamp(site.presence_at, UTC).isoformat(timespec="seconds")
        raise GatewayAbsent(f"site {site.site_id}: gateway {site.gateway_id} is offline "
                            f"(last presence {seen})")


@routes.get("/api/1/products")
async def products(request: web.Request) -> web.Response:
    """Every site of every gateway the token can reach (live fields from the latest status)."""
    who = _who(request, READ_SCOPE)
    rows = await request.app[STORE].sites(None if who.sites is None else sorted(who.sites))
    entries = []
    for row in rows:
        if row.products is None or row.conflict_gateway is not None:
            continue
        entry = dict(row.products)
        live = row.live if row.gateway_online and row.live_offline is None else None
        for key in ("percentage_charged", "energy_left", "total_pack_energy"):
            entry[key] = None if live is None else live.get(key)
        entry["battery_power"] = None if live is None else live.get("battery_power")
        entries.append(entry)
    return answer(200, {"response": entries, "count": len(entries)})


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/live_status")
async def live_status(request: web.Request) -> web.Response:
    """The newest live status the site's gateway published; 408 as the edge would answer."""
    site = await _site(request, READ_SCOPE)
    _require_present(site)
    if site.live is None:
        raise DeviceOffline(site.live_offline or f"site {site.site_id}: no live status yet")
    return answer(200, {"response": site.live})


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/site_info")
async def site_info(request: web.Request) -> web.Response:
    """The site_info the site's gateway published (kept while it is offline)."""
    site = await _site(request, READ_SCOPE)
    if site.site_info is None:
        raise DeviceOffline(f"site {site.site_id}: no site_info yet (a device never reached)")
    return answer(200, {"response": site.site_info})


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/calendar_history")
async def calendar_history(request: web.Request) -> web.Response:
    """``kind=energy`` from the history rollups the gateways published (closed buckets only),
    ``kind=backup`` from the outages they published."""
    site = await _site(request, READ_SCOPE)
    query = dict(request.query)
    kind = query.get("kind")
    if kind not in {"energy", "backup"}:
        raise InvalidField(f"kind: must be 'energy' or 'backup' (got {kind!r})")
    tz = await _site_tz(site)
    store = request.app[STORE]
    try:
        window = await asyncio.to_thread(
            resolve_window, query.get("period"), query.get("start_date"), query.get("end_date"),
            query.get("time_zone"), site_tz=tz, now=datetime.now(UTC))
        if kind == "backup":
            # one more than an answer may list tells whether the window holds too many
            rows = await store.outages_started(
                site.site_id, None if window.start is None else window.start.timestamp(),
                window.end.timestamp(), limit=MAX_EVENTS + 1)
            events = [Outage(start=datetime.fromtimestamp(a, UTC),
                             end=None if b is None else datetime.fromtimestamp(b, UTC)) for a, b in rows]
            body = await asyncio.to_thread(lambda: to_json(BackupHistoryResponse.model_construct(
                response=backup_response(events, window))))
            return web.Response(body=body, content_type=JSON)
        first = await store.first_bucket(site.site_id)
        plan = await asyncio.to_thread(
            plan_energy, window, query.get("period") or "day",
            None if first is None else datetime.fromtimestamp(first, UTC))
    except HistoryQueryError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None
    sums = await store.energy_by_entry(site.site_id, [edge.timestamp() for edge in plan.edges])
    body = await asyncio.to_thread(lambda: to_json(EnergyHistoryResponse.model_construct(
        response=energy_body(plan, [FlowEnergy(*values) for values in sums], tz))))
    return web.Response(body=body, content_type=JSON)


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/telemetry_history")
async def telemetry_history(request: web.Request) -> web.Response:
    """``kind=charge``: the finished charging sessions the gateways published."""
    site = await _site(request, READ_SCOPE)
    start, end = await charge_window(request, await _site_tz(site))
    rows = await request.app[STORE].charge_sessions(
        site.site_id, None if start is None else start.timestamp(),
        None if end is None else end.timestamp(), limit=MAX_EVENTS + 1)
    try:
        listable(rows)
    except HistoryQueryError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None
    sessions = [ChargeSession(start=datetime.fromtimestamp(a, UTC), duration_s=d, energy_wh=e)
                for a, d, e in rows]
    body = await asyncio.to_thread(lambda: to_json(ChargeHistoryResponse.model_construct(
        response=charge_response(sessions))))
    return web.Response(body=body, content_type=JSON)


def _command_id(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return uuid.uuid4().hex
    if not _KEY.match(key):
        raise InvalidRequest(f"{IDEMPOTENCY_KEY}: 1 to 80 characters of A-Z a-z 0-9 . _ : -")
    return key


def _handler(command: Command) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        site_id = _site_id(request, COMMAND_SCOPE)  # 401/403/404 of the token before the body
        raw = await read_json(request)
        validate(command.model, raw)  # a 400 here costs no journal entry and no round trip
        return await run_command(request, site_id, command.name, raw)

    handle.__doc__ = command.summary
    return handle


async def run_command(request: web.Request, site_id: int, name: str, body: dict[str, Any]) -> web.Response:
    """Journal (with the site's owner and presence, one round trip) → publish to the owning
    gateway → wait for its outcome → answer with its status."""
    app = request.app
    store, waiters, section = app[STORE], app[WAITERS], app[CONFIG].hub
    who = request[PRINCIPAL]
    command_id = _command_id(request)
    timeout_s = section.command_timeout_s
    expires_at = time.time() + min(MAX_COMMAND_TTL_S, 3 * timeout_s)
    # Wait before asking: an outcome taken between the journal and the wait is not missed.
    future = waiters.wait(command_id)
    try:
        found, earlier = await store.journal(command_id, site_id, command=name, body=body,
                                             token_sub=who.sub, expires_at=expires_at)
        site = _usable(site_id, found)
        _require_present(site)  # nothing was journaled for an absent gateway
        if earlier is not None:
            if (earlier.site_id, earlier.command, earlier.body) != (site.site_id, name, body):
                raise KeyReused(f"{IDEMPOTENCY_KEY} {command_id} was used for another command")
            if earlier.status in UNSETTLED:
                # the edge did not settle it (restarted mid-command, device away): ask again;
                # the edge confirms it anew, or repeats its answer if a newer command came since
                await store.reopen(command_id, earlier.status)
                log.info("hub.command_resent", command_id=command_id, site_id=site.site_id,
                         earlier_status=earlier.status)
            elif earlier.status is not None and earlier.response is not None:
                log.info("hub.command_replayed", command_id=command_id, site_id=site.site_id)
                return answer(earlier.status, earlier.response)
            # still open: send it again (the edge applies an id once), then wait like the first
        message = CommandMessage(command_id=command_id, site_id=site.site_id, command=name,
                                 body=body, expires_at=expires_at)
        # The broker's acknowledgement is awaited beside the outcome, not before it: the message
        # is on the wire at once, and a refusal still answers 503 (the edge never had it).
        sending = asyncio.create_task(app[INGEST].publish_command(site.gateway_id, message))
        try:
            status, response = await _outcome(store, future, sending, command_id, timeout_s)
        except NotConnected as exc:
            raise ServiceUnavailable(f"{exc}; the command {command_id} is journaled: repeat it "
                                     f"with {IDEMPOTENCY_KEY}: {command_id}") from None
        finally:
            if not sending.done():
                sending.cancel()  # the outcome came first: the acknowledgement no longer matters
        if status is None or response is None:
            raise NoOutcome(
                f"site {site.site_id}: no outcome from gateway {site.gateway_id} within "
                f"{timeout_s:g} s; it is recorded when it arrives: repeat with "
                f"{IDEMPOTENCY_KEY}: {command_id} to read it")
    finally:
        waiters.forget(command_id, future)
        if not future.done():
            future.cancel()
    log.info("hub.command_answered", command_id=command_id, site_id=site.site_id, command=name,
             status=status, gateway_id=site.gateway_id)
    return answer(status, response)


async def _outcome(store: HubStore, future: asyncio.Future[Outcome], sending: asyncio.Task[None],
                   command_id: str, timeout_s: float) -> tuple[int | None, dict[str, Any] | None]:
    """The outcome as this replica takes it from the broker, or as found in the journal (one
    missed while this replica's broker session was down costs at most ``_RECHECK_S``);
    (None, None) after the wait. Raises ``NotConnected`` when the broker refused the command."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        pending: set[asyncio.Future[Any]] = {future} if sending.done() else {future, sending}
        await asyncio.wait(pending, timeout=min(left, _RECHECK_S), return_when=asyncio.FIRST_COMPLETED)
        if future.done():
            return future.result()
        if sending.done():
            sending.result()  # NotConnected: the edge never had the command
            continue
        done = await store.command(command_id)
        if done is not None and done.status is not None:
            return done.status, done.response
    return None, None


for _command in COMMANDS:
    routes.post(rf"/api/1/energy_sites/{{site_id:\d+}}/{_command.name}")(_handler(_command))


class _OwnerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway_id: str = Field(min_length=1, max_length=64)


@routes.post(r"/api/1/hub/sites/{site_id:\d+}/owner")
async def resolve_owner(request: web.Request) -> web.Response:
    """Settle a site two gateways claim (scope ``hub_admin``): ``{"gateway_id": ...}`` owns it."""
    site_id = _site_id(request, HUB_ADMIN_SCOPE)
    body = validate(_OwnerBody, await read_json(request))
    try:
        before = await request.app[STORE].resolve(site_id, body.gateway_id)
    except ValueError as exc:
        raise InvalidField(f"gateway_id: {exc}") from None
    if before is None:
        raise NotFound(f"energy site {site_id} not found")
    request.app[SITE_CACHE].forget(site_id)
    log.warning("hub.site_owner_resolved", site_id=site_id, owner=body.gateway_id,
                claimants=[g for g in before if g], token_sub=request[PRINCIPAL].sub)
    return answer(200, {"response": {"site_id": site_id, "gateway_id": body.gateway_id,
                                     "previous": {"owner": before[0], "conflict": before[1]}}})


@routes.get("/status")
async def status(_: web.Request) -> web.Response:
    """Liveness: the text ``ok``."""
    return web.Response(text="ok")


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Gateways (presence, sites), conflicts and this replica's broker link and counters."""
    store, ingest = request.app[STORE], request.app[INGEST]
    gateways = await store.gateways()
    return answer(200, {"response": {
        "replica": REPLICA,
        "broker_connected": ingest.connected.is_set(),
        "gateways": gateways,
        "connected_gateways": sum(1 for g in gateways if g["online"]),
        "conflicts": await store.conflicts(),
        "counters": dict(sorted(ingest.counters.items())),
    }})


def create_hub_app(config: HubConfig, *, jwt_secret: str | None = None) -> web.Application:
    """The hub application; PostgreSQL, Redis and the broker are connected when it starts."""
    app = web.Application(middlewares=[hub_middleware], handler_args={"auto_decompress": False})
    app[CONFIG] = config
    secret = jwt_secret or config.jwt_secret()
    add_redacted_secret(secret)
    app[VERIFIER] = TokenVerifier(secret)
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_backends)
    return app


_SWEEP_EVERY_S = 60.0  # journal entries nobody answered are closed this often (every replica)
_SWEPT_BODY = {"response": None, "error": "device did not confirm",
               "error_description": "no outcome came from the site's gateway before the command "
                                    "expired (the gateway drops an expired command unapplied); "
                                    "repeat it with the same Idempotency-Key to send it again"}


async def _sweep(store: HubStore) -> None:
    """Close journal entries whose command expired unanswered, as the 504 their client got."""
    while True:
        await asyncio.sleep(_SWEEP_EVERY_S)
        try:
            closed = await store.sweep(time.time() - _SWEEP_EVERY_S, 504, _SWEPT_BODY)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("hub.sweep_failed", error=str(exc))
            continue
        if closed:
            log.info("hub.commands_swept", commands=closed)


async def _backends(app: web.Application) -> AsyncIterator[None]:
    """PostgreSQL (migrated), Redis and the broker session, for the app's life."""
    section = app[CONFIG].hub
    pool = await connect(section.postgres_dsn)
    try:
        client = await connect_redis(section.redis_url)
    except BaseException:
        await pool.close()
        raise
    tasks: list[asyncio.Task[None]] = []
    try:
        store = app[STORE] = HubStore(pool)
        app[SITE_CACHE] = SiteCache(store)
        app[REDIS] = client
        app[LIMITER] = SharedLimiter(client, section.redis_prefix)
        waiters = app[WAITERS] = Waiters()
        ingest = app[INGEST] = Ingest(section, store, waiters)
        # the deny-list of `token revoke --config hub.yaml`, loaded before the first request
        async with watch_revocations(store, app[VERIFIER].set_revoked, clock=time.time,
                                     errors=(asyncpg.PostgresError, OSError)):
            tasks.append(asyncio.create_task(_sweep(store), name="hub-sweep"))
            tasks.append(asyncio.create_task(ingest.run(), name="hub-ingest"))
            log.info("hub.started", replica=REPLICA)
            yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("hub.task_failed", task=task.get_name())
        await client.aclose()
        await pool.close()
