"""The whole Fleet API through tesla-fleet-api against the gateway on the simulator.

Every command is checked on the simulator's truth (its registers and physics), never on the
gateway's echo.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.tesla.energysite import EnergySite

from gateway.core.config import Config, DeviceConfig
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway
from tests.samples import pge_like_sample

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UPDATED = {"response": {"code": 201, "message": "Updated"}}


@pytest_asyncio.fixture
async def energy_site(gateway: RunningGateway) -> AsyncIterator[EnergySite]:
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        yield api.energySites.create(SITE_ID)


def truth(sim: Simulator):  # type: ignore[no-untyped-def]
    return sim.homes["home-1001"].truth()


async def register(sim: Simulator, model_id: int, offset: int) -> int:
    device = sim.homes["home-1001"].device("inverter")
    return (await device.read_registers(device.model_address(model_id) + offset, 1))[0]


async def test_products_lists_the_site_with_components(gateway: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        body = await api.products()
    assert body["count"] == 1
    entry = body["response"][0]
    assert entry["energy_site_id"] == SITE_ID
    assert entry["device_type"] == "energy"
    assert entry["resource_type"] == "battery"
    assert entry["components"]["battery"] is True
    assert entry["components"]["solar"] is True
    assert 0 <= entry["percentage_charged"] <= 100


async def test_live_status_matches_the_simulated_home(
    energy_site: EnergySite, sim: Simulator
) -> None:
    body = (await energy_site.live_status())["response"]
    for key in ("solar_power", "battery_power", "grid_power", "load_power", "percentage_charged",
                "energy_left", "total_pack_energy", "grid_status", "island_status",
                "storm_mode_active", "timestamp", "wall_connectors", "backup_capable"):
        assert key in body, key
    assert body["load_power"] == body["solar_power"] + body["battery_power"] + body["grid_power"]
    assert body["grid_status"] == "Active"
    assert body["island_status"] == "on_grid"
    assert body["wall_connectors"] == []
    assert body["total_pack_energy"] == truth(sim).capacity_wh
    assert abs(body["percentage_charged"] - truth(sim).soc_pct) < 1.0
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == stamp.astimezone(BERLIN).utcoffset()


async def test_live_status_follows_a_grid_outage(
    energy_site: EnergySite, sim: Simulator
) -> None:
    sim.homes["home-1001"].set_grid_up(False)

    async def grid_status() -> str:
        return str((await energy_site.live_status())["response"]["grid_status"])

    await eventually(grid_status, lambda s: s == "Inactive")
    body = (await energy_site.live_status())["response"]
    assert body["island_status"] == "off_grid_unintentional"
    assert body["grid_power"] == 0
    sim.homes["home-1001"].set_grid_up(True)
    await eventually(grid_status, lambda s: s == "Active")


async def test_site_info_derives_components_and_nameplates(
    energy_site: EnergySite, sim: Simulator
) -> None:
    body = (await energy_site.site_info())["response"]
    comps = body["components"]
    assert comps["battery"]
    assert comps["solar"]
    assert comps["grid"]
    assert comps["storm_mode_capable"] is True
    assert comps["customer_preferred_export_rule"] == "pv_only"
    assert body["installation_time_zone"] == "Europe/Berlin"
    assert body["battery_count"] == 1
    battery = comps["batteries"][0]
    home = sim.homes["home-1001"].config
    assert battery["nameplate_energy"] == home.battery_capacity_wh
    assert battery["nameplate_max_charge_power"] == home.battery_max_charge_w
    assert battery["serial_number"] == "SIM1001"
    assert body["nameplate_energy"] == home.battery_capacity_wh


async def test_backup_reserve_lands_in_the_inverter(
    energy_site: EnergySite, sim: Simulator
) -> None:
    assert await energy_site.backup(35) == UPDATED
    # confirmed on the device before the answer: no waiting needed
    assert truth(sim).reserve_pct == 35
    assert await register(sim, 124, 7) == 35  # MinRsvPct, SF 0
    assert (await energy_site.site_info())["response"]["backup_reserve_percent"] == 35


async def test_operation_backup_holds_a_full_battery(
    energy_site: EnergySite, sim: Simulator
) -> None:
    assert await energy_site.operation("backup") == UPDATED
    assert truth(sim).reserve_pct == 100
    assert truth(sim).grid_charging is True  # fills from the grid: the user allows it
    assert (await energy_site.site_info())["response"]["default_real_mode"] == "backup"
    assert await energy_site.operation("self_consumption") == UPDATED
    assert truth(sim).reserve_pct == 20
    assert truth(sim).grid_charging is False


def with_storm_bit(config: Config) -> Config:
    """``config`` with site 1001's inverter reading the simulator's storm watch bit (EvtVnd1 bit 0).

    A vendor bit means nothing unless configured (docs/drivers.md); the driver's options sit in
    the device's ``options`` when the config has them, else beside its common keys.
    """
    site = config.sites[0]
    raw = site.devices[0].model_dump()
    options = raw["options"] if isinstance(raw.get("options"), dict) else raw
    options["storm_alert"] = {"evtvnd1_bit": 0}
    device = DeviceConfig.model_validate(raw)
    return config.model_copy(update={"sites": [site.model_copy(update={"devices": [device]})]})


async def test_storm_mode_with_an_alert_behaves_as_backup(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = with_storm_bit(gateway_config(sim, tmp_path / "data"))
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        energy_site = api.energySites.create(SITE_ID)
        assert await energy_site.storm_mode(True) == UPDATED
        assert truth(sim).reserve_pct == 20
        sim.homes["home-1001"].set_storm_alert(True)

        async def storm_active() -> bool:
            return bool((await energy_site.live_status())["response"]["storm_mode_active"])

        await eventually(storm_active)
        await eventually(lambda: truth(sim).reserve_pct == 100)
        sim.homes["home-1001"].set_storm_alert(False)
        await eventually(lambda: truth(sim).reserve_pct == 20)
        assert await energy_site.storm_mode(False) == UPDATED
        sim.homes["home-1001"].set_storm_alert(True)
        await eventually(lambda: gateway.site.reading().storm_alert)  # the gateway saw the alert
        assert not await storm_active()
        assert truth(sim).reserve_pct == 20
        site_info = (await energy_site.site_info())["response"]
        assert site_info["user_settings"]["storm_mode_enabled"] is False


async def test_grid_import_export_changes_export_limit_and_grid_charging(
    energy_site: EnergySite, sim: Simulator
) -> None:
    assert await energy_site.grid_import_export(None, "never") == {"response": ""}
    assert truth(sim).export_limit_w == 0
    assert await energy_site.grid_import_export(None, "battery_ok") == {"response": ""}
    assert truth(sim).export_limit_w is None
    assert await energy_site.operation("backup") == UPDATED
    assert truth(sim).grid_charging is True
    assert await energy_site.grid_import_export(True, None) == {"response": ""}
    assert truth(sim).grid_charging is False
    comps = (await energy_site.site_info())["response"]["components"]
    assert comps["disallow_charge_from_grid_with_solar_installed"] is True
    assert comps["customer_preferred_export_rule"] == "battery_ok"
    assert await energy_site.grid_import_export() == {"response": ""}  # {} changes nothing


async def test_off_grid_vehicle_charging_reserve(energy_site: EnergySite) -> None:
    assert await energy_site.off_grid_vehicle_charging_reserve(30) == UPDATED
    site_info = (await energy_site.site_info())["response"]
    assert site_info["off_grid_vehicle_charging_reserve_percent"] == 30


async def test_time_of_use_settings_stored_and_served(energy_site: EnergySite) -> None:
    tariff = pge_like_sample()
    assert await energy_site.time_of_use_settings(tariff) == UPDATED
    site_info = (await energy_site.site_info())["response"]
    assert site_info["tariff_content_v2"] == tariff


@pytest.mark.parametrize(("hour", "charging"), [(3, True), (18, False)])
async def test_autonomous_follows_the_tariff(
    start_gateway: GatewayFactory, sim: Simulator, hour: int, charging: bool
) -> None:
    fixed = datetime(2026, 7, 15, hour, 0, tzinfo=BERLIN)
    async with start_gateway(clock=lambda: fixed) as gw, aiohttp.ClientSession() as session:
        site = TeslaFleetApi(session=session, access_token=token(),
                             server=gw.url).energySites.create(SITE_ID)
        assert await site.time_of_use_settings(pge_like_sample()) == UPDATED
        assert await site.operation("autonomous") == UPDATED
        command = truth(sim).battery_command_w
        assert command is not None
        if charging:  # off-peak: charge from the grid at full power
            assert command < 0
            assert truth(sim).grid_charging is True
        else:  # on-peak with pv_only: discharge to cover the load, not into the grid
            assert command > 0
        # the device holds commands in whole % of its rating: that rounding is not drift
        drift, passes = gw.site.drift_count, gw.site.reconciles
        await eventually(lambda: gw.site.reconciles >= passes + 3)
        assert gw.site.drift_count == drift


async def test_history_endpoints(energy_site: EnergySite, sim: Simulator) -> None:
    energy = (await energy_site.energy_history("day"))["response"]
    assert energy["installation_time_zone"] == "Europe/Berlin"
    assert energy["time_series"]
    assert datetime.fromisoformat(energy["time_series"][0]["timestamp"]).tzinfo is not None
    backup = (await energy_site.backup_history("day"))["response"]
    assert backup == {"events": [], "total_events": 0}
    charge = (await energy_site.charge_history("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z"))
    assert charge["response"]["charge_history"] == []


async def test_grid_outage_becomes_a_backup_event(
    energy_site: EnergySite, gateway: RunningGateway, sim: Simulator
) -> None:
    home = sim.homes["home-1001"]
    home.set_grid_up(False)
    await eventually(lambda: gateway.site.reading().grid_up is False)
    home.set_grid_up(True)
    await eventually(lambda: gateway.site.reading().grid_up is True)

    async def events() -> int:
        return int((await energy_site.backup_history("day"))["response"]["total_events"])

    assert await eventually(events, lambda n: n == 1) == 1


async def test_a_base_url_with_a_trailing_slash_still_works(
    gateway: RunningGateway, sim: Simulator
) -> None:
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url + "/")
        energy_site = api.energySites.create(SITE_ID)  # requests go to //api/1/...
        assert "solar_power" in (await energy_site.live_status())["response"]
        assert await energy_site.backup(41) == UPDATED
    assert truth(sim).reserve_pct == 41
