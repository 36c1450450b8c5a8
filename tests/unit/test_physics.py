"""Unit tests of the simulated home's physics, firmware semantics, clear-sky curve and clock."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from simulator.clock import SimClock
from simulator.config import HomeConfig, SimDeviceConfig
from simulator.physics import (
    SUBSTEP_MAX_S,
    FirmwareSettings,
    HomePhysics,
    HomeTruth,
    clear_sky_fraction,
    house_load_w,
)

BERLIN = ZoneInfo("Europe/Berlin")
MIDSUMMER = datetime(2024, 6, 21, tzinfo=BERLIN)
NIGHT = datetime(2024, 6, 21, 1, 0, tzinfo=BERLIN)
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)  # ~solar noon in Berlin (CEST)
EPS = 1e-6


def make_home(**overrides: object) -> HomeConfig:
    data: dict[str, object] = {
        "id": "home-1",
        "devices": [SimDeviceConfig(id="inverter", kind="sunspec")],
    }
    data.update(overrides)
    return HomeConfig.model_validate(data)


def make_physics(
    start: datetime, fw: dict[str, object] | None = None, **home: object
) -> HomePhysics:
    cfg = make_home(**home)
    firmware = FirmwareSettings(max_charge_w=cfg.battery_max_charge_w)
    if fw:
        firmware = replace(firmware, **fw)  # type: ignore[arg-type]
    return HomePhysics(cfg, start, BERLIN, firmware)


def assert_balanced(t: HomeTruth) -> None:
    assert t.load_w == pytest.approx(t.solar_w + t.battery_w + t.grid_w, abs=EPS)
    assert -EPS <= t.soc_pct <= 100 + EPS
    assert t.solar_w >= -EPS
    assert t.curtailed_w >= -EPS


# --- clear-sky curve and load profile ------------------------------------------------------------


def test_clear_sky_is_zero_at_night() -> None:
    for hour in (0, 1, 2, 23):
        assert clear_sky_fraction(52.52, 13.40, MIDSUMMER.replace(hour=hour)) == 0.0


def test_clear_sky_peaks_near_solar_noon() -> None:
    minutes = [MIDSUMMER + timedelta(minutes=m) for m in range(24 * 60)]
    best = max(minutes, key=lambda t: clear_sky_fraction(52.52, 13.40, t))
    # Solar noon at 13.4 deg E on 21 June is ~11:08 UTC (equation of time ~ -2 min).
    solar_noon = datetime(2024, 6, 21, 11, 8, tzinfo=UTC)
    assert abs((best - solar_noon).total_seconds()) < 15 * 60
    assert 0.8 < clear_sky_fraction(52.52, 13.40, best) <= 1.0


def test_clear_sky_winter_lower_than_summer() -> None:
    summer = max(
        clear_sky_fraction(52.52, 13.4, MIDSUMMER + timedelta(minutes=m)) for m in range(1440)
    )
    winter_day = datetime(2024, 12, 21, tzinfo=BERLIN)
    winter = max(
        clear_sky_fraction(52.52, 13.4, winter_day + timedelta(minutes=m)) for m in range(1440)
    )
    assert 0 < winter < summer / 2


def test_house_load_has_morning_and_evening_peaks_and_is_reproducible() -> None:
    def at(hour: float) -> float:
        return house_load_w(350, MIDSUMMER + timedelta(hours=hour), seed=7)

    assert at(19) > at(7.5) > at(3)
    assert at(12) == house_load_w(350, MIDSUMMER + timedelta(hours=12), seed=7)
    assert at(12) != house_load_w(350, MIDSUMMER + timedelta(hours=12), seed=8)


# --- energy balance over a random day -------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_energy_balance_and_bounds_over_a_random_day(seed: int) -> None:
    rng = random.Random(seed)
    phys = make_physics(MIDSUMMER, seed=seed, initial_soc_pct=rng.uniform(25, 90))
    reserve = phys.firmware.reserve_pct
    prev = phys.truth()
    for minute in range(24 * 60):
        if minute % 60 == 0:
            phys.set_cloud_factor(rng.random())
            phys.set_load_scale(rng.uniform(0.2, 4.0))
        phys.step(60)
        t = phys.truth()
        assert_balanced(t)
        assert t.soc_pct >= reserve - EPS
        assert -phys.config.battery_max_charge_w - EPS <= t.battery_w
        assert t.battery_w <= phys.config.battery_max_discharge_w + EPS
        for name in ("grid_import_wh", "grid_export_wh", "solar_wh"):
            assert getattr(t, name) >= getattr(prev, name)
        prev = t
    assert prev.at == MIDSUMMER + timedelta(days=1)
    # Energy conservation: what came in equals what went out plus what the battery kept.
    stored_delta_wh = (prev.soc_pct - phys.config.initial_soc_pct) / 100 * prev.capacity_wh
    eta = phys.config.round_trip_efficiency**0.5
    charged = prev.battery_charge_wh - 1000.0
    discharged = prev.battery_discharge_wh - 1000.0
    assert stored_delta_wh == pytest.approx(charged * eta - discharged / eta, abs=1e-3)


def test_counters_never_start_at_zero() -> None:
    t = make_physics(NIGHT).truth()
    for value in (
        t.grid_import_wh,
        t.grid_export_wh,
        t.solar_wh,
        t.battery_charge_wh,
        t.battery_discharge_wh,
    ):
        assert value > 0


def test_long_step_is_subdivided_like_short_steps() -> None:
    a = make_physics(MIDSUMMER)
    b = make_physics(MIDSUMMER)
    a.step(3600)
    for _ in range(int(3600 / SUBSTEP_MAX_S)):
        b.step(SUBSTEP_MAX_S)
    assert a.truth() == b.truth()


# --- reserve and grid charging ------------------------------------------------------------------


def test_reserve_holds_while_grid_up() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=22, fw={"reserve_pct": 20})
    phys.set_load_scale(5)
    for _ in range(2 * 60):
        phys.step(60)
        assert phys.truth().soc_pct >= 20 - EPS
    t = phys.truth()
    assert t.soc_pct == pytest.approx(20, abs=1e-6)
    assert t.battery_w == pytest.approx(0, abs=EPS)
    assert t.grid_w == pytest.approx(t.load_w)


def test_below_reserve_never_discharges_without_grid_charging() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=10, fw={"reserve_pct": 30})
    for _ in range(120):
        phys.step(60)
        t = phys.truth()
        assert t.battery_w <= EPS
        assert t.soc_pct == pytest.approx(10)


def test_grid_charging_fills_to_reserve_only_when_allowed() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=10, fw={"reserve_pct": 30, "grid_charging": True})
    t = phys.truth()
    assert t.battery_w == pytest.approx(-5000)
    assert t.grid_w == pytest.approx(t.load_w + 5000)
    for _ in range(3 * 60):
        phys.step(60)
        assert phys.truth().soc_pct <= 30 + EPS
    t = phys.truth()
    assert t.soc_pct == pytest.approx(30, abs=1e-6)
    assert t.battery_w == pytest.approx(0, abs=EPS)


# --- outage -------------------------------------------------------------------------------------


def test_outage_battery_carries_load_below_reserve() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=21, fw={"reserve_pct": 20})
    phys.set_grid_up(False)
    phys.set_load_scale(5)
    t = phys.truth()
    assert not t.grid_up
    assert t.grid_w == 0
    assert t.battery_w == pytest.approx(t.load_w)
    for _ in range(60):
        phys.step(60)
        assert_balanced(phys.truth())
        assert phys.truth().grid_w == 0
    assert phys.truth().soc_pct < 20


def test_outage_with_empty_battery_sheds_load() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=0.01)
    phys.set_grid_up(False)
    phys.step(600)
    t = phys.truth()
    assert t.soc_pct == pytest.approx(0, abs=1e-6)
    assert t.load_w == pytest.approx(0, abs=EPS)
    assert_balanced(t)


def test_outage_full_battery_curtails_pv() -> None:
    phys = make_physics(NOON, initial_soc_pct=100)
    phys.set_grid_up(False)
    phys.step(60)
    t = phys.truth()
    assert t.grid_w == 0
    assert t.battery_w == pytest.approx(0, abs=EPS)
    assert t.solar_w == pytest.approx(t.load_w)
    assert t.curtailed_w > 1000
    assert_balanced(t)


def test_outage_surplus_charges_battery() -> None:
    phys = make_physics(NOON, initial_soc_pct=50)
    phys.set_grid_up(False)
    phys.step(60)
    t = phys.truth()
    assert t.battery_w < 0
    assert t.grid_w == 0
    assert_balanced(t)


def test_grid_restored_returns_to_self_consumption() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=50)
    phys.set_grid_up(False)
    phys.step(60)
    phys.set_grid_up(True)
    t = phys.truth()
    assert t.grid_up
    assert t.battery_w == pytest.approx(t.load_w)  # above reserve: battery still covers the load
    assert t.grid_w == pytest.approx(0, abs=EPS)


# --- rate commands and revert timeout -----------------------------------------------------------


def test_forced_charge_from_grid_with_revert_timeout() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=40)
    fw = replace(
        phys.firmware, storage_mode=1, charge_rate_pct=50, grid_charging=True, revert_s=600
    )
    phys.apply_firmware(fw, restart_revert=True)
    t = phys.truth()
    assert t.battery_command_w == pytest.approx(-2500)
    assert t.battery_w == pytest.approx(-2500)
    phys.step(590)
    assert phys.truth().battery_command_w == pytest.approx(-2500)
    phys.step(20)
    t = phys.truth()
    assert t.battery_command_w is None
    assert phys.firmware.storage_mode == 0
    assert t.battery_w == pytest.approx(t.load_w)  # back to self-consumption


def test_forced_charge_without_grid_charging_uses_only_pv() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=40, fw={"storage_mode": 1})
    assert phys.truth().battery_w == pytest.approx(0, abs=EPS)


def test_forced_discharge_exports_and_respects_reserve() -> None:
    phys = make_physics(NIGHT, initial_soc_pct=21, fw={"storage_mode": 2, "reserve_pct": 20})
    t = phys.truth()
    assert t.battery_w == pytest.approx(5000)
    assert t.grid_w == pytest.approx(t.load_w - 5000)
    for _ in range(60):
        phys.step(60)
        assert phys.truth().soc_pct >= 20 - EPS
    assert phys.truth().battery_w == pytest.approx(0, abs=EPS)


def test_no_revert_when_timeout_zero() -> None:
    phys = make_physics(NIGHT, fw={"storage_mode": 2, "discharge_rate_pct": 10})
    phys.step(3600)
    assert phys.truth().battery_command_w == pytest.approx(500)


# --- export limit -------------------------------------------------------------------------------


def test_export_limit_zero_means_no_export_and_curtails_pv() -> None:
    phys = make_physics(
        NOON, initial_soc_pct=100, fw={"export_limit_enabled": True, "export_limit_pct": 0}
    )
    for _ in range(30):
        phys.step(60)
        assert phys.truth().grid_w >= -EPS
        assert_balanced(phys.truth())
    t = phys.truth()
    assert t.export_limit_w == 0
    assert t.curtailed_w > 1000


def test_export_limit_caps_forced_discharge() -> None:
    phys = make_physics(
        NIGHT,
        initial_soc_pct=80,
        fw={"storage_mode": 2, "export_limit_enabled": True, "export_limit_pct": 10},
    )
    t = phys.truth()
    assert t.grid_w == pytest.approx(-800)
    assert_balanced(t)


def test_export_limit_disabled_exports_surplus() -> None:
    phys = make_physics(NOON, initial_soc_pct=100)
    t = phys.truth()
    assert t.export_limit_w is None
    assert t.grid_w < -1000
    assert t.curtailed_w == pytest.approx(0, abs=EPS)


def test_invalid_inputs_rejected() -> None:
    phys = make_physics(NIGHT)
    with pytest.raises(ValueError, match="cloud"):
        phys.set_cloud_factor(1.5)
    with pytest.raises(ValueError, match="dt_s"):
        phys.step(-1)
    with pytest.raises(ValueError, match="aware"):
        HomePhysics(make_home(), datetime(2024, 1, 1))  # noqa: DTZ001


# --- clock --------------------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_clock_runs_at_speed_and_rebases_on_speed_change() -> None:
    mono = FakeMonotonic()
    start = datetime(2024, 6, 21, tzinfo=UTC)
    clock = SimClock(start, speed=60, monotonic=mono)
    mono.t += 10
    assert clock.now() == start + timedelta(seconds=600)
    clock.set_speed(1)
    assert clock.now() == start + timedelta(seconds=600)
    mono.t += 10
    assert clock.now() == start + timedelta(seconds=610)
    clock.advance(90)
    assert clock.now() == start + timedelta(seconds=700)
    clock.set_speed(0)
    mono.t += 1000
    assert clock.now() == start + timedelta(seconds=700)
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(-1)
