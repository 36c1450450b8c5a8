"""The OCPP 1.6J central system: a WebSocket listener for charge points and the charging control.

aiohttp serves the WebSockets (the library's ``websockets`` server is the other choice): the
gateway already runs aiohttp, so the listener shares its event loop, logging, shutdown and test
fixtures, and HTTP Basic authentication (OCPP 1.6 security profile 1) is checked on the upgrade
request before any frame; a small adapter gives the ``ocpp`` library's ``ChargePoint`` the
``recv``/``send`` it reads and writes (docs/chargers.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import sqlite3
import time
from collections.abc import Mapping
from datetime import datetime

import structlog
from aiohttp import WSMsgType, web

from gateway.core.charging.rules import combined_limit, follow_surplus, outage_limit, surplus_w
from gateway.core.config import ChargePointConfig, OcppSection
from gateway.core.errors import SiteOffline
from gateway.core.history.charging import ChargeSession
from gateway.core.reading import SiteReading
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.ocpp.link import ChargerLink
from gateway.runtime.ocpp.state import ChargerState
from gateway.runtime.site import Site
from gateway.runtime.storage import StorageError
from gateway.runtime.storage.charging import ChargeStore

log = structlog.get_logger("gateway.runtime.ocpp")
SUBPROTOCOL = "ocpp1.6"
MAX_FRAME_BYTES = 64 * 1024
_ID_SHOWN = 64  # a refused id is logged cut to this many characters


class _Closed(Exception):
    """The WebSocket closed."""


class _WebSocketConnection:
    """aiohttp's WebSocketResponse as the ocpp library's connection (text frames)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def recv(self) -> str:
        msg = await self._ws.receive()
        if msg.type is WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is WSMsgType.BINARY:  # OCPP-J frames are text; answered as malformed
            return "<binary frame>"
        raise _Closed

    async def send(self, message: str) -> None:
        if self._ws.closed:
            raise _Closed
        await self._ws.send_str(message)


class CentralSystem:
    """Charge points of every site: their links, state, sessions and charging limits.

    ``start`` binds ``ws://host:port/{charge_point_id}``; ``control_loop`` recomputes each
    charger's limit from its site (off-grid reserve, solar surplus) every ``control_interval_s``.
    """

    def __init__(self, section: OcppSection, sites: Mapping[int, Site], store: ChargeStore, *,
                 clock: Clock = utc_now) -> None:
        self.section = section
        self.sites = sites
        self.store = store
        self.clock = clock
        self.chargers: dict[str, ChargerState] = {
            c.id: ChargerState(c, site.id, meter_stale_s=section.meter_stale_s)
            for site in sites.values() for c in site.config.chargers}
        self.links: dict[str, ChargerLink] = {}
        self.port: int | None = None
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self._sockets: dict[str, web.WebSocketResponse] = {}  # one per charge point

    def of_site(self, site_id: int) -> list[ChargerState]:
        """The site's chargers, in configuration order."""
        return [c for c in self.chargers.values() if c.site_id == site_id]

    async def start(self) -> None:
        """Bind the listener (port 0: an ephemeral port, read back into ``port``)."""
        app = web.Application()
        app.router.add_get("/{charge_point_id}", self._accept)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.section.host, self.section.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("ocpp.listening", host=self.section.host, port=self.port,
                 charge_points=sorted(self.chargers))

    async def stop(self) -> None:
        """Close every link and the listener."""
        for ws in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ---- connections ----------------------------------------------------------------------

    def _refuse(self, request: web.Request, cp_id: str, reason: str,
                answer: type[web.HTTPException]) -> web.HTTPException:
        self.refused += 1
        log.warning("ocpp.refused", charge_point_id=cp_id[:_ID_SHOWN], reason=reason,
                    peer=request.remote)
        if answer is web.HTTPUnauthorized:
            return web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="ocpp"'})
        return answer()

    def _check(self, request: web.Request, cp_id: str) -> ChargerState:
        state = self.chargers.get(cp_id)
        if state is None:
            raise self._refuse(request, cp_id, "unknown charge point id", web.HTTPNotFound)
        password = state.config.password
        if password is not None and not _basic_ok(request.headers.get("Authorization"),
                                                  cp_id, password):
            raise self._refuse(request, cp_id, "missing or wrong password", web.HTTPUnauthorized)
        offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
        if SUBPROTOCOL not in offered:
            raise self._refuse(request, cp_id, "no ocpp1.6 subprotocol offered",
                               web.HTTPBadRequest)
        return state

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        cp_id = request.match_info["charge_point_id"]
        state = self._check(request, cp_id)
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=MAX_FRAME_BYTES,
                                   heartbeat=None)
        await ws.prepare(request)
        old = self._sockets.get(cp_id)
        if old is not None:  # the charge point reconnected: its old socket is dead (one each)
            log.info("ocpp.replaced", charge_point_id=cp_id)
            with contextlib.suppress(Exception):
                await old.close()
        link = ChargerLink(state, _WebSocketConnection(ws), self.store, self.clock,
                           heartbeat_s=self.section.heartbeat_interval_s)
        self.links[cp_id] = link
        self._sockets[cp_id] = ws
        try:
            await self._restore(state)
        except (StorageError, sqlite3.Error) as exc:  # the link still works; stops reconcile
            log.warning("ocpp.restore_failed", charge_point_id=cp_id, error=str(exc))
        state.connected = True
        log.info("ocpp.connected", site_id=state.site_id, charge_point_id=cp_id)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._serve(link))
                tasks.create_task(self._configure(link))
        except* (_Closed, ConnectionError):
            pass
        finally:
            if self._sockets.get(cp_id) is ws:
                del self._sockets[cp_id]
            if self.links.get(cp_id) is link:
                del self.links[cp_id]
                state.connected = False
                for connector in state.connectors.values():
                    connector.power_w = 0.0
            log.info("ocpp.disconnected", site_id=state.site_id, charge_point_id=cp_id)
            await ws.close()
        return ws

    @staticmethod
    async def _serve(link: ChargerLink) -> None:
        await link.start()

    async def _configure(self, link: ChargerLink) -> None:
        """After the boot: the TxDefaultProfile a charge point keeps when the gateway is gone."""
        await link.booted.wait()
        cfg = link.state.config
        with contextlib.suppress(TimeoutError):
            await link.set_profile(0, cfg.safe_current_a, purpose="TxDefaultProfile",
                                   phases=cfg.phases)

    async def _restore(self, state: ChargerState) -> None:
        """Open transactions from storage (a gateway restart): their connectors carry them."""
        for tx in await self.store.open_transactions(state.id):
            connector = state.connectors.get(tx.connector_id)
            if connector is not None and connector.transaction_id is None:
                connector.transaction_id = tx.id

    # ---- control --------------------------------------------------------------------------

    async def control_loop(self) -> None:
        """Recompute and send each charging charger's limit, forever."""
        while True:
            await asyncio.sleep(self.section.control_interval_s)
            try:
                await self.control_once()
            except Exception:  # one bad pass must not end charging control for good
                log.exception("ocpp.control_failed")

    async def control_once(self) -> None:
        """One pass over every connected charger with a transaction."""
        now = self.clock()
        for cp_id, link in list(self.links.items()):
            state = link.state
            site = self.sites[state.site_id]
            try:
                reading = site.reading()
            except SiteOffline:
                continue  # nothing known to decide on: the last profile (or default) holds
            limit = self.limit_for(state, site, reading, now,
                                   follow_solar=state.settled(site.telemetry_version))
            for n, connector in state.connectors.items():
                if connector.transaction_id is None:
                    continue
                lease = self.section.profile_lease_s
                due = time.monotonic() - connector.limit_sent_at > lease / 2
                if connector.limit_a is not None and abs(connector.limit_a - limit) < 0.5 \
                        and not due:
                    continue
                try:
                    accepted = await link.set_profile(
                        n, limit, purpose="TxProfile", transaction_id=connector.transaction_id,
                        duration_s=lease, phases=state.config.phases)
                except (TimeoutError, _Closed, ConnectionError) as exc:
                    log.warning("ocpp.profile_not_sent", charge_point_id=cp_id, error=repr(exc))
                    continue
                if accepted:
                    if connector.limit_a is None or abs(connector.limit_a - limit) >= 0.5:
                        state.changed_at = time.monotonic()
                        state.changed_version = site.telemetry_version
                    connector.limit_a = limit
                    connector.limit_sent_at = time.monotonic()

    def limit_for(self, state: ChargerState, site: Site, reading: SiteReading,
                  now: datetime, *, follow_solar: bool = True) -> float:
        """The current (A) this charger may draw now: the off-grid reserve and, in solar mode,
        the surplus (docs/chargers.md "What limits a charger"). ``follow_solar`` False keeps the
        solar rule's last answer (the meters have not shown the last change yet); the reserve
        rule always decides afresh."""
        cfg: ChargePointConfig = state.config
        rating = cfg.rating
        reserve, state.reserve_stopped = outage_limit(
            grid_up=reading.grid_up is not False, soc_pct=reading.soc_pct,
            reserve_pct=site.settings.off_grid_ev_reserve_pct, stopped=state.reserve_stopped,
            rating=rating, rule=cfg.reserve_rule)
        solar = None
        if cfg.mode == "solar" and site.settings.operation_mode != "backup" and not follow_solar:
            solar = state.solar_limit_a
        elif cfg.mode == "solar" and site.settings.operation_mode != "backup":
            available = surplus_w(ev_w=state.power_w, grid_w=reading.grid_w,
                                  battery_w=reading.battery_w, soc_pct=reading.soc_pct,
                                  battery_priority_pct=cfg.solar_battery_priority_pct)
            solar, state.solar = follow_surplus(available, state.solar, rating, cfg.solar_rule,
                                                now)
            state.solar_limit_a = solar
            log.debug("ocpp.surplus", charge_point_id=state.id, available_w=round(available),
                      ev_w=round(state.power_w), grid_w=round(reading.grid_w),
                      battery_w=round(reading.battery_w), limit_a=solar)
        return combined_limit(reserve, solar, rating=rating)

    # ---- commands and history -------------------------------------------------------------

    def link(self, cp_id: str) -> ChargerLink:
        """The live link of a charge point (KeyError when it is not connected)."""
        return self.links[cp_id]

    async def sessions(self, site_id: int, start: datetime | None, end: datetime | None, *,
                       limit: int) -> list[ChargeSession]:
        """Finished charging sessions of a site starting in the window, oldest first."""
        return await self.store.sessions(site_id, start, end, limit=limit)


def _basic_ok(header: str | None, user: str, password: str) -> bool:
    """Whether an ``Authorization: Basic`` header carries this user and password."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    name, _, given = decoded.partition(":")
    return hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(
        given.encode(), password.encode())


