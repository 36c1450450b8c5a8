"""The pure profile engine on the bundled profiles: registers -> telemetry and setpoints -> registers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import Capability, Setpoints
from drivers.profile.catalog import compiled
from drivers.profile.engine import (
    Compiled,
    PointValues,
    capabilities_from,
    decode_answers,
    identifies,
    setpoints_from,
    targets_for,
    telemetry_from,
    writes_for,
)
from drivers.profile.hooks import EnterMode, SignFromBits, make_hooks

NOW = datetime(2026, 6, 21, 12, tzinfo=UTC)
ALL = frozenset(Capability)


def values_of(c: Compiled, registers: dict[tuple[str, int], int]) -> PointValues:
    """Decode the poll plan's reads from a sparse register image (absent registers read 0)."""
    answers = [
        (read, [registers.get((read.table, a), 0) for a in range(read.address, read.address + read.count)])
        for read in c.poll_reads
    ]
    return decode_answers(c.profile, answers)


def sungrow(*, state: int, battery: int, export: int, soc: int = 505) -> dict[tuple[str, int], int]:
    low, high = export & 0xFFFF, (export >> 16) & 0xFFFF
    return {
        ("input", 5016): 3000, ("input", 13000): state, ("input", 13021): battery,
        ("input", 13009): low, ("input", 13010): high, ("input", 13022): soc,
        ("holding", 13049): 0, ("holding", 13050): 0xCC, ("holding", 13086): 0x55,
        ("holding", 13099): 20,
    }  # fmt: skip


@pytest.mark.parametrize(("state", "battery", "export", "battery_w", "grid_w", "load_w"), [
    (0b0000010, 1200, 800, -1200.0, -800.0, 1000.0),  # charging 1.2 kW, exporting 800 W
    (0b0000100, 500, -1000 & 0xFFFFFFFF, 500.0, 1000.0, 4500.0),  # discharging, importing
    (0b0000000, 7, 0, 0.0, 0.0, 3000.0),  # idle: no direction bit, a stray reading is 0
])  # fmt: skip
def test_sungrow_battery_direction_comes_from_the_running_state(
    state: int, battery: int, export: int, battery_w: float, grid_w: float, load_w: float
) -> None:
    c = compiled("sungrow_sh_rt")
    telemetry = telemetry_from(c, values_of(c, sungrow(state=state, battery=battery, export=export)), now=NOW)
    assert (telemetry.battery_w, telemetry.grid_w, telemetry.load_w) == (battery_w, grid_w, load_w)
    assert telemetry.solar_w == 3000.0
    assert telemetry.soc_pct == pytest.approx(50.5)


def test_a_value_outside_its_documented_range_is_unavailable_and_reported() -> None:
    c = compiled("sungrow_sh_rt")
    values = values_of(c, sungrow(state=0, battery=0, export=0, soc=1500))  # 150 %
    assert values.value["battery_level"] is None
    assert [(b.point, b.value) for b in values.out_of_range] == [("battery_level", 150.0)]
    assert telemetry_from(c, values, now=NOW).soc_pct is None


def test_a_not_available_sentinel_reads_as_none_and_drops_the_capability() -> None:
    c = compiled("sungrow_sh_rt")
    values = values_of(c, sungrow(state=0, battery=0, export=0, soc=0xFFFF))  # no battery
    caps = capabilities_from(c, values)
    assert Capability.BATTERY not in caps
    assert Capability.BACKUP_RESERVE not in caps
    assert Capability.BATTERY_POWER not in caps
    assert {Capability.SOLAR, Capability.GRID_METER, Capability.EXPORT_LIMIT} <= caps


@pytest.mark.parametrize(("family", "setpoints", "writes"), [
    ("sungrow_sh_rt", Setpoints(reserve_pct=40, grid_charging=False),
     [("backup_soc", 40), ("export_limit_mode", 0x55), ("ems_mode", 0), ("forced_command", 0xCC)]),
    ("sungrow_sh_rt", Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0, battery_w=-2500),
     [("backup_soc", 20), ("export_limit", 0), ("export_limit_mode", 0xAA), ("forced_power", 2500),
      ("ems_mode", 2), ("forced_command", 0xAA)]),
    ("huawei_sun2000", Setpoints(reserve_pct=35, grid_charging=True, battery_w=1500, revert_s=90),
     [("backup_power_soc", 350), ("charge_from_grid", 1), ("active_power_control_mode", 0),
      ("forcible_discharge_power", 1500), ("forcible_period", 2), ("forcible_setting_mode", 0),
      ("forcible_command", 2)]),
    ("huawei_sun2000", Setpoints(reserve_pct=35, grid_charging=False, battery_w=-1000, revert_s=0),
     [("backup_power_soc", 350), ("charge_from_grid", 0), ("active_power_control_mode", 0),
      ("forcible_charge_power", 1000), ("forcible_period", 1440), ("forcible_setting_mode", 0),
      ("forcible_command", 1)]),
])  # fmt: skip
def test_setpoints_become_raw_writes_values_before_modes(
    family: str, setpoints: Setpoints, writes: list[tuple[str, int]]
) -> None:
    assert targets_for(compiled(family), setpoints, ALL, PointValues()) == writes


@pytest.mark.parametrize("family", ["sungrow_sh_rt", "huawei_sun2000"])
@pytest.mark.parametrize("setpoints", [
    Setpoints(reserve_pct=40, grid_charging=True, export_limit_w=1200, battery_w=-2000, revert_s=600),
    Setpoints(reserve_pct=0, grid_charging=False, export_limit_w=None, battery_w=None),
    Setpoints(reserve_pct=100, grid_charging=True, export_limit_w=0, battery_w=3000, revert_s=120),
])  # fmt: skip
def test_what_is_written_reads_back_as_the_same_setpoints(family: str, setpoints: Setpoints) -> None:
    c = compiled(family)
    targets = targets_for(c, setpoints, ALL, PointValues())
    image: dict[tuple[str, int], int] = {}
    for write in writes_for(c, targets):
        for i, value in enumerate(write.values):
            image["holding", write.address + i] = value
    held = setpoints_from(c, values_of(c, image), ALL)
    honoured = c.profile.control_points()
    assert held.reserve_pct == setpoints.reserve_pct
    assert held.export_limit_w == setpoints.export_limit_w
    assert held.battery_w == setpoints.battery_w
    if "grid_charging" in honoured:
        assert held.grid_charging is setpoints.grid_charging
    if family == "huawei_sun2000" and setpoints.battery_w is not None:
        assert held.revert_s == setpoints.revert_s  # whole minutes on the device


def test_writes_join_contiguous_registers_up_to_the_device_limit() -> None:
    c = compiled("sungrow_sh_rt")  # max_write_registers: 2
    targets = [("forced_power", 2000), ("ems_mode", 2), ("forced_command", 0xAA)]
    writes = writes_for(c, targets)
    assert [(w.address, w.values) for w in writes] == [(13051, (2000,)), (13049, (2, 0xAA))]


def test_identification_by_code_and_by_text_prefix() -> None:
    sg = compiled("sungrow_sh_rt")
    assert identifies(sg, PointValues(raw={"device_type_code": 0x0E03})) == "SH10RT"
    assert identifies(sg, PointValues(raw={"device_type_code": 0x0D0F})) is None  # an RS model
    hw = compiled("huawei_sun2000")
    assert identifies(hw, PointValues(raw={"model_name": "SUN2000-10KTL-M1"})) == "SUN2000-10KTL-M1"
    assert identifies(hw, PointValues(raw={"model_name": "SmartLogger3000"})) is None


def test_hooks_table() -> None:
    sign = SignFromBits({"point": "p", "state_point": "s", "negative_mask": 2, "positive_mask": 4})
    assert sign.adjust_values({"p": 100.0}, {"s": 2}) == {"p": -100.0}
    assert sign.adjust_values({"p": 100.0}, {"s": 4}) == {"p": 100.0}
    assert sign.adjust_values({"p": 100.0}, {"s": 0}) == {"p": 0.0}
    assert sign.adjust_values({"p": None}, {"s": 2}) == {"p": None}
    enter = EnterMode({"point": "mode", "value": 4})
    assert enter.adjust_writes([("power", 5)], {"mode": 0}) == [("mode", 4), ("power", 5)]
    assert enter.adjust_writes([("power", 5)], {"mode": 4}) == [("power", 5)]
    assert enter.adjust_writes([], {"mode": 0}) == []
    with pytest.raises(ValueError, match="hook enter_mode: bad or missing parameter"):
        make_hooks((("enter_mode", {"point": "mode"}),))
