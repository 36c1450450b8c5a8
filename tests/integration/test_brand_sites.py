"""SolarEdge StorEdge and SMA Sunny Boy Storage sites end to end: twin + profile driver + Fleet API.

Every command goes through tesla-fleet-api and the gateway and is checked in the twin's truth
(its physics and its registers), never in the gateway's answer.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pymodbus.client import AsyncModbusTcpClient
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.tesla.energysite import EnergySite

from drivers.base import Capability
from drivers.profile.driver import ProfileDriver
from drivers.profile.options import ProfileOptions
from drivers.scan import scan
from drivers.transport import ModbusPool, Transports
from gateway.core.config import Config, DeviceConfig, GatewaySection, SiteConfig
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.site import Site
from gateway.web.app import create_app
from gateway.web.keys import SITES
from gateway.web.server import GatewayRunner
from simulator import (
    DeviceConfig as SimDevice,
)
from simulator import (
    HomeConfig,
    SimHome,
    Simulator,
    SimulatorConfig,
    SmaSbsConfig,
    SolarEdgeStorEdgeConfig,
)
from simulator.config import ControlConfig
from tests.helpers import SECRET, SITE_ID, eventually, token
from tests.samples import pge_like_sample

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UPDATED = {"response": {"code": 201, "message": "Updated"}}
HOME = "home-1001"
SUNNY = datetime(2026, 7, 15, 9, 0, tzinfo=UTC)  # 11:00 in Berlin
NIGHT = datetime(2026, 7, 15, 1, 0, tzinfo=UTC)  # 03:00 in Berlin: off-peak in the sample tariff

FAMILIES: dict[str, tuple[Callable[[], SimDevice], str]] = {
    "solaredge": (lambda: SolarEdgeStorEdgeConfig(id="device", kind="solaredge_storedge"),
                  "solaredge_storedge"),
    "sma": (lambda: SmaSbsConfig(id="device", kind="sma_sbs"), "sma_sunny_boy_storage"),
}


@asynccontextmanager
async def brand_home(family: str, start: datetime) -> AsyncIterator[Simulator]:
    """The family's twin in a home whose physics only moves when a test steps it. The SMA home
    has no PV of its own: the SBS measures no PV, and a PV inverter would be a device of its own."""
    device, _ = FAMILIES[family]
    pv = 0 if family == "sma" else 8000
    config = SimulatorConfig(control=ControlConfig(port=0), start=start, tick_s=0, homes=[
        HomeConfig(id=HOME, initial_soc_pct=60, pv_peak_w=pv, devices=[device()])])
    async with Simulator(config) as sim:
        yield sim


def site_config(
    sim: Simulator, family: str, data_dir: Path, *, confirm_timeout_s: float = 2.0
) -> Config:
    ep = sim.endpoint(f"{HOME}/device")
    device = DeviceConfig.model_validate({
        "name": "device", "type": "profile", "poll_interval_s": 0.1,
        "options": {"profile": FAMILIES[family][1], "host": ep.host, "port": ep.port,
                    "unit_id": ep.unit_id, "timeout_s": 0.5,
                    "confirm_timeout_s": confirm_timeout_s},
    })
    return Config(
        gateway=GatewaySection(port=0, data_dir=data_dir, jwt_secret=SECRET, command_timeout_s=3.0,
                               reconcile_interval_s=0.5),
        sites=[SiteConfig(energy_site_id=SITE_ID, name="Brand Home", time_zone="Europe/Berlin",
                          devices=[device])],
    )


@asynccontextmanager
async def fleet_site(
    sim: Simulator, family: str, tmp_path: Path, clock: Clock = utc_now, *,
    confirm_timeout_s: float = 2.0,
) -> AsyncIterator[tuple[EnergySite, Site, str]]:
    """A gateway serving the family's site on a free port, a tesla-fleet-api client of it, its URL."""
    config = site_config(sim, family, tmp_path / "data", confirm_timeout_s=confirm_timeout_s)
    app = create_app(config, clock=clock)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        site = app[SITES][SITE_ID]
        await eventually(lambda: not site.offline() and site.applied is not None)
        async with aiohttp.ClientSession() as session:
            url = f"http://{host}:{port}"
            api = TeslaFleetApi(session=session, access_token=token(), server=url)
            yield api.energySites.create(SITE_ID), site, url
    finally:
        await runner.cleanup()


def twin(sim: Simulator) -> SimHome:
    return sim.homes[HOME]


# --- SolarEdge StorEdge ------------------------------------------------------------------------


async def test_solaredge_site_live_status_and_commands(tmp_path: Path) -> None:
    async with brand_home("solaredge", SUNNY) as sim:
        home = twin(sim)
        async with fleet_site(sim, "solaredge", tmp_path) as (site, gw_site, _):
            truth = home.truth()
            live = (await site.live_status())["response"]
            assert live["solar_power"] == pytest.approx(truth.solar_w, abs=2)
            assert live["battery_power"] == pytest.approx(truth.battery_w, abs=2)
            assert live["grid_power"] == pytest.approx(truth.grid_w, abs=2)
            assert live["percentage_charged"] == pytest.approx(truth.soc_pct, abs=0.5)
            assert live["grid_status"] == "Active"
            components = (await site.site_info())["response"]["components"]
            assert components["battery"] is True
            assert components["solar"] is True

            assert await site.backup(40) == UPDATED
            assert home.truth().reserve_pct == 40  # confirmed on the device before the answer
            device = home.solaredge("device")
            assert device.settings.backup_reserve_pct == 40

            assert await site.grid_import_export(
                customer_preferred_export_rule="never") == {"response": ""}
            assert home.truth().export_limit_w == 0
            assert device.settings.export_mode == 1

            home.set_grid_up(False)
            home.step(1)

            async def grid_status() -> str:
                return str((await site.live_status())["response"]["grid_status"])

            await eventually(grid_status, lambda s: s == "Inactive")
            home.set_grid_up(True)
            home.step(1)
            await eventually(grid_status, lambda s: s == "Active")
            assert gw_site.drift_count == 0


async def test_solaredge_autonomous_charges_in_remote_control_mode(tmp_path: Path) -> None:
    fixed = NIGHT.astimezone(BERLIN)
    async with brand_home("solaredge", NIGHT) as sim:
        home = twin(sim)
        async with fleet_site(sim, "solaredge", tmp_path, clock=lambda: fixed) as (site, _, _):
            assert await site.time_of_use_settings(pge_like_sample()) == UPDATED
            assert await site.operation("autonomous") == UPDATED
            command = home.truth().battery_command_w
            assert command is not None
            assert command < 0  # off-peak: charging from the grid
            device = home.solaredge("device")
            assert device.settings.control_mode == 4  # remote control, entered by the command
            assert device.settings.ac_charge_policy == 1
            assert device.command_until is not None  # the inverter ends it if the gateway goes
            assert await site.operation("self_consumption") == UPDATED
            assert home.truth().battery_command_w is None
            assert device.settings.control_mode == 1


# --- SMA Sunny Boy Storage ---------------------------------------------------------------------


@pytest.mark.parametrize(("hour_utc", "charging"), [(1, True), (16, False)])
async def test_sma_site_follows_the_tariff_through_its_bms_mode(
    tmp_path: Path, hour_utc: int, charging: bool
) -> None:
    start = datetime(2026, 7, 15, hour_utc, 0, tzinfo=UTC)
    fixed = start.astimezone(BERLIN)
    async with brand_home("sma", start) as sim:
        home = twin(sim)
        async with fleet_site(sim, "sma", tmp_path, clock=lambda: fixed) as (site, _, _):
            truth = home.truth()
            live = (await site.live_status())["response"]
            assert live["battery_power"] == pytest.approx(truth.battery_w, abs=1)
            assert live["grid_power"] == pytest.approx(truth.grid_w, abs=1)
            assert live["load_power"] == pytest.approx(truth.load_w, abs=2)
            assert live["percentage_charged"] == pytest.approx(truth.soc_pct, abs=0.6)
            assert await site.time_of_use_settings(pge_like_sample()) == UPDATED
            assert await site.operation("autonomous") == UPDATED
            command = home.truth().battery_command_w
            assert command is not None
            device = home.sma("device")
            if charging:  # off-peak: the BMS charges from the grid
                assert command < 0
                assert device.settings.op_mode == 2289
            else:  # on-peak: the BMS discharges to cover the home
                assert command > 0
                assert device.settings.op_mode == 2290
            assert await site.operation("self_consumption") == UPDATED
            assert home.truth().battery_command_w is None
            assert device.settings.op_mode == 2424


async def test_sma_refused_command_answers_540_and_rolls_back(tmp_path: Path) -> None:
    fixed = NIGHT.astimezone(BERLIN)
    async with brand_home("sma", NIGHT) as sim:
        home = twin(sim)
        async with fleet_site(sim, "sma", tmp_path, clock=lambda: fixed) as (site, gw_site, url):
            assert await site.time_of_use_settings(pge_like_sample()) == UPDATED
            device = home.sma("device")
            await device.apply_faults(exception_code=3)  # ILLEGAL DATA VALUE on every request
            async with aiohttp.ClientSession() as http, http.post(
                f"{url}/api/1/energy_sites/{SITE_ID}/operation",
                json={"default_real_mode": "autonomous"},
                headers={"Authorization": f"Bearer {token()}"},
            ) as resp:
                status, body = resp.status, await resp.json()
            assert status == 540, body
            assert body["error"] == "device rejected"
            await device.apply_faults(exception_code=None)
            assert gw_site.settings.operation_mode == "self_consumption"  # rolled back
            handle = gw_site.devices[0]
            polls = handle.polls
            await eventually(lambda: handle.polls >= polls + 5)
            assert home.truth().battery_command_w is None  # and nothing applies it later
            assert device.settings.op_mode == 2424


async def test_sma_unconfirmed_command_is_kept_and_applied_when_the_twin_takes_writes(
    tmp_path: Path,
) -> None:
    fixed = NIGHT.astimezone(BERLIN)
    async with brand_home("sma", NIGHT) as sim:
        home = twin(sim)
        async with fleet_site(sim, "sma", tmp_path, clock=lambda: fixed,
                              confirm_timeout_s=0.5) as (site, _, url):
            assert await site.time_of_use_settings(pge_like_sample()) == UPDATED
            device = home.sma("device")
            await device.apply_faults(ignore_writes=True)  # acknowledged, never applied
            async with aiohttp.ClientSession() as http, http.post(
                f"{url}/api/1/energy_sites/{SITE_ID}/operation",
                json={"default_real_mode": "autonomous"},
                headers={"Authorization": f"Bearer {token()}"},
            ) as resp:
                status, body = resp.status, await resp.json()
            assert status == 504, body
            assert "applies it when the device is back" in body["error_description"]
            assert home.truth().battery_command_w is None
            await device.apply_faults(ignore_writes=False)
            # the reconciliation puts the kept command on the device: charging off-peak
            await eventually(lambda: (home.truth().battery_command_w or 0) < 0)
            assert device.settings.op_mode == 2289


# --- transactions per command (counted by the twin) ----------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_transactions_per_command(family: str) -> None:
    async with brand_home(family, NIGHT) as sim:
        ep = sim.endpoint(f"{HOME}/device")
        device = twin(sim).register_twin("device")
        transports = Transports(modbus=ModbusPool(timeout_s=0.5, backoff_max_s=0.3))
        options = ProfileOptions(profile=FAMILIES[family][1], host=ep.host, port=ep.port,
                                 unit_id=ep.unit_id)
        driver = ProfileDriver("device", options, transports)
        try:
            await driver.connect()
            await driver.read()
            held = await driver.read_back()
            before = device.stats.requests
            if family == "solaredge":
                await driver.apply(replace(held, reserve_pct=held.reserve_pct + 10))
                assert device.stats.requests - before == 2  # the reserve's FC16, one read-back
            else:
                await driver.apply(replace(held, battery_w=-1000, revert_s=600))
                # charge power, then the BMS mode (not adjacent: two writes), one read-back of
                # each (a gap between them)
                assert device.stats.requests - before == 4
        finally:
            await driver.close()
            await transports.close()


async def test_the_sma_twin_answers_only_unit_3() -> None:
    async with brand_home("sma", NIGHT) as sim:
        ep = sim.endpoint(f"{HOME}/device")
        assert ep.unit_id == 3
        client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=1, retries=0, reconnect_delay=0)
        try:
            assert await client.connect()
            wrong = await client.read_holding_registers(30051, count=2, device_id=1)
            assert wrong.isError()
        finally:
            client.close()


async def test_scan_names_both_families() -> None:
    config = SimulatorConfig(start=NIGHT, tick_s=0, homes=[HomeConfig(id=HOME, devices=[
        SolarEdgeStorEdgeConfig(id="se", kind="solaredge_storedge", serial_number="SE9"),
        SmaSbsConfig(id="sma", kind="sma_sbs", serial_number=99)])])
    async with Simulator(config) as sim:
        se, sma = sim.endpoint(f"{HOME}/se").port, sim.endpoint(f"{HOME}/sma").port
        found = [*(await scan("127.0.0.1", [se], [1], timeout_s=0.5, total_s=20, settle_s=0,
                              busy_backoff_s=(0.05, 0.1, 0.2))).found,
                 *(await scan("127.0.0.1", [sma], [3], timeout_s=0.5, total_s=20, settle_s=0)).found]
    by_port = {f.port: f for f in found}
    # SolarEdge speaks SunSpec too; its profile also reaches its storage control, so it wins.
    assert by_port[se].options["profile"] == "solaredge_storedge"
    assert by_port[se].single_client
    assert by_port[se].info.serial_number == "SE9"
    assert (by_port[sma].unit_id, by_port[sma].options["profile"]) == (3, "sma_sunny_boy_storage")
    assert Capability.BATTERY_POWER in by_port[sma].capabilities
