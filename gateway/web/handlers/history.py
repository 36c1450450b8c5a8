"""History endpoints: calendar_history (energy, backup) and telemetry_history (charge)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel

from gateway.core.history import HistoryQueryError, parse_datetime
from gateway.web.auth import READ_SCOPE
from gateway.web.errors import JSON, InvalidField, ok, to_json
from gateway.web.keys import HISTORY, site_for
from gateway.web.renderers.history import backup_response, charge_response, energy_body
from gateway.web.renderers.models import (
    BackupHistoryResponse,
    ChargeHistoryResponse,
    EnergyHistoryResponse,
)

routes = web.RouteTableDef()


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/calendar_history")
async def calendar_history(request: web.Request) -> web.Response:
    """Energy buckets (``kind=energy``) or grid outage events (``kind=backup``)."""
    site = site_for(request, READ_SCOPE)
    query = dict(request.query)
    kind = query.get("kind")
    service = request.app[HISTORY]
    try:
        if kind == "energy":
            plan, sums = await service.energy(site, query)
            return await _answer(lambda: EnergyHistoryResponse.model_construct(
                response=energy_body(plan, sums, site.tz)))
        if kind == "backup":
            events, window = await service.backup(site, query)
            storm = await site.storm.episodes(window.start, window.end)
            return await _answer(lambda: BackupHistoryResponse.model_construct(
                response=backup_response(events, window, storm=storm)))
    except HistoryQueryError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None
    raise InvalidField(f"kind: must be 'energy' or 'backup' (got {kind!r})")


async def _answer(render: Callable[[], BaseModel]) -> web.Response:
    """HTTP 200 with the rendered answer, built and serialised in a worker thread (an answer can
    be megabytes: 10,000 entries)."""
    body = await asyncio.to_thread(lambda: to_json(render()))
    return web.Response(body=body, content_type=JSON)


async def charge_window(request: web.Request, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``kind=charge``'s ``start_date`` and ``end_date`` (each optional) in the site's zone;
    400 for another kind or a bad date (the edge and the hub alike)."""
    kind = request.query.get("kind")
    if kind != "charge":
        raise InvalidField(f"kind: must be 'charge' (got {kind!r})")
    bounds: list[datetime | None] = []
    for name in ("start_date", "end_date"):
        value = request.query.get(name)
        try:
            bounds.append(None if not value else await asyncio.to_thread(
                parse_datetime, value, name, tz))
        except HistoryQueryError as exc:
            raise InvalidField(f"{exc.field}: {exc.message}") from None
    return bounds[0], bounds[1]


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/telemetry_history")
async def telemetry_history(request: web.Request) -> web.Response:
    """Wall-connector charge sessions (``kind=charge``)."""
    site = site_for(request, READ_SCOPE)
    start, end = await charge_window(request, site.tz)
    try:
        sessions = await request.app[HISTORY].charge(site, start, end)
    except HistoryQueryError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None
    return ok(ChargeHistoryResponse.model_construct(response=charge_response(sessions)))
