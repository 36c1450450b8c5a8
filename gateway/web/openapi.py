"""The OpenAPI 3 document of the gateway's API, every body schema taken from the pydantic models.

Response schemas come from the models the renderers build (gateway.web.renderers.models, the
error envelope of gateway.web.errors), request schemas from the command body models the handlers
validate with; pydantic's ``$defs`` become ``components/schemas``. Only the paths, parameters and
status descriptions are written here.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.core.history import PERIODS
from gateway.web.errors import ErrorEnvelope
from gateway.web.handlers.commands import COMMANDS
from gateway.web.handlers.storm import RaiseStormAlertBody
from gateway.web.renderers.models import (
    BackupHistoryResponse,
    ChargeHistoryResponse,
    EnergyHistoryResponse,
    GatewayStatusResponse,
    Health,
    LiveStatusResponse,
    ProductsResponse,
    SiteInfoResponse,
    StormStatusResponse,
)
from gateway.web.renderers.plan import PlanResponse
from gateway.web.renderers.sites import VERSION

REF_TEMPLATE: Final = "#/components/schemas/{model}"

#: The models of each read operation's 200 body (calendar_history: one of them, by ``kind``).
READ_RESPONSES: Final[dict[str, tuple[type[BaseModel], ...]]] = {
    "health": (Health,),
    "products": (ProductsResponse,),
    "live_status": (LiveStatusResponse,),
    "site_info": (SiteInfoResponse,),
    "calendar_history": (EnergyHistoryResponse, BackupHistoryResponse),
    "telemetry_history": (ChargeHistoryResponse,),
    "storm_alert": (StormStatusResponse,),
    "gateway_status": (GatewayStatusResponse,),
    "plan": (PlanResponse,),
}


def response_models() -> dict[str, tuple[type[BaseModel], ...]]:
    """operationId -> the models of its 200 body, for every operation that answers JSON."""
    return {**READ_RESPONSES, **{c.name: (type(c.answer),) for c in COMMANDS}}


def ref(model: type[BaseModel]) -> dict[str, str]:
    """The document's reference to ``model``'s schema."""
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def drop_property_titles(schema: Any) -> None:
    """Remove the title pydantic gives every property (its name, shown anyway) from ``schema``."""
    if isinstance(schema, dict):
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        for value in schema.values():
            drop_property_titles(value)
    elif isinstance(schema, list):
        for value in schema:
            drop_property_titles(value)


def component_schemas() -> dict[str, Any]:
    """``components/schemas``: every response, error and request body model and what they use."""
    keys: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []
    answers: list[type[BaseModel]] = [m for ms in response_models().values() for m in ms]
    answers.append(ErrorEnvelope)
    for model in answers:
        if (model, "serialization") not in keys:
            keys.append((model, "serialization"))
    keys += [(c.model, "validation") for c in COMMANDS]
    keys.append((RaiseStormAlertBody, "validation"))
    by_key, document = models_json_schema(keys, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = document.get("$defs", {})
    for model, mode in keys:  # each model is its own component, named after its class
        if by_key[(model, mode)] != ref(model):
            raise AssertionError(f"{model.__name__} was not given its own component")
    drop_property_titles(schemas)
    return schemas


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ok(operation: str, description: str) -> dict[str, Any]:
    models = response_models()[operation]
    schema = ref(models[0]) if len(models) == 1 else {"oneOf": [ref(m) for m in models]}
    return {"200": _json(schema, description)}


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
    out = {str(s): _json(ref(ErrorEnvelope), texts[s]) for s in statuses}
    if 401 in statuses:  # RFC 6750 challenge
        out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if 429 in statuses:
        out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return out


_SITE_ID = {"name": "site_id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1}, "description": "energy_site_id"}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_WINDOW = [
    _query("start_date", {"type": "string", "format": "date-time"}),
    _query("end_date", {"type": "string", "format": "date-time"}),
    _query("time_zone", {"type": "string"}),
]


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
            "security": [], "responses": _ok("health", "health")}},
        "/api/1/products": {"get": {
            "operationId": "products", "summary": "Energy sites the token can reach",
            "responses": {**_ok("products", "energy sites"), **_errors(401, 403, 429)}}},
        "/api/1/energy_sites/{site_id}/live_status": {"get": {
            "operationId": "live_status", "parameters": [_SITE_ID],
            "responses": {**_ok("live_status", "live status"),
                          **_errors(401, 403, 404, 408, 429)}}},
        "/api/1/energy_sites/{site_id}/site_info": {"get": {
            "operationId": "site_info", "parameters": [_SITE_ID],
            "responses": {**_ok("site_info", "site info"), **_errors(401, 403, 404, 408, 429)}}},
        "/api/1/energy_sites/{site_id}/calendar_history": {"get": {
            "operationId": "calendar_history",
            "parameters": [
                _SITE_ID,
                _query("kind", {"type": "string", "enum": ["energy", "backup"]}, required=True),
                _query("period", {"type": "string", "enum": list(PERIODS)}),
                *_WINDOW,
            ],
            "responses": {**_ok("calendar_history", "energy (kind=energy) or outages "
                                "(kind=backup)"), **read_errors}}},
        "/api/1/energy_sites/{site_id}/telemetry_history": {"get": {
            "operationId": "telemetry_history",
            "parameters": [
                _SITE_ID,
                _query("kind", {"type": "string", "enum": ["charge"]}, required=True),
                *_WINDOW,
            ],
            "responses": {**_ok("telemetry_history", "charge sessions"), **read_errors}}},
        "/api/1/energy_sites/{site_id}/gateway_status": {"get": {
            "operationId": "gateway_status",
            "summary": "Devices, alerts and recent commands (the status page at /ui)",
            "parameters": [
                _SITE_ID,
                _query("journal_limit", {"type": "integer", "minimum": 0, "maximum": 100}),
            ],
            "responses": {**_ok("gateway_status", "devices, alerts, journal"), **read_errors}}},
        "/api/1/energy_sites/{site_id}/plan": {"get": {
            "operationId": "plan", "summary": "The autonomous planner's plan (not a Fleet path)",
            "parameters": [_SITE_ID],
            "responses": {**_ok("plan", "the plan"), **_errors(401, 403, 404, 429)}}},
    }
    storm_ok = _ok("storm_alert", "the site's storm alerts and sources")
    paths["/api/1/energy_sites/{site_id}/storm_alert"] = {
        "get": {"operationId": "storm_alert", "parameters": [_SITE_ID],
                "summary": "Storm watch: active alerts and sources (not Fleet)",
                "responses": {**storm_ok, **_errors(401, 403, 404, 429)}},
        "post": {"operationId": "raise_storm_alert", "parameters": [_SITE_ID],
                 "summary": "Raise the admin storm alert (scope storm_admin; not Fleet)",
                 "requestBody": {"required": True, "content": {
                     "application/json": {"schema": ref(RaiseStormAlertBody)}}},
                 "responses": {**storm_ok, **_errors(400, 401, 403, 404, 415, 429)}},
        "delete": {"operationId": "clear_storm_alert", "parameters": [_SITE_ID],
                   "summary": "Clear the admin storm alert (scope storm_admin; not Fleet)",
                   "responses": {**storm_ok, **_errors(401, 403, 404, 429)}},
    }
    for command in COMMANDS:
        name = command.name
        paths[f"/api/1/energy_sites/{{site_id}}/{name}"] = {"post": {
            "operationId": name, "summary": command.summary, "parameters": [_SITE_ID],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": ref(command.model)}}},
            "responses": {**_ok(name, "confirmed on the device"),
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
            "schemas": component_schemas(),
        },
    }
