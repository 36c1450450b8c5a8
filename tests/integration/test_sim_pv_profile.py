"""A PV-only SunSpec inverter with a meter (profile "pv"): the solar face of a mixed site."""

from __future__ import annotations

from drivers.base import Capability
from drivers.sunspec.driver import SunSpecDriver
from drivers.sunspec.options import SunSpecOptions
from drivers.transport import Transports
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig


async def test_pv_profile_serves_no_storage_and_the_driver_sees_pv_and_meter_only() -> None:
    config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0, homes=[HomeConfig(
        id="h", devices=[SimDeviceConfig(id="pv", kind="sunspec", port=0, profile="pv")])])
    async with Simulator(config) as sim:
        ep = sim.endpoint("h/pv")
        transports = Transports()
        driver = SunSpecDriver("pv", SunSpecOptions(host=ep.host, port=ep.port), transports)
        try:
            info = await driver.connect()
            assert driver.map is not None
            assert driver.map.model_ids == (1, 103, 120, 123, 203)
            assert Capability.BATTERY not in driver.capabilities
            assert Capability.BACKUP_RESERVE not in driver.capabilities
            assert {Capability.SOLAR, Capability.GRID_METER, Capability.EXPORT_LIMIT} <= \
                driver.capabilities
            assert info.battery_capacity_wh is None
            reading = await driver.read()
            truth = sim.homes["h"].truth()
            assert reading.battery_w in (None, 0.0)
            assert reading.soc_pct is None
            assert abs((reading.solar_w or 0) - truth.solar_w) < 50
        finally:
            await driver.close()
            await transports.close()
