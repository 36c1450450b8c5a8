"""The OpenAPI 3 document of the gateway's API, built from the same pydantic models as the handlers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.web.handlers.commands import COMMANDS
from gateway.web.renderers.sites import VERSION

_ERROR = {"$ref": "#/components/schemas/Error"}
_NUMBER = {"type": "number"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _envelope(inner: dict[str, Any], **extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["response", *extra],
            "properties": {"response": inner, **extra}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "invalid field or request (the description names the field); nothing was changed",
        401: "missing, invalid or expired bearer token",
        403: "the token lacks the scope (`Unauthorized missing scopes`)",
        404: "unknown site, or a site the token does not name",
        405: "method not allowed",
        408: "a device of the site is offline",
        415: "the body has a Content-Encoding or a non-UTF-8 charset; send plain UTF-8 JSON",
        429: "rate limited; see Retry-After",
        503: "the site's devices are not usable",
        504: "the device did not confirm the command in time; the setting is kept",
        540: "the device rejected the command",
    }
    out = {str(s): _json(_ERROR, texts[s]) for s in statuses}
    if 401 in statuses:  # RFC 6750 challenge
        out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if 429 in statuses:
        out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return out


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


_SITE_ID = {"name": "site_id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1}, "description": "energy_site_id"}

_LIVE_STATUS = {
    "type": "object",
    "required": ["solar_power", "battery_power", "grid_power", "load_power", "grid_status",
                 "island_status", "storm_mode_active", "timestamp", "wall_connectors"],
    "properties": {
        "solar_power": _NUMBER, "battery_power": _NUMBER, "grid_power": _NUMBER,
        "load_power": _NUMBER, "generator_power": _NUMBER, "grid_services_power": _NUMBER,
        "percentage_charged": _NUMBER, "energy_left": _NUMBER, "total_pack_energy": _NUMBER,
        "backup_capable": {"type": "boolean"}, "grid_services_active": {"type": "boolean"},
        "grid_status": {"type": "string", "enum": ["Active", "Inactive", "Unknown"]},
        "island_status": {"type": "string", "enum": [
            "on_grid", "off_grid", "off_grid_intentional", "off_grid_unintentional",
            "island_status_unknown"]},
        "storm_mode_active": {"type": "boolean"},
        "timestamp": {"type": "string", "format": "date-time"},
        "wall_connectors": {"type": "array", "items": {"type": "object"}},
    },
}

_SITE_INFO = {
    "type": "object",
    "required": ["id", "site_name", "backup_reserve_percent", "default_real_mode",
                 "installation_time_zone", "user_settings", "components",
                 "off_grid_vehicle_charging_reserve_percent"],
    "properties": {
        "id": {"type": "string"}, "site_name": {"type": "string"},
        "backup_reserve_percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "default_real_mode": {"type": "string",
                              "enum": ["self_consumption", "autonomous", "backup"]},
        "installation_time_zone": {"type": "string"},
        "user_settings": {"type": "object",
                          "properties": {"storm_mode_enabled": {"type": "boolean"}}},
        "components": {"type": "object", "required": ["battery", "solar",
                                                       "customer_preferred_export_rule"],
                       "properties": {"battery": {"type": "boolean"}, "solar": {"type": "boolean"},
                                      "customer_preferred_export_rule": {
                                          "type": "string",
                                          "enum": ["battery_ok", "pv_only", "never"]}}},
        "off_grid_vehicle_charging_reserve_percent": {"type": "integer"},
        "tariff_content_v2": {"type": "object"},
    },
}

def build_openapi() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    read_errors = _errors(400, 401, 403, 404, 429)
    paths: dict[str, Any] = {
        "/status": {"get": {
            "operationId": "status", "summary": "Liveness (no auth)", "security": [],
            "responses": {"200": {"description": "ok", "content": {
                "text/plain": {"schema": {"type": "string", "enum": ["ok"]}}}}}}},
        "/health": {"get": {
            "operationId": "health", "summary": "Per-site and per-device connectivity (no auth)",
            "security": [],
            "responses": {"200": _json({"type": "object", "required": ["status", "sites"],
                                        "properties": {"status": {"type": "string"},
                                                       "sites": {"type": "object"}}}, "health")}}},
        "/api/1/products": {"get": {
            "operationId": "products", "summary": "Energy sites the token can reach",
            "responses": {"200": _json(_envelope({"type": "array", "items": {
                "type": "object", "required": ["energy_site_id", "components"]}}, count={
                    "type": "integer"}), "energy sites"), **_errors(401, 403, 429)}}},
        "/api/1/energy_sites/{site_id}/live_status": {"get": {
            "operationId": "live_status", "parameters": [_SITE_ID],
            "responses": {"200": _json(_envelope(_LIVE_STATUS), "live status"),
                          **_errors(401, 403, 404, 408, 429)}}},
        "/api/1/energy_sites/{site_id}/site_info": {"get": {
            "operationId": "site_info", "parameters": [_SITE_ID],
            "responses": {"200": _json(_envelope(_SITE_INFO), "site info"),
                          **_errors(401, 403, 404, 408, 429)}}},
        "/api/1/energy_sites/{site_id}/calendar_history": {"get": {
            "operationId": "calendar_history",
            "parameters": [
                _SITE_ID,
                {"name": "kind", "in": "query", "required": True,
                 "schema": {"type": "string", "enum": ["energy", "backup"]}},
                {"name": "period", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["day", "week", "month", "year", "lifetime"]}},
                {"name": "start_date", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "end_date", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "time_zone", "in": "query", "required": False,
                 "schema": {"type": "string"}},
            ],
            "responses": {"200": _json(_envelope({"type": "object"}), "history"), **read_errors}}},
        "/api/1/energy_sites/{site_id}/telemetry_history": {"get": {
            "operationId": "telemetry_history",
            "parameters": [
                _SITE_ID,
                {"name": "kind", "in": "query", "required": True,
                 "schema": {"type": "string", "enum": ["charge"]}},
                {"name": "start_date", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "end_date", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "time_zone", "in": "query", "required": False,
                 "schema": {"type": "string"}},
            ],
            "responses": {"200": _json(_envelope({"type": "object", "required": [
                "charge_history"], "properties": {"charge_history": {"type": "array"}}}),
                "charge sessions"), **read_errors}}},
    }
    for command in COMMANDS:
        name, model, summary = command.name, command.model, command.summary
        ok_inner: dict[str, Any] = (
            {"type": "string"} if isinstance(command.answer, str) else
            {"type": "object", "required": ["code", "message"],
             "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}})
        paths[f"/api/1/energy_sites/{{site_id}}/{name}"] = {"post": {
            "operationId": name, "summary": summary, "parameters": [_SITE_ID],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _model_schema(model)}}},
            "responses": {"200": _json(_envelope(ok_inner), "confirmed on the device"),
                          **_errors(400, 401, 403, 404, 408, 415, 429, 503, 504, 540)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "energy-gateway", "version": VERSION,
                 "description": "Tesla Fleet API energy_sites dialect served from local devices."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {"Error": {
                "type": "object", "required": ["response", "error", "error_description"],
                "properties": {"response": {"type": "null"},
                               "error": {"type": "string"},
                               "error_description": {"type": "string"}}}},
        },
    }
