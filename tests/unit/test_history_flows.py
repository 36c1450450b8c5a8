"""Power flows: splitting a site reading into seven flows (W) and integrating them (Wh)."""

from __future__ import annotations

import random
from dataclasses import astuple
from datetime import UTC, datetime, timedelta

import pytest

from drivers.base import DeviceTelemetry
from gateway.core.history import FlowEnergy, Flows, PowerSample, integrate, split_flows
from tests.samples import power_sample as sample

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("solar", "battery", "grid", "load", "expected"),
    [
        pytest.param(
            5000, -2000, -2000, 1000,
            Flows(solar_to_home=1000, solar_to_battery=2000, solar_to_grid=2000),
            id="sunny-export",
        ),
        pytest.param(0, 0, 800, 800, Flows(grid_to_home=800), id="night-import"),
        pytest.param(0, 1500, 0, 1500, Flows(battery_to_home=1500), id="battery-covers-load"),
        pytest.param(
            300, 1000, 500, 1800,
            Flows(solar_to_home=300, battery_to_home=1000, grid_to_home=500),
            id="battery-and-grid-share-load",
        ),
        pytest.param(
            0, 3000, -2500, 500,
            Flows(battery_to_home=500, battery_to_grid=2500),
            id="battery-export",
        ),
        pytest.param(
            0, -3000, 3700, 700, Flows(grid_to_home=700, grid_to_battery=3000), id="grid-charging"
        ),
        pytest.param(
            1000, -3000, 2700, 700,
            Flows(solar_to_home=700, grid_to_battery=2700, solar_to_battery=300),
            id="grid-charging-with-solar",
        ),
        pytest.param(
            2000, 1000, 0, 3000, Flows(solar_to_home=2000, battery_to_home=1000), id="islanded"
        ),
        pytest.param(
            4000, -3000, 0, 1000,
            Flows(solar_to_home=1000, solar_to_battery=3000),
            id="islanded-surplus",
        ),
    ],
)  # fmt: skip
def test_split_flows_regimes(
    solar: float, battery: float, grid: float, load: float, expected: Flows
) -> None:
    assert split_flows(solar, battery, grid, load) == expected


def test_split_flows_conserves_every_balanced_reading() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        solar = rng.choice([0.0, rng.uniform(0, 8000)])
        battery = rng.choice([0.0, rng.uniform(-5000, 5000)])
        grid = rng.choice([0.0, rng.uniform(-6000, 6000)])
        load = solar + battery + grid
        if load < 0:
            continue
        f = split_flows(solar, battery, grid, load)
        assert min(astuple(f)) >= 0
        ok = pytest.approx
        assert f.solar_to_home + f.solar_to_battery + f.solar_to_grid == ok(solar)
        assert f.battery_to_home + f.battery_to_grid == ok(max(battery, 0))
        assert f.solar_to_battery + f.grid_to_battery == ok(max(-battery, 0))
        assert f.grid_to_home + f.grid_to_battery == ok(max(grid, 0))
        assert f.solar_to_grid + f.battery_to_grid == ok(max(-grid, 0))
        assert f.solar_to_home + f.battery_to_home + f.grid_to_home == ok(load)


def test_split_flows_never_invents_energy_from_an_unbalanced_reading() -> None:
    # The load meter says 0 W while 5 kW of solar goes nowhere: nothing is attributed.
    assert split_flows(5000, 0, 0, 0) == Flows()
    # Negative PV standby draw counts as no solar.
    assert split_flows(-5, 0, 300, 300) == Flows(grid_to_home=300)


# ------------------------------------------------------------------------------ integrate


def test_integrate_is_left_rectangle_in_wh() -> None:
    energy = integrate(sample(T0, solar=6000), sample(T0 + timedelta(minutes=1), solar=0))
    assert energy == FlowEnergy(solar_to_home=100.0)


def test_integrate_skips_gaps_and_backwards_steps() -> None:
    a = sample(T0, grid=1200)
    assert integrate(a, sample(T0 + timedelta(minutes=5))) == FlowEnergy(grid_to_home=100.0)
    assert integrate(a, sample(T0 + timedelta(minutes=5, seconds=1))).is_zero()
    assert integrate(a, sample(T0 + timedelta(minutes=9)), max_gap=timedelta(minutes=10)) == (
        FlowEnergy(grid_to_home=180.0)
    )
    assert integrate(a, sample(T0)).is_zero()
    assert integrate(a, sample(T0 - timedelta(seconds=1))).is_zero()


def test_power_sample_from_telemetry_derives_missing_load() -> None:
    t = DeviceTelemetry(taken_at=T0, solar_w=3000, battery_w=-1000, grid_w=None, load_w=None)
    s = PowerSample.from_telemetry(t)
    assert s.flows == Flows(solar_to_home=2000, solar_to_battery=1000)
    with pytest.raises(ValueError, match="timezone-aware"):
        PowerSample(taken_at=datetime(2024, 1, 1))  # noqa: DTZ001
