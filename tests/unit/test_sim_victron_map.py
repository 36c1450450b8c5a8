"""Table tests of the pure Victron GX map: topic values, writes, reconciliation, keepalive, registers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from simulator.config import (
    HomeConfig,
    MqttBatteryConfig,
    SimDeviceConfig,
    VictronGxConfig,
    load_simulator_config,
)
from simulator.devices import victron_map as vm
from simulator.devices.victron_map import (
    GxSettings,
    Keepalive,
    KeepaliveRequest,
    WriteAccepted,
    WriteIgnored,
)
from simulator.physics import FirmwareSettings, HomePhysics, HomeTruth

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)
HOME = HomeConfig(id="home-1", inverter_max_w=8000, devices=[VictronGxConfig(id="gx", kind="victron_gx")])
INV = HOME.inverter_max_w
VEBUS = 227
FW = FirmwareSettings(max_charge_w=5000)


def truth(**over: Any) -> HomeTruth:
    base = HomePhysics(HOME, NOON, BERLIN).truth()
    return replace(base, **over)


# --- config ------------------------------------------------------------------------------------


def test_config_union_on_kind() -> None:
    cfg = load_simulator_config({"homes": [{"id": "h", "devices": [
        {"id": "inverter", "kind": "sunspec"},
        {"id": "gx", "kind": "victron_gx", "keepalive_timeout_s": 2},
        {"id": "battery", "kind": "mqtt_battery", "broker_port": 1883},
    ]}]})  # fmt: skip
    kinds = [type(d) for d in cfg.homes[0].devices]
    assert kinds == [SimDeviceConfig, VictronGxConfig, MqttBatteryConfig]
    gx = cfg.homes[0].devices[1]
    assert isinstance(gx, VictronGxConfig)
    assert (gx.port, gx.portal_id, gx.vebus_instance, gx.modbus_port) == (0, "c0619ab1f00d", 227, None)
    battery = cfg.homes[0].devices[2]
    assert isinstance(battery, MqttBatteryConfig)
    assert (battery.base_topic, battery.publish_interval_s) == ("sim/battery1", 1.0)


@pytest.mark.parametrize(
    ("device", "field"),
    [
        ({"id": "b", "kind": "mqtt_battery"}, "broker_port"),
        ({"id": "b", "kind": "mqtt_battery", "broker_port": 1, "base_topic": "a/#"}, "base_topic"),
        ({"id": "g", "kind": "victron_gx", "unit_id": 3}, "unit_id"),
        ({"id": "g", "kind": "victron_gx", "portal_id": "A/B"}, "portal_id"),
        ({"id": "g", "kind": "victron_gx", "keepalive_timeout_s": 0}, "keepalive_timeout_s"),
        ({"id": "g", "kind": "modbus"}, "kind"),
    ],
)
def test_bad_device_config(device: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        load_simulator_config({"homes": [{"id": "h", "devices": [device]}]})


def test_example_config_still_validates() -> None:
    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "config.example.yaml").read_text())
    cfg = load_simulator_config(doc["simulator"])
    kinds = {"sunspec", "victron_gx", "mqtt_battery", "ocpp_charger"}
    assert all(d.kind in kinds for h in cfg.homes for d in h.devices)


# --- values --------------------------------------------------------------------------------------


def values(t: HomeTruth, gx: GxSettings | None = None) -> dict[str, vm.JsonValue]:
    return vm.topic_values(t, gx or vm.initial_settings(FW, INV), portal_id="abc", vebus_instance=VEBUS)


@pytest.mark.parametrize(
    ("over", "path", "expected"),
    [
        ({"solar_w": 4321.4}, vm.PV_POWER, 4321),
        ({"battery_w": -1200.0}, vm.BATTERY_POWER, 1200),  # charging: + on Victron's wire
        ({"battery_w": 800.0}, vm.BATTERY_POWER, -800),
        ({"soc_pct": 61.23}, vm.BATTERY_SOC, 61.2),
        ({"grid_up": True}, vm.ACTIVE_IN_SOURCE, 1),
        ({"grid_up": False}, vm.ACTIVE_IN_SOURCE, 240),
        ({"grid_up": False}, "vebus/227/Alarms/GridLost", 2),
        ({"grid_up": True}, "vebus/227/Alarms/GridLost", 0),
        ({"storm_alert": True}, vm.STORM_ALERT, 1),
        ({"storm_alert": False}, vm.STORM_ALERT, 0),
        ({}, vm.SERIAL, "abc"),
        ({}, vm.VEBUS_INSTANCE, VEBUS),  # as systemcalc names the VE.Bus unit in use
    ],
)
def test_topic_values(over: dict[str, Any], path: str, expected: vm.JsonValue) -> None:
    assert values(truth(**over))[path] == expected


@pytest.mark.parametrize("grid_w", [0.0, 100.0, -1001.0, 2.4, 3000.6])
def test_grid_split_over_three_phases_sums_exactly(grid_w: float) -> None:
    v = values(truth(grid_w=grid_w, load_w=grid_w + 500))
    grid = [v[p] for p in vm.GRID_POWER]
    load = [v[p] for p in vm.CONSUMPTION_POWER]
    assert sum(grid) == round(grid_w)  # type: ignore[arg-type]
    assert sum(load) == round(grid_w + 500)  # type: ignore[arg-type]
    assert max(grid) - min(grid) <= 2  # type: ignore[type-var, operator]


def test_every_contract_path_is_published() -> None:
    v = values(truth())
    for path in (
        "system/0/Dc/Pv/Power", "system/0/Dc/Battery/Power", "system/0/Dc/Battery/Soc",
        "system/0/Ac/Grid/L1/Power", "system/0/Ac/Grid/L2/Power", "system/0/Ac/Grid/L3/Power",
        "system/0/Ac/Consumption/L1/Power", "system/0/Ac/Consumption/L3/Power",
        "system/0/Ac/ActiveIn/Source", "system/0/Serial",
        "settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit",
        "settings/0/Settings/CGwacs/BatteryLife/State", "settings/0/Settings/CGwacs/Hub4Mode",
        "settings/0/Settings/CGwacs/MaxFeedInPower", "settings/0/Settings/CGwacs/PreventFeedback",
        "vebus/227/Hub4/DisableCharge", "vebus/227/Hub4/DisableFeedIn", "vebus/227/Alarms/GridLost",
        "platform/0/StormAlert",
    ):  # fmt: skip
        assert path in v, path


def test_initial_settings_mirror_the_firmware() -> None:
    gx = vm.initial_settings(FirmwareSettings(max_charge_w=5000, reserve_pct=35, grid_charging=True), INV)
    assert (gx.min_soc_limit_pct, gx.battery_life_state, gx.disable_charge, gx.max_feed_in_w) == (
        35, 10, 0, -1,
    )  # fmt: skip
    v = values(truth(), gx)
    assert v[vm.MIN_SOC_LIMIT] == 35
    assert isinstance(v[vm.MIN_SOC_LIMIT], int)
    assert v[vm.MAX_FEED_IN_POWER] == -1


def test_changed_values_and_select_paths() -> None:
    assert vm.changed_values({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}) == {"b": 3, "c": 0}
    v = values(truth())
    settings = vm.select_paths(v, "settings/0/Settings")
    assert set(settings) == {p for p in v if p.startswith("settings/0/")}
    assert vm.select_paths(v, vm.BATTERY_SOC) == {vm.BATTERY_SOC: v[vm.BATTERY_SOC]}
    assert vm.select_paths(v, "system/0/Dc/Bat") == {}
    assert json.loads(vm.encode_value(61.2)) == {"value": 61.2}


# --- writes --------------------------------------------------------------------------------------


def write(path: str, value: vm.JsonValue, fw: FirmwareSettings = FW) -> vm.WriteResult:
    return vm.apply_write(
        vm.initial_settings(fw, INV), fw, path, value, vebus_instance=VEBUS, inverter_max_w=INV
    )


@pytest.mark.parametrize(
    ("path", "value", "check"),
    [
        (vm.MIN_SOC_LIMIT, 45, lambda fw: fw.reserve_pct == 45),
        (vm.MIN_SOC_LIMIT, 0, lambda fw: fw.reserve_pct == 0),
        (vm.MIN_SOC_LIMIT, 100.0, lambda fw: fw.reserve_pct == 100),
        (vm.BATTERY_LIFE_STATE, 9, lambda fw: fw.reserve_pct == 100),
        (vm.BATTERY_LIFE_STATE, 10, lambda fw: fw.reserve_pct == 20),
        (vm.HUB4_MODE, 3, lambda fw: fw == FW),
        (vm.MAX_FEED_IN_POWER, 2000, lambda fw: fw.export_limit_enabled and fw.export_limit_pct == 25),
        (vm.MAX_FEED_IN_POWER, 0, lambda fw: fw.export_limit_enabled and fw.export_limit_pct == 0),
        (vm.MAX_FEED_IN_POWER, -1, lambda fw: not fw.export_limit_enabled),
        (vm.PREVENT_FEEDBACK, 1, lambda fw: fw.export_limit_enabled and fw.export_limit_pct == 0),
        ("vebus/227/Hub4/DisableFeedIn", 1, lambda fw: fw.export_limit_enabled and fw.export_limit_pct == 0),
        ("vebus/227/Hub4/DisableCharge", 0, lambda fw: fw.grid_charging),
        ("vebus/227/Hub4/DisableCharge", 1.0, lambda fw: not fw.grid_charging),
    ],
)
def test_valid_writes(path: str, value: vm.JsonValue, check: Any) -> None:
    result = write(path, value)
    assert isinstance(result, WriteAccepted), result
    assert check(result.firmware)
    # The echo shows exactly what was written.
    assert values(truth(), result.gx)[path] == value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (vm.MIN_SOC_LIMIT, 101),
        (vm.MIN_SOC_LIMIT, -1),
        (vm.MIN_SOC_LIMIT, "20"),
        (vm.MIN_SOC_LIMIT, True),
        (vm.MIN_SOC_LIMIT, None),
        (vm.MIN_SOC_LIMIT, float("nan")),
        (vm.BATTERY_LIFE_STATE, 0),
        (vm.BATTERY_LIFE_STATE, 9.5),
        (vm.HUB4_MODE, 4),
        (vm.MAX_FEED_IN_POWER, -2),
        (vm.MAX_FEED_IN_POWER, 1e9),
        (vm.PREVENT_FEEDBACK, 2),
        ("vebus/227/Hub4/DisableCharge", True),
        ("vebus/228/Hub4/DisableCharge", 1),  # another VE.Bus instance
        ("vebus/227/Alarms/GridLost", 0),  # read-only
        (vm.BATTERY_SOC, 50),
        (vm.STORM_ALERT, 1),
        ("settings/0/Settings/Nope", 1),
    ],
)
def test_invalid_writes_are_ignored(path: str, value: vm.JsonValue) -> None:
    assert isinstance(write(path, value), WriteIgnored)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"value": 20}', 20),
        (b'{"value": null}', None),
        (b'{"value": [1]}', WriteIgnored("value must be a scalar")),
        (b'{"val": 1}', WriteIgnored('payload has no "value" key')),
        (b"20", WriteIgnored('payload has no "value" key')),
        (b"\xff", WriteIgnored("payload is not JSON")),
    ],
)
def test_decode_write_payload(payload: bytes, expected: object) -> None:
    assert vm.decode_write_payload(payload) == expected


def test_keep_charged_holds_reserve_100_and_remembers_limit() -> None:
    gx = vm.initial_settings(FW, INV)
    r1 = vm.apply_write(gx, FW, vm.BATTERY_LIFE_STATE, 9, vebus_instance=VEBUS, inverter_max_w=INV)
    assert isinstance(r1, WriteAccepted)
    assert r1.firmware.reserve_pct == 100
    assert vm.reconcile(r1.gx, r1.firmware, INV) == r1.gx  # consistent: nothing re-derived
    r2 = vm.apply_write(r1.gx, r1.firmware, vm.MIN_SOC_LIMIT, 30, vebus_instance=VEBUS, inverter_max_w=INV)
    assert isinstance(r2, WriteAccepted)
    assert r2.firmware.reserve_pct == 100  # still keep-charged
    r3 = vm.apply_write(
        r2.gx, r2.firmware, vm.BATTERY_LIFE_STATE, 10, vebus_instance=VEBUS, inverter_max_w=INV
    )
    assert isinstance(r3, WriteAccepted)
    assert r3.firmware.reserve_pct == 30


def test_feed_in_sequence_keeps_each_written_value() -> None:
    # The driver's order: MaxFeedInPower first, then the two switches; each echo is what it wrote.
    gx = replace(vm.initial_settings(FW, INV), prevent_feedback=1, disable_feed_in=1, max_feed_in_w=0)
    fw = vm.firmware_from_gx(gx, FW, INV)
    steps = ((vm.MAX_FEED_IN_POWER, -1), (vm.PREVENT_FEEDBACK, 0), ("vebus/227/Hub4/DisableFeedIn", 0))
    for path, value in steps:
        r = vm.apply_write(gx, fw, path, value, vebus_instance=VEBUS, inverter_max_w=INV)
        assert isinstance(r, WriteAccepted)
        gx, fw = vm.reconcile(r.gx, r.firmware, INV), r.firmware
        assert values(truth(), gx)[path] == value
    assert not fw.export_limit_enabled


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # another face set reserve 55: optimized mode with that limit
        ({"reserve_pct": 55.0}, {"min_soc_limit_pct": 55, "battery_life_state": 10, "prevent_feedback": 1}),
        ({"grid_charging": True}, {"disable_charge": 0, "battery_life_state": 9}),
        (
            {"export_limit_enabled": True, "export_limit_pct": 50.0},
            {"max_feed_in_w": 4000, "prevent_feedback": 0, "disable_feed_in": 0},
        ),
        ({"export_limit_enabled": False}, {"max_feed_in_w": -1, "prevent_feedback": 0}),
    ],
)
def test_reconcile_follows_other_faces(change: dict[str, Any], expected: dict[str, Any]) -> None:
    keep_charged = replace(vm.initial_settings(FW, INV), battery_life_state=9, prevent_feedback=1)
    start_fw = vm.firmware_from_gx(keep_charged, FW, INV)
    assert vm.reconcile(keep_charged, start_fw, INV) == keep_charged
    changed = replace(start_fw, **change)
    gx = vm.reconcile(keep_charged, changed, INV)
    for key, value in expected.items():
        assert getattr(gx, key) == pytest.approx(value), key
    assert vm.reconcile(gx, changed, INV) == gx
    # whatever was re-derived, the GX now asks for exactly the firmware in force
    again = vm.firmware_from_gx(gx, changed, INV)
    assert (again.reserve_pct, again.grid_charging, again.export_limit_enabled) == (
        changed.reserve_pct, changed.grid_charging, changed.export_limit_enabled,
    )  # fmt: skip


# --- keepalive -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "request_"),
    [
        (b"", KeepaliveRequest(full_publish=True)),
        (b"  ", KeepaliveRequest(full_publish=True)),
        (b"garbage", KeepaliveRequest(full_publish=True)),
        (b'{"keepalive-options": ["suppress-republish"]}', KeepaliveRequest(full_publish=False)),
        (b'{"keepalive-options": []}', KeepaliveRequest(full_publish=True)),
        (
            b'{"keepalive-options": [{"full-publish-completed-echo": "t1"}]}',
            KeepaliveRequest(full_publish=True, echo="t1"),
        ),
    ],
)
def test_parse_keepalive(payload: bytes, request_: KeepaliveRequest) -> None:
    assert vm.parse_keepalive(payload) == request_


def test_keepalive_state_machine() -> None:
    state = Keepalive()
    assert not state.alive(0.0)
    state, req = vm.on_keepalive(state, b"", now=100.0, timeout_s=60)
    assert req.full_publish
    assert state.alive(100.0)
    assert state.alive(159.9)
    assert not state.alive(160.0)
    suppress = b'{"keepalive-options": ["suppress-republish"]}'
    state, req = vm.on_keepalive(state, suppress, now=150.0, timeout_s=60)
    assert not req.full_publish
    assert state.alive(209.0)
    assert not state.alive(210.0)


def test_full_publish_completed_payload() -> None:
    assert json.loads(vm.full_publish_completed(1718960000.7)) == {"value": 1718960000}
    doc = json.loads(vm.full_publish_completed(5, "tok"))
    assert doc == {"value": 5, "full-publish-completed-echo": "tok"}


# --- Modbus registers ----------------------------------------------------------------------------


def test_system_registers_scales() -> None:
    t = truth(battery_w=-1500.0, soc_pct=61.6, solar_w=3000.0, grid_w=-300.0, grid_up=False)
    gx = replace(vm.initial_settings(FW, INV), min_soc_limit_pct=25.5, max_feed_in_w=2500)
    regs = vm.system_registers(t, gx)
    assert regs[842] == 1500  # + charging
    assert regs[843] == 62
    assert regs[850] == 3000
    assert [regs[a] for a in (820, 821, 822)] == [0xFFFF - 100 + 1] * 3  # -100 W each as int16
    assert regs[826] == 240
    assert regs[2901] == 255
    assert regs[2706] == 25
    assert vm.system_registers(t, replace(gx, max_feed_in_w=-1))[2706] == 0xFFFF
    assert vm.vebus_registers(t, gx) == {38: gx.disable_charge, 39: 0, 64: 2}


@pytest.mark.parametrize(
    ("address", "raw", "vebus", "expected"),
    [
        (2901, 305, False, (vm.MIN_SOC_LIMIT, 30.5)),
        (2901, 200, False, (vm.MIN_SOC_LIMIT, 20)),
        (2706, 0xFFFF, False, (vm.MAX_FEED_IN_POWER, -1)),
        (2706, 30, False, (vm.MAX_FEED_IN_POWER, 3000)),
        (2706, 0xFFFE, False, (vm.MAX_FEED_IN_POWER, -200)),  # rejected later by apply_write
        (2900, 9, False, (vm.BATTERY_LIFE_STATE, 9)),
        (2902, 1, False, (vm.HUB4_MODE, 1)),
        (2708, 1, False, (vm.PREVENT_FEEDBACK, 1)),
        (38, 1, True, ("vebus/227/Hub4/DisableCharge", 1)),
        (39, 0, True, ("vebus/227/Hub4/DisableFeedIn", 0)),
    ],
)
def test_register_write(address: int, raw: int, vebus: bool, expected: tuple[str, object]) -> None:
    assert vm.register_write(address, raw, vebus=vebus, vebus_instance=VEBUS) == expected


@pytest.mark.parametrize(("address", "vebus"), [(843, False), (38, False), (2901, True), (64, True)])
def test_register_write_read_only(address: int, vebus: bool) -> None:
    with pytest.raises(KeyError):
        vm.register_write(address, 1, vebus=vebus, vebus_instance=VEBUS)
