"""Command endpoints: validate the body, then run the site's verified command pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import annotated_types
import orjson
from aiohttp import web
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictInt,
    ValidationError,
)

from gateway.api.keys import site_for
from gateway.auth import COMMAND_SCOPE
from gateway.fleet import COMMAND_OK, InvalidField, InvalidRequest, ok
from gateway.settings import SiteSettings
from gateway.tariff import TariffError, parse_tariff

routes = web.RouteTableDef()


def _whole_number(value: object) -> object:
    # JSON Schema counts 36.0 as an integer; strings and booleans are not numbers here.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Percent = Annotated[StrictInt, annotated_types.Ge(0), annotated_types.Le(100),
                    BeforeValidator(_whole_number)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupBody(_Body):
    backup_reserve_percent: Percent


class OperationBody(_Body):
    default_real_mode: Literal["self_consumption", "autonomous", "backup"]


class StormModeBody(_Body):
    enabled: StrictBool


class GridImportExportBody(_Body):
    disallow_charge_from_grid_with_solar_installed: StrictBool | None = None
    customer_preferred_export_rule: Literal["battery_ok", "pv_only", "never"] | None = None


class OffGridReserveBody(_Body):
    off_grid_vehicle_charging_reserve_percent: Percent


class TouSettingsBody(_Body):
    tou_settings: dict[str, Any]


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 ``invalid_request``."""
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest("the request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


M = TypeVar("M", bound=_Body)


def validate(model: type[M], body: dict[str, Any]) -> M:
    """Validate ``body`` against ``model``; 400 ``invalid_field`` naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "extra_forbidden":
            message = f"{field}: unknown field"
        elif first["type"] == "missing":
            message = f"{field}: required field is missing"
        else:
            message = f"{field}: {first['msg']} (got {first.get('input')!r})"
        raise InvalidField(message) from None


Change = Callable[[SiteSettings], SiteSettings]


def _replace(**changes: Any) -> Change:
    return lambda s: dataclasses.replace(s, **changes)


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/backup")
async def backup(request: web.Request) -> web.Response:
    """Set the backup reserve %."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(BackupBody, raw)
    await site.command("backup", raw, _replace(backup_reserve_pct=body.backup_reserve_percent))
    return ok(COMMAND_OK)


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/operation")
async def operation(request: web.Request) -> web.Response:
    """Set the operation mode."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(OperationBody, raw)
    await site.command("operation", raw, _replace(operation_mode=body.default_real_mode))
    return ok(COMMAND_OK)


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/storm_mode")
async def storm_mode(request: web.Request) -> web.Response:
    """Enable or disable storm mode."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(StormModeBody, raw)
    await site.command("storm_mode", raw, _replace(storm_mode_enabled=body.enabled))
    return ok(COMMAND_OK)


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/grid_import_export")
async def grid_import_export(request: web.Request) -> web.Response:
    """Set the export rule and/or grid charging; answers ``{"response": ""}`` like production."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(GridImportExportBody, raw)
    changes: dict[str, Any] = {}
    if body.customer_preferred_export_rule is not None:
        changes["export_rule"] = body.customer_preferred_export_rule
    if body.disallow_charge_from_grid_with_solar_installed is not None:
        changes["grid_charging_allowed"] = not body.disallow_charge_from_grid_with_solar_installed
    await site.command("grid_import_export", raw, _replace(**changes))
    return ok("")


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/off_grid_vehicle_charging_reserve")
async def off_grid_vehicle_charging_reserve(request: web.Request) -> web.Response:
    """Set the off-grid EV charging reserve %."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(OffGridReserveBody, raw)
    await site.command("off_grid_vehicle_charging_reserve", raw,
               _replace(off_grid_ev_reserve_pct=body.off_grid_vehicle_charging_reserve_percent))
    return ok(COMMAND_OK)


@routes.post(r"/api/1/energy_sites/{site_id:\d+}/time_of_use_settings")
async def time_of_use_settings(request: web.Request) -> web.Response:
    """Validate and store a tariff_content_v2; it drives ``autonomous`` mode."""
    site = site_for(request, COMMAND_SCOPE)
    raw = await read_json(request)
    body = validate(TouSettingsBody, raw)
    unknown = sorted(set(body.tou_settings) - {"tariff_content_v2"})
    if unknown:
        raise InvalidField(f"tou_settings.{unknown[0]}: unknown field")
    if "tariff_content_v2" not in body.tou_settings:
        raise InvalidField("tou_settings.tariff_content_v2: required field is missing")
    try:
        tariff = parse_tariff(body.tou_settings["tariff_content_v2"])
    except TariffError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None
    await site.command("time_of_use_settings", raw, _replace(tariff=tariff))
    return ok(COMMAND_OK)
