"""Control policy table (settings, input, tariff, clock, alerts -> setpoints); settings storage."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.base import Setpoints
from gateway.core.policy import (
    DEFAULT_REVERT_S,
    NO_ALERTS,
    Alerts,
    SitePolicyInput,
    compute_setpoints,
    effective_mode,
    storm_mode_active,
)
from gateway.core.settings import SiteSettings
from gateway.core.tariff import Tariff, TariffError, parse_tariff
from tests.samples import flat_sample, pge_like_sample

TZ = ZoneInfo("America/Los_Angeles")

PGE = parse_tariff(pge_like_sample())
FLAT = parse_tariff(flat_sample())
# One season: NIGHT cheap, DAY normal (0.25 sits mid-spread), PEAK expensive with a high sell.
THREE_LEVEL = parse_tariff(
    {
        "energy_charges": {"Year": {"rates": {"NIGHT": 0.10, "DAY": 0.25, "PEAK": 0.50}}},
        "seasons": {
            "Year": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": {
                    "NIGHT": {"periods": [{"toHour": 7}]},
                    "DAY": {"periods": [{"fromHour": 7, "toHour": 16}, {"fromHour": 21}]},
                    "PEAK": {"periods": [{"fromHour": 16, "toHour": 21}]},
                },
            }
        },
    }
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


CHEAP = at("2024-07-01T03:00")  # PGE summer off-peak (Monday)
PEAK = at("2024-07-01T17:00")  # PGE summer on-peak: buy and sell both high
PARTIAL = at("2024-07-01T15:30")  # PGE summer partial peak: buy expensive, sell normal
DAY = at("2024-07-01T12:00")  # THREE_LEVEL normal

BASE = SiteSettings()
AUTO = SiteSettings(operation_mode="autonomous", backup_reserve_pct=20)
HOME = SitePolicyInput(
    soc_pct=50.0,
    solar_w=0.0,
    load_w=1500.0,
    grid_up=True,
    max_charge_w=5000.0,
    max_discharge_w=5000.0,
)
STORM = Alerts(storm=True)


def s(base: SiteSettings = BASE, **changes: Any) -> SiteSettings:
    return dataclasses.replace(base, **changes)


def i(**changes: Any) -> SitePolicyInput:
    return dataclasses.replace(HOME, **changes)


def sp(
    reserve: int, grid: bool, export: int | None = None, battery: int | None = None
) -> Setpoints:
    revert = DEFAULT_REVERT_S if battery is not None else 0
    return Setpoints(
        reserve_pct=reserve,
        grid_charging=grid,
        export_limit_w=export,
        battery_w=battery,
        revert_s=revert,
    )


Case = tuple[str, SiteSettings, SitePolicyInput, Tariff | None, datetime, Alerts, Setpoints]

CASES: list[Case] = [
    # self_consumption: the user's reserve, no grid charging (docs/api.md, "Settings"), no battery
    # command
    ("self-defaults", BASE, HOME, None, PEAK, NO_ALERTS, sp(20, False)),
    (
        "self-no-grid-charging",
        s(backup_reserve_pct=35, grid_charging_allowed=False),
        HOME,
        PGE,
        CHEAP,
        NO_ALERTS,
        sp(35, False),
    ),
    (
        "self-export-never",
        s(export_rule="never"),
        HOME,
        None,
        PEAK,
        NO_ALERTS,
        sp(20, False, export=0),
    ),
    ("self-ignores-tariff", s(export_rule="battery_ok"), HOME, PGE, PEAK, NO_ALERTS, sp(20, False)),
    # backup: keep full; grid charging only if allowed
    ("backup", s(operation_mode="backup"), HOME, PGE, PEAK, NO_ALERTS, sp(100, True)),
    (
        "backup-solar-only",
        s(operation_mode="backup", grid_charging_allowed=False),
        HOME,
        None,
        PEAK,
        NO_ALERTS,
        sp(100, False),
    ),
    (
        "backup-export-never",
        s(operation_mode="backup", export_rule="never"),
        HOME,
        None,
        PEAK,
        NO_ALERTS,
        sp(100, True, export=0),
    ),
    # storm mode: enabled + alert = backup, whatever the mode
    ("storm-self", BASE, HOME, None, PEAK, STORM, sp(100, True)),
    ("storm-autonomous-peak", AUTO, HOME, PGE, PEAK, STORM, sp(100, True)),
    # storm watch charges from the grid even where grid charging is off (docs/api.md)
    (
        "storm-autonomous-cheap",
        s(AUTO, grid_charging_allowed=False),
        HOME,
        PGE,
        CHEAP,
        STORM,
        sp(100, True),
    ),
    ("storm-self-no-grid-charging", s(grid_charging_allowed=False), HOME, None, PEAK, STORM,
     sp(100, True)),
    ("storm-backup-no-grid-charging", s(operation_mode="backup", grid_charging_allowed=False),
     HOME, None, PEAK, STORM, sp(100, True)),
    ("storm-disabled", s(storm_mode_enabled=False), HOME, None, PEAK, STORM, sp(20, False)),
    ("storm-enabled-no-alert", BASE, HOME, None, PEAK, NO_ALERTS, sp(20, False)),
    # autonomous without a tariff, or on a flat one: self-consumption
    ("auto-no-tariff", AUTO, HOME, None, PEAK, NO_ALERTS, sp(20, True)),
    ("auto-flat", AUTO, HOME, FLAT, PEAK, NO_ALERTS, sp(20, True)),
    ("auto-normal-period", AUTO, HOME, THREE_LEVEL, DAY, NO_ALERTS, sp(20, True)),
    # autonomous, cheapest period: charge at full power until full, only with grid charging
    ("auto-cheap-charges", AUTO, HOME, PGE, CHEAP, NO_ALERTS, sp(20, True, battery=-5000)),
    (
        "auto-cheap-three-level",
        AUTO,
        HOME,
        THREE_LEVEL,
        at("2024-01-01T06:59"),
        NO_ALERTS,
        sp(20, True, battery=-5000),
    ),
    ("auto-cheap-full", AUTO, i(soc_pct=100.0), PGE, CHEAP, NO_ALERTS, sp(20, True)),
    (
        "auto-cheap-no-grid-charging",
        s(AUTO, grid_charging_allowed=False),
        HOME,
        PGE,
        CHEAP,
        NO_ALERTS,
        sp(20, False),
    ),
    ("auto-cheap-grid-down", AUTO, i(grid_up=False), PGE, CHEAP, NO_ALERTS, sp(20, True)),
    ("auto-cheap-soc-unknown", AUTO, i(soc_pct=None), PGE, CHEAP, NO_ALERTS, sp(20, True)),
    # autonomous, expensive period: cover the home (pv_only) ...
    ("auto-peak-pv-only", AUTO, HOME, PGE, PEAK, NO_ALERTS, sp(20, True, battery=1500)),
    (
        "auto-peak-pv-only-with-solar",
        AUTO,
        i(solar_w=3000.0),
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, True, battery=1500),
    ),
    (
        "auto-peak-big-load",
        AUTO,
        i(load_w=8000.0),
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, True, battery=5000),
    ),
    ("auto-peak-no-load", AUTO, i(load_w=0.0), PGE, PEAK, NO_ALERTS, sp(20, True)),
    # ... export everything when the battery may export and the sell price is high ...
    (
        "auto-peak-battery-ok-high-sell",
        s(AUTO, export_rule="battery_ok"),
        HOME,
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, True, battery=5000),
    ),
    (
        "auto-peak-battery-ok-without-sell-tariff",
        s(AUTO, export_rule="battery_ok"),
        HOME,
        THREE_LEVEL,
        PEAK,
        NO_ALERTS,
        sp(20, True, battery=1500),
    ),
    (
        "auto-partial-battery-ok-normal-sell",
        s(AUTO, export_rule="battery_ok"),
        HOME,
        PGE,
        PARTIAL,
        NO_ALERTS,
        sp(20, True, battery=1500),
    ),
    # ... never export: self-consumption covers the deficit without curtailing solar
    (
        "auto-peak-never",
        s(AUTO, export_rule="never"),
        HOME,
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, True, export=0),
    ),
    # ... and always respect the reserve
    ("auto-peak-at-reserve", AUTO, i(soc_pct=20.0), PGE, PEAK, NO_ALERTS, sp(20, True)),
    (
        "auto-peak-below-reserve",
        s(AUTO, backup_reserve_pct=60),
        HOME,
        PGE,
        PEAK,
        NO_ALERTS,
        sp(60, True),
    ),
    (
        "auto-peak-just-above-reserve",
        AUTO,
        i(soc_pct=20.5),
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, True, battery=1500),
    ),
    ("auto-peak-grid-down", AUTO, i(grid_up=False), PGE, PEAK, NO_ALERTS, sp(20, True)),
    (
        "auto-peak-no-grid-charging",
        s(AUTO, grid_charging_allowed=False),
        HOME,
        PGE,
        PEAK,
        NO_ALERTS,
        sp(20, False, battery=1500),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_policy_table(case: Case) -> None:
    _, settings, state, tariff, now, alerts, expected = case
    assert compute_setpoints(settings, state, tariff, now, alerts) == expected


def test_battery_commands_carry_the_given_revert_timeout() -> None:
    charge = compute_setpoints(AUTO, HOME, PGE, CHEAP, NO_ALERTS, revert_s=90)
    assert (charge.battery_w, charge.revert_s) == (-5000, 90)
    idle = compute_setpoints(BASE, HOME, PGE, CHEAP, NO_ALERTS, revert_s=90)
    assert (idle.battery_w, idle.revert_s) == (None, 0)


@pytest.mark.parametrize(
    ("enabled", "alert", "active"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_storm_mode_active(enabled: bool, alert: bool, active: bool) -> None:
    settings = s(storm_mode_enabled=enabled, operation_mode="autonomous")
    assert storm_mode_active(settings, Alerts(storm=alert)) is active
    assert effective_mode(settings, Alerts(storm=alert)) == ("backup" if active else "autonomous")


# --- settings -----------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    assert SiteSettings() == SiteSettings(
        backup_reserve_pct=20,
        operation_mode="self_consumption",
        storm_mode_enabled=True,
        export_rule="pv_only",
        grid_charging_allowed=True,
        off_grid_ev_reserve_pct=0,
        tariff=None,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backup_reserve_pct": 101}, "backup_reserve_pct must be an integer 0..100, got 101"),
        ({"off_grid_ev_reserve_pct": -1}, "off_grid_ev_reserve_pct must be an integer 0..100"),
        ({"backup_reserve_pct": True}, "backup_reserve_pct must be an integer"),
        ({"operation_mode": "eco"}, "operation_mode must be one of"),
        ({"export_rule": "always"}, "export_rule must be one of"),
    ],
)
def test_settings_reject_out_of_range_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SiteSettings(**changes)


def test_settings_round_trip_with_the_original_tariff_wire() -> None:
    wire = pge_like_sample()
    wire["x_vendor"] = "kept"
    settings = SiteSettings(
        backup_reserve_pct=80,
        operation_mode="autonomous",
        storm_mode_enabled=False,
        export_rule="battery_ok",
        grid_charging_allowed=False,
        off_grid_ev_reserve_pct=30,
        tariff=parse_tariff(wire),
    )
    data = settings.to_json()
    assert data["tariff"] == wire
    assert SiteSettings.from_json(data) == settings
    text = json.dumps(data)
    loaded = SiteSettings.from_json(text)
    assert loaded == settings
    assert loaded.tariff is not None
    assert loaded.tariff.wire() == wire
    assert SiteSettings.from_json(text.encode()) == settings


def test_settings_missing_keys_take_defaults() -> None:
    assert SiteSettings.from_json("{}") == SiteSettings()
    assert SiteSettings.from_json({"backup_reserve_pct": 55, "future_key": 1}) == SiteSettings(
        backup_reserve_pct=55
    )


@pytest.mark.parametrize(
    ("stored", "error"),
    [
        ('{"operation_mode": "eco"}', ValueError),
        ('{"backup_reserve_pct": "20"}', ValueError),
        ("not json", ValueError),
        ({"backup_reserve_pct": 120}, ValueError),
        ({"tariff": {"seasons": {}}}, TariffError),
    ],
)
def test_settings_reject_bad_stored_data(stored: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        SiteSettings.from_json(stored)
