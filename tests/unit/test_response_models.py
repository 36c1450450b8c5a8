"""Every body is built from its pydantic model, and /openapi.json describes exactly those models."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from drivers.sunspec.driver import SunSpecDriver, SunSpecOptions
from drivers.transport import Transports
from gateway.core.config import DeviceConfig, SiteConfig
from gateway.core.history import (
    Bucket,
    ChargeSession,
    FlowEnergy,
    Outage,
    bucket_start,
    resolve_window,
)
from gateway.runtime.devices import DeviceState
from gateway.web.errors import ErrorEnvelope, FleetError, InvalidField, error_response, to_json
from gateway.web.handlers.commands import COMMANDS
from gateway.web.openapi import (
    REF_TEMPLATE,
    build_openapi,
    drop_property_titles,
    ref,
    response_models,
)
from gateway.web.renderers.health import device_health
from gateway.web.renderers.history import backup_response, charge_response, energy_response
from gateway.web.renderers.models import (
    BackupHistoryResponse,
    ChargeHistoryResponse,
    CommandResponse,
    DeviceHealth,
    EmptyStringResponse,
    EnergyHistoryResponse,
    LiveStatusResponse,
)
from tests.bodies import assert_body_is
from tests.samples import history_window

DOCUMENT = build_openapi()
SCHEMAS = DOCUMENT["components"]["schemas"]
NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)


def operations() -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in DOCUMENT["paths"].values() for op in item.values()}


def own_schemas(model: type[BaseModel], mode: Any) -> dict[str, Any]:
    """``model``'s schema as pydantic makes it, split into components: name -> schema."""
    schema = model.model_json_schema(mode=mode, ref_template=REF_TEMPLATE)
    parts = {model.__name__: schema, **schema.pop("$defs", {})}
    drop_property_titles(parts)
    return parts


def test_every_json_body_of_the_document_is_a_model_component() -> None:
    # No schema written by hand for a body: each is a reference to a model's component.
    for name, op in operations().items():
        bodies = [r["content"] for r in op["responses"].values() if "content" in r]
        bodies += [op["requestBody"]["content"]] if "requestBody" in op else []
        for content in bodies:
            if "application/json" not in content:
                assert name == "status"  # the text/plain liveness answer
                continue
            schema = content["application/json"]["schema"]
            refs = schema.get("oneOf", [schema])
            assert all(set(r) == {"$ref"} and r["$ref"].removeprefix(
                "#/components/schemas/") in SCHEMAS for r in refs), (name, schema)


@pytest.mark.parametrize("operation", sorted(response_models()))
def test_each_200_schema_is_the_model_the_renderer_builds(operation: str) -> None:
    models = response_models()[operation]
    schema = operations()[operation]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == (ref(models[0]) if len(models) == 1 else {"oneOf": [ref(m) for m in models]})
    for model in models:
        for name, part in own_schemas(model, "serialization").items():
            assert SCHEMAS[name] == part, name


def test_request_bodies_and_errors_are_the_handlers_models() -> None:
    ops = operations()
    for command in COMMANDS:
        op = ops[command.name]
        assert op["requestBody"]["content"]["application/json"]["schema"] == ref(command.model)
        for name, part in own_schemas(command.model, "validation").items():
            assert SCHEMAS[name] == part
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == ref(
            ErrorEnvelope)
    assert SCHEMAS["ErrorEnvelope"] == own_schemas(ErrorEnvelope, "serialization")["ErrorEnvelope"]


def test_command_answers_are_their_models() -> None:
    for command in COMMANDS:
        body = to_json(command.answer)
        if command.name == "grid_import_export":  # Tesla's production answer
            assert assert_body_is(EmptyStringResponse, body) == {"response": ""}
        else:
            assert assert_body_is(CommandResponse, body) == {
                "response": {"code": 201, "message": "Updated"}}


@pytest.mark.parametrize("exc", [FleetError("boom", error="upstream internal error"),
                                 InvalidField("x" * 5000)])
def test_error_envelopes_are_their_model(exc: FleetError) -> None:
    body = assert_body_is(ErrorEnvelope, bytes(error_response(exc).body))  # type: ignore[arg-type]
    assert body["response"] is None
    assert body["error"] == exc.error


@pytest.mark.parametrize("period", ["day", "week", "month", "year", "lifetime"])
def test_energy_history_is_its_model(period: str) -> None:
    w = history_window(period=period, site_tz="Europe/Berlin", now=NOW)
    buckets = [Bucket(bucket_start(NOW - timedelta(hours=h)),
                      FlowEnergy(solar_to_home=h % 7, grid_to_battery=0.1)) for h in range(24 * 40)]
    answer = EnergyHistoryResponse.model_construct(
        response=energy_response(buckets, w, period, "Europe/Berlin"))
    body = assert_body_is(EnergyHistoryResponse, to_json(answer))
    assert body["response"]["time_series"]


def test_backup_and_charge_history_are_their_models() -> None:
    w = resolve_window("lifetime", None, None, None, site_tz="America/Los_Angeles", now=NOW)
    events = [Outage(NOW - timedelta(days=3), NOW - timedelta(days=3, seconds=-90)),
              Outage(NOW - timedelta(minutes=5))]  # still open
    body = assert_body_is(BackupHistoryResponse, to_json(BackupHistoryResponse.model_construct(
        response=backup_response(events, w))))
    assert body["response"]["total_events"] == 2
    for sessions in ([], [ChargeSession(start=NOW, duration_s=12000, energy_wh=25000),
                          ChargeSession(start=NOW, duration_s=1.4, energy_wh=0.1234567)]):
        body = assert_body_is(ChargeHistoryResponse, to_json(ChargeHistoryResponse.model_construct(
            response=charge_response(sessions))))
        assert len(body["response"]["charge_history"]) == len(sessions)


@pytest.mark.parametrize(("received_ago_s", "failures"), [(None, 0), (0.5, 0), (11.0, 3)])
def test_device_health_is_its_model(received_ago_s: float | None, failures: int) -> None:
    config = DeviceConfig.model_validate({"name": "inverter", "type": "sunspec",
                                          "poll_interval_s": 1.0,
                                          "options": {"host": "127.0.0.1"}})
    device = DeviceState(config, SunSpecDriver("inverter", SunSpecOptions(host="127.0.0.1"),
                                               Transports()))
    device.received_at = None if received_ago_s is None else 1000.0 - received_ago_s
    device.failures = failures
    device.last_error = "DeviceUnreachable: refused" if failures else None
    body = assert_body_is(DeviceHealth, to_json(device_health(device, 1000.0)))
    assert body["data_age_s"] == received_ago_s


def test_a_null_where_a_key_must_be_absent_is_caught() -> None:
    # What assert_body_is guards: clients create entities for the keys present.
    answer = EnergyHistoryResponse.model_construct(response=energy_response(
        [], history_window(site_tz="UTC", now=NOW), "day", "UTC"))
    good = to_json(answer)
    with pytest.raises(ValidationError):
        assert_body_is(EnergyHistoryResponse, good.replace(b'"timestamp"', b'"stamp"', 1))
    live = (b'{"response":{"solar_power":1,"battery_power":0,"grid_power":0,"load_power":1,'
            b'"generator_power":0,"grid_services_power":0,"grid_services_active":false,'
            b'"backup_capable":true,"grid_status":"Active","island_status":"on_grid",'
            b'"storm_mode_active":false,"timestamp":"2026-05-01T12:30:00+02:00",'
            b'"wall_connectors":[]')
    assert_body_is(LiveStatusResponse, live + b"}}")
    with pytest.raises(AssertionError):
        assert_body_is(LiveStatusResponse, live + b',"percentage_charged":null}}')


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("max_site_meter_power_w", 11_500, True), ("max_site_meter_power_w", -1, False),
    ("min_site_meter_power_w", -5_000, True), ("min_site_meter_power_w", 1, False),
])  # fmt: skip
def test_site_meter_limits_are_import_positive_and_export_negative(
    key: str, value: int, ok: bool
) -> None:
    raw = {"energy_site_id": 1, "name": "Home", "time_zone": "UTC", key: value, "devices": [
        {"name": "inverter", "type": "sunspec", "options": {"host": "127.0.0.1"}}]}
    if ok:
        assert getattr(SiteConfig.model_validate(copy.deepcopy(raw)), key) == value
    else:
        with pytest.raises(ValidationError, match=key):
            SiteConfig.model_validate(raw)
