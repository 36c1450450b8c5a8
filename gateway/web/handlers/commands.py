"""Command endpoints: validate the body, then run the site's verified command pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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

from gateway.core.errors import clip, echo
from gateway.core.tariff import TariffError, parse_tariff
from gateway.web.auth import COMMAND_SCOPE
from gateway.web.errors import InvalidField, InvalidRequest, UnsupportedBody, ok
from gateway.web.keys import site_for
from gateway.web.renderers.models import CommandOk, CommandResponse, EmptyStringResponse

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


# Content codings a body may carry: none. The gateway does not decompress (create_app turns
# aiohttp's auto-decompression off), so a compressed body is refused as such rather than failing
# later as malformed JSON; command bodies are a few dozen bytes.
_IDENTITY = frozenset({"", "identity"})
# RFC 8259 §8.1: JSON between systems is UTF-8; ASCII is a subset of it.
_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def body_decoding_error(content_encoding: str, charset: str | None) -> UnsupportedBody | None:
    """Why a body sent with these headers cannot be read as UTF-8 JSON, or None if it can."""
    codings = {c.strip().lower() for c in content_encoding.split(",")}
    if not codings <= _IDENTITY:
        return UnsupportedBody(
            f"Content-Encoding {echo(content_encoding)} is not supported: send the JSON body "
            "uncompressed")
    if charset is not None and charset.lower() not in _UTF8_CHARSETS:
        return UnsupportedBody(f"charset {echo(charset)} is not supported: JSON bodies are UTF-8")
    return None


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 ``invalid_request`` (415 if it can't be decoded)."""
    refusal = body_decoding_error(request.headers.get("Content-Encoding", ""), request.charset)
    if refusal is not None:
        raise refusal
    try:
        raw = await request.read()
    except web.RequestPayloadError:
        # aiohttp's text quotes parser internals; the framing is what the client got wrong
        raise InvalidRequest("the request body could not be read: its Content-Length or "
                             "chunked framing is malformed") from None
    if not raw.strip():
        raise InvalidRequest("the request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], body: dict[str, Any]) -> M:
    """Validate ``body`` against ``model``; 400 ``invalid_field`` naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "extra_forbidden":
            message = f"{clip(field)}: unknown field"  # the client's own key: quoted short
        elif first["type"] == "missing":
            message = f"{field}: required field is missing"
        else:
            message = f"{field}: {first['msg']} (got {echo(first.get('input'))})"
        raise InvalidField(message) from None


def _grid_import_export(body: GridImportExportBody) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if body.customer_preferred_export_rule is not None:
        changes["export_rule"] = body.customer_preferred_export_rule
    if body.disallow_charge_from_grid_with_solar_installed is not None:
        changes["grid_charging_allowed"] = not body.disallow_charge_from_grid_with_solar_installed
    return changes


def _time_of_use_settings(body: TouSettingsBody) -> dict[str, Any]:
    unknown = sorted(set(body.tou_settings) - {"tariff_content_v2"})
    if unknown:
        raise InvalidField(f"tou_settings.{clip(unknown[0])}: unknown field")
    if "tariff_content_v2" not in body.tou_settings:
        raise InvalidField("tou_settings.tariff_content_v2: required field is missing")
    try:
        return {"tariff": parse_tariff(body.tou_settings["tariff_content_v2"])}
    except TariffError as exc:
        raise InvalidField(f"{exc.field}: {exc.message}") from None


UPDATED = CommandResponse.model_construct(response=CommandOk.model_construct())
EMPTY_STRING = EmptyStringResponse.model_construct(response="")


@dataclass(frozen=True)
class Command:
    """One Fleet command: its path name, body model, the settings it changes, its answer."""

    name: str
    model: type[_Body]
    summary: str
    changes: Callable[[Any], dict[str, Any]]  # validated body -> SiteSettings fields
    answer: CommandResponse | EmptyStringResponse = UPDATED


COMMANDS: tuple[Command, ...] = (
    Command("backup", BackupBody, "Set the backup reserve %",
            lambda b: {"backup_reserve_pct": b.backup_reserve_percent}),
    Command("operation", OperationBody, "Set the operation mode",
            lambda b: {"operation_mode": b.default_real_mode}),
    Command("storm_mode", StormModeBody, "Enable or disable storm mode",
            lambda b: {"storm_mode_enabled": b.enabled}),
    # Tesla's service answers this one with {"response": ""} (docs/api.md "Envelopes and statuses")
    Command("grid_import_export", GridImportExportBody, "Export rule and grid charging",
            _grid_import_export, answer=EMPTY_STRING),
    Command("off_grid_vehicle_charging_reserve", OffGridReserveBody,
            "Off-grid EV charging reserve %",
            lambda b: {"off_grid_ev_reserve_pct": b.off_grid_vehicle_charging_reserve_percent}),
    Command("time_of_use_settings", TouSettingsBody,
            "Set the tariff (tariff_content_v2); it drives autonomous mode", _time_of_use_settings),
)


def _handler(command: Command) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        site = site_for(request, COMMAND_SCOPE)  # 401/403/404 before the body is even read
        raw = await read_json(request)
        changes = command.changes(validate(command.model, raw))
        await site.command(command.name, changes)
        return ok(command.answer)

    handle.__doc__ = command.summary
    return handle


for _command in COMMANDS:
    routes.post(rf"/api/1/energy_sites/{{site_id:\d+}}/{_command.name}")(_handler(_command))
