"""Charging rules as tables: solar surplus, off-grid reserve, limits, clock offset, meter samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.charging.rules import (
    ChargerRating,
    ReserveRule,
    SolarRule,
    SolarState,
    combined_limit,
    follow_surplus,
    outage_limit,
    surplus_w,
)
from gateway.core.charging.sessions import (
    ClockOffset,
    MeterSample,
    meter_samples,
    parse_timestamp,
    session_of,
    wall_connector_state,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
THREE = ChargerRating()  # 6..16 A, 3 x 230 V: 690 W per A
RULE = SolarRule(start_surplus_w=1400, stop_delay_s=300, battery_priority_pct=50)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.mark.parametrize(("ev_w", "grid_w", "battery_w", "soc", "expected"), [
    (0, -3000, 0, 60, 3000),           # exporting 3 kW: all of it is surplus
    (4140, 0, 0, 60, 4140),            # the car takes exactly the surplus
    (4140, 1000, 0, 60, 3140),         # importing: the car takes more than solar gives
    (0, 0, -2000, 60, 2000),           # battery above priority: its charging is surplus
    (0, 0, -2000, 40, 0),              # below priority: the battery charges first
    (4140, 0, 1000, 40, 3140),         # discharging into the car never counts as surplus
    (4140, 0, 1000, None, 3140),
])
def test_surplus(ev_w: float, grid_w: float, battery_w: float, soc: float | None,
                 expected: float) -> None:
    assert surplus_w(ev_w=ev_w, grid_w=grid_w, battery_w=battery_w, soc_pct=soc,
                     battery_priority_pct=50) == expected


@pytest.mark.parametrize(("available", "state", "now", "expected"), [
    # not charging: start only above the threshold and the minimum current's power
    (1000, SolarState(), 0, (0.0, SolarState())),
    (4000, SolarState(), 0, (0.0, SolarState())),  # above 1400 W but under 6 A (4140 W)
    (4140, SolarState(), 0, (6.0, SolarState(charging=True))),
    (8000, SolarState(), 0, (11.5, SolarState(charging=True))),  # 8000 / 690 = 11.59 -> 11.5
    (20000, SolarState(), 0, (16.0, SolarState(charging=True))),  # capped at the rating
    # charging: follow the surplus, down to the minimum
    (5000, SolarState(charging=True), 0, (7.2, SolarState(charging=True))),
    # surplus too short: hold the minimum current, remember since when
    (3000, SolarState(charging=True), 10, (6.0, SolarState(True, at(10)))),
    (3000, SolarState(True, at(10)), 200, (6.0, SolarState(True, at(10)))),
    # ... until the stop delay has passed
    (3000, SolarState(True, at(10)), 310, (0.0, SolarState())),
    # the surplus came back in time: forget the shortfall
    (5000, SolarState(True, at(10)), 200, (7.2, SolarState(charging=True))),
    (-500, SolarState(True, at(0)), 300, (0.0, SolarState())),
])
def test_follow_surplus(available: float, state: SolarState, now: float,
                        expected: tuple[float, SolarState]) -> None:
    assert follow_surplus(available, state, THREE, RULE, at(now)) == expected


@pytest.mark.parametrize(("grid_up", "soc", "stopped", "expected"), [
    (True, 10, True, (None, False)),      # the grid is up: no limit, a stop is forgotten
    (False, 50, False, (16.0, False)),    # well above reserve (20) + band (10)
    (False, 30, False, (16.0, False)),
    (False, 25, False, (11.0, False)),    # halfway through the band: halfway 6..16 A
    (False, 21, False, (7.0, False)),
    (False, 20, False, (0.0, True)),      # at the reserve: stop
    (False, 15, False, (0.0, True)),
    (False, 21, True, (0.0, True)),       # stopped: resume only 2 points above the reserve
    (False, 22, True, (8.0, False)),
    (False, None, False, (6.0, False)),   # an outage with no SoC: the least current
])
def test_outage_limit(grid_up: bool, soc: float | None, stopped: bool,
                      expected: tuple[float | None, bool]) -> None:
    assert outage_limit(grid_up=grid_up, soc_pct=soc, reserve_pct=20, stopped=stopped,
                        rating=THREE, rule=ReserveRule(band_pct=10, resume_pct=2)) == expected


@pytest.mark.parametrize(("limits", "expected"), [
    ((), 16.0), ((None, None), 16.0), ((10.0, None), 10.0), ((10.0, 7.5), 7.5),
    ((32.0,), 16.0), ((5.9,), 0.0), ((0.0, 12.0), 0.0),
])
def test_combined_limit(limits: tuple[float | None, ...], expected: float) -> None:
    assert combined_limit(*limits, rating=THREE) == expected


def test_clock_offset_takes_the_smallest_lag_so_replays_do_not_move_it() -> None:
    clock = ClockOffset()
    assert clock.ahead_s == 0
    clock.seen(at(3600 + 1), at(0))  # live message from a clock one hour ahead
    clock.seen(at(-7200), at(0))     # a queued message replayed two hours late
    assert clock.ahead_s == pytest.approx(3601)
    assert clock.corrected(at(3600), at(5)) == at(-1)
    assert clock.corrected(at(9999), at(5)) == at(5)  # never later than received


def test_clock_offset_ignores_small_delays() -> None:
    clock = ClockOffset()
    clock.seen(at(30), at(0))  # 30 s ahead: within the tolerance
    assert clock.ahead_s == 0
    assert clock.corrected(at(-10), at(0)) == at(-10)


@pytest.mark.parametrize(("start_wh", "stop_wh", "stop_s", "expected"), [
    (1000, 6500, 3600, (3600.0, 5500.0)),
    (1000, 900, 3600, (3600.0, 0.0)),    # a meter that went backwards counts nothing
    (0, 100, -5, (0.0, 100.0)),          # a stop stamped before its start: 0 s
])
def test_session_of(start_wh: float, stop_wh: float, stop_s: float,
                    expected: tuple[float, float]) -> None:
    session = session_of(started=T0, stopped=at(stop_s), meter_start_wh=start_wh,
                         meter_stop_wh=stop_wh)
    assert (session.start, session.duration_s, session.energy_wh) == (T0, *expected)


@pytest.mark.parametrize(("status", "state"), [
    (None, 0), ("Available", 2), ("Preparing", 4), ("Charging", 1), ("SuspendedEV", 9),
    ("SuspendedEVSE", 10), ("Finishing", 8), ("Faulted", 7), ("Whatever", 7),
])
def test_wall_connector_state(status: str | None, state: int) -> None:
    assert wall_connector_state(status) == state


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-06-01T12:00:00Z", T0), ("2026-06-01T14:00:00+02:00", T0),
    ("2026-06-01T12:00:00.123z", T0 + timedelta(milliseconds=123)),
    ("2026-06-01T12:00:00", None), ("yesterday", None), (12, None), ("9" * 50, None),
])
def test_parse_timestamp(text: object, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_meter_samples_read_units_phases_and_skip_what_is_unreadable() -> None:
    samples, skipped = meter_samples([
        {"timestamp": "2026-06-01T12:00:00Z", "sampled_value": [
            {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "2300", "measurand": "Power.Active.Import", "phase": "L1"},
            {"value": "2300", "measurand": "Power.Active.Import", "phase": "L2"},
            {"value": "71", "measurand": "SoC"},
            {"value": "abc", "measurand": "Power.Active.Import"},
            {"value": "nan"},
            {"value": "5", "measurand": "Current.Import", "unit": "A"},  # not used: ignored
        ]},
        {"timestamp": "2026-06-01T12:01:00Z", "sampled_value": [{"value": "12600"}]},
        {"timestamp": "bad", "sampled_value": []},
        "junk",
    ])
    assert samples == [MeterSample(T0, 4600.0, 12500.0, 71.0),
                       MeterSample(at(60), None, 12600.0, None)]
    assert skipped == 4
    assert meter_samples("not a list") == ([], 0)
