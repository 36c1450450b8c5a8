"""The simulator's FaultPlan (validation, merging, observers), exception frames, factory reset, reverts."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from simulator.config import HomeConfig, SimDeviceConfig
from simulator.devices.modbus_front import exception_frame
from simulator.devices.sunspec import SunSpecDevice
from simulator.devices.sunspec_map import apply_writes, decode_write
from simulator.faults import MAX_FAULT_S, DeviceStats, FaultPlan, FaultPlanError
from simulator.physics import FirmwareSettings, HomePhysics

NOON = datetime(2024, 6, 21, 11, 0, tzinfo=UTC)


def test_defaults_are_a_well_behaved_device() -> None:
    assert FaultPlan().to_json() == {
        "refuse_connections": False,
        "half_open": False,
        "delay_s": 0.0,
        "exception_code": None,
        "ignore_writes": False,
        "single_client": False,
        "reboot_s": 0.5,
    }
    assert FaultPlan.names() == tuple(FaultPlan().to_json())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("refuse_connections", 1),
        ("half_open", "yes"),
        ("ignore_writes", None),
        ("single_client", 0),
        ("delay_s", -0.1),
        ("delay_s", True),
        ("delay_s", "1"),
        ("delay_s", math.nan),
        ("delay_s", math.inf),
        ("delay_s", MAX_FAULT_S + 1),
        ("reboot_s", -1),
        ("exception_code", 0),
        ("exception_code", 9),
        ("exception_code", 12),
        ("exception_code", True),
        ("exception_code", 4.0),
        ("exception_code", "4"),
        ("nonsense", 1),
        ("_observers", []),
    ],
)
def test_bad_values_are_rejected_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(FaultPlanError) as info:
        FaultPlan.from_json({field: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [("delay_s", 0), ("delay_s", 2.5), ("reboot_s", 0), ("exception_code", 1),
     ("exception_code", 11), ("exception_code", None), ("half_open", True)],
)  # fmt: skip
def test_good_values_are_accepted(field: str, value: Any) -> None:
    assert FaultPlan.from_json({field: value}).to_json()[field] == value


def test_attribute_assignment_is_validated() -> None:
    plan = FaultPlan()
    plan.delay_s = 0.25
    assert plan.delay_s == 0.25
    with pytest.raises(FaultPlanError):
        plan.delay_s = -1
    assert plan.delay_s == 0.25
    with pytest.raises(FaultPlanError):
        FaultPlan(exception_code=99)


def test_update_is_all_or_nothing() -> None:
    plan = FaultPlan()
    with pytest.raises(FaultPlanError) as info:
        plan.update(half_open=True, delay_s=-1)
    assert info.value.field == "delay_s"
    assert plan == FaultPlan()
    assert plan.update(half_open=True, exception_code=6) is plan
    assert (plan.half_open, plan.exception_code) == (True, 6)
    assert plan.reset() == FaultPlan()


def test_observers_hear_every_change_with_the_fields_changed() -> None:
    plan = FaultPlan()
    heard: list[frozenset[str]] = []
    unsubscribe = plan.subscribe(lambda p, changed: heard.append(changed))
    plan.refuse_connections = True
    plan.update(delay_s=1, half_open=True)
    plan.update()  # nothing changed, nothing heard
    with pytest.raises(FaultPlanError):
        plan.update(delay_s=-1)
    unsubscribe()
    unsubscribe()  # idempotent
    plan.single_client = True
    assert heard == [frozenset({"refuse_connections"}), frozenset({"delay_s", "half_open"})]


def test_equality_and_repr_ignore_observers() -> None:
    plan = FaultPlan(delay_s=1)
    plan.subscribe(lambda p, c: None)
    assert plan == FaultPlan(delay_s=1)
    assert "observers" not in repr(plan)


def test_stats_to_json() -> None:
    stats = DeviceStats(accepted=2, refused=1)
    assert stats.to_json() == {
        "accepted": 2, "refused": 1, "dropped": 0, "active": 0, "requests": 0, "answered": 0,
        "reboots": 0,
    }  # fmt: skip


def test_exception_frame_echoes_the_request_header() -> None:
    # FC3 read of 2 registers at 40000, transaction 0x1234, unit 7
    request = bytes.fromhex("1234 0000 0006 07 03 9c40 0002".replace(" ", ""))
    assert exception_frame(request, 6) == bytes.fromhex("123400000003078306")
    # a function code with the top bit set stays a byte
    assert exception_frame(bytes.fromhex("0001000000020190"), 1)[-2:] == bytes((0x90, 1))


INVERTER = SimDeviceConfig(id="inv", kind="sunspec", port=0)


def _home() -> HomeConfig:
    return HomeConfig(id="h", initial_soc_pct=60, devices=[INVERTER])


def test_factory_reset_restores_firmware_and_stored_points_but_not_the_battery() -> None:
    home = _home()
    physics = HomePhysics(home, NOON)
    device = SunSpecDevice(home, INVERTER, physics)
    layout, plate = device.layout, device.nameplate
    writes = decode_write(layout, plate, device.model_address(124) + 7, [50])  # MinRsvPct 50 %
    writes += decode_write(layout, plate, device.model_address(124) + 17, [1])  # ChaGriSet GRID
    writes += decode_write(layout, plate, device.model_address(124) + 3, [90])  # WChaGra
    effect = apply_writes(physics.firmware, device._stored, writes)
    device._stored = effect.stored
    physics.apply_firmware(
        replace(effect.firmware, export_limit_enabled=True, export_limit_pct=0, storage_mode=2,
                revert_s=600),
        restart_revert=True,
    )  # fmt: skip
    physics.step(60)
    before = physics.truth()
    assert (before.reserve_pct, before.grid_charging, before.export_limit_w) == (50, True, 0)
    device.factory_reset()
    after = physics.truth()
    assert physics.firmware == FirmwareSettings(max_charge_w=home.battery_max_charge_w)
    assert (after.reserve_pct, after.grid_charging, after.export_limit_w) == (20, False, None)
    assert after.battery_command_w is None
    assert after.soc_pct == before.soc_pct
    assert after.grid_import_wh == before.grid_import_wh
    assert after.battery_discharge_wh == before.battery_discharge_wh
    image = device.image()
    base = layout.base
    assert image[device.model_address(124) + 3 - base] == 100  # WChaGra back to its default
    # the cancelled rate command's timer does not come back to life
    physics.step(600)
    assert physics.firmware.storage_mode == 0


def test_rate_command_written_over_modbus_reverts_after_its_timeout() -> None:
    home = _home()
    physics = HomePhysics(home, NOON)
    device = SunSpecDevice(home, INVERTER, physics)
    stor = device.model_address(124)
    # OutWRte 50 %, InOutWRte_RvrtTms 120 s, StorCtl_Mod 2 (forced discharge); all SFs are 0
    writes = decode_write(device.layout, device.nameplate, stor + 12, [50])
    writes += decode_write(device.layout, device.nameplate, stor + 15, [120])
    writes += decode_write(device.layout, device.nameplate, stor + 5, [2])
    effect = apply_writes(physics.firmware, {}, writes)
    assert effect.restart_revert
    physics.apply_firmware(effect.firmware, restart_revert=effect.restart_revert)
    assert physics.truth().battery_command_w == pytest.approx(0.5 * home.battery_max_discharge_w)
    physics.step(119)
    assert physics.firmware.storage_mode == 2
    # rewriting the rate restarts the timer
    again = apply_writes(
        physics.firmware, {}, decode_write(device.layout, device.nameplate, stor + 12, [50])
    )
    physics.apply_firmware(again.firmware, restart_revert=again.restart_revert)
    physics.step(119)
    assert physics.firmware.storage_mode == 2
    physics.step(1)
    assert physics.firmware.storage_mode == 0
    assert physics.truth().battery_command_w is None
    assert device.image()[stor + 5 - device.layout.base] == 0  # StorCtl_Mod reads back 0
