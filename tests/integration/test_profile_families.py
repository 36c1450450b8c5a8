"""Every profile family through the Fleet API on its simulated twin: conformance and the command pipeline.

The same tests run once per family (`FAMILIES`); every command is checked in the twin's physical
truth (its firmware and physics), never in the gateway's answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.tesla.energysite import EnergySite

from drivers.profile.catalog import PROFILES
from gateway.core.config import Config, DeviceConfig
from simulator import HuaweiSun2000Config, Simulator, SungrowShConfig
from simulator.config import ControlConfig, HomeConfig, SimulatorConfig
from simulator.config import DeviceConfig as SimDevice
from simulator.physics import HomeTruth
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway

UPDATED = {"response": {"code": 201, "message": "Updated"}}
HOME = "home-1001"


@dataclass(frozen=True)
class Family:
    """A profile family's twin in the simulator and the options that point the driver at it."""

    device: Callable[[], SimDevice]
    options: dict[str, Any]
    grid_charging: bool  # the family honours grid charging
    grid_status: bool  # the family reports the grid's state


FAMILIES: dict[str, Family] = {
    "sungrow_sh_rt": Family(
        device=lambda: SungrowShConfig(id="inverter", kind="sungrow_sh", serial_number="SG1001",
                                       answer_delay_s=0.002),
        options={}, grid_charging=False, grid_status=True,
    ),
    "huawei_sun2000": Family(
        device=lambda: HuaweiSun2000Config(id="inverter", kind="huawei_sun2000", serial_number="HW1001",
                                           settle_s=0.05, answer_delay_s=0.005),
        options={"settle_s": 0.05}, grid_charging=True, grid_status=True,
    ),
}  # fmt: skip


def test_every_profile_runs_the_fleet_tests() -> None:
    assert set(FAMILIES) == set(PROFILES)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def sim(family: str) -> AsyncIterator[Simulator]:
    """One simulated home whose inverter is the family's twin (replaces the SunSpec home)."""
    config = SimulatorConfig(
        control=ControlConfig(port=0), tick_s=0.05,
        homes=[HomeConfig(id=HOME, initial_soc_pct=60, devices=[FAMILIES[family].device()])],
    )  # fmt: skip
    async with Simulator(config) as simulator:
        yield simulator


def profile_config(sim: Simulator, family: str, data_dir: Path, confirm_timeout_s: float = 2.0) -> Config:
    """The test gateway config with its one device a profile device on the twin."""
    config = gateway_config(sim, data_dir)
    ep = sim.endpoint(f"{HOME}/inverter")
    device = DeviceConfig.model_validate({
        "name": "inverter", "type": "profile", "poll_interval_s": 0.1,
        "options": {"profile": family, "host": ep.host, "port": ep.port, "unit_id": ep.unit_id,
                    "timeout_s": 0.5, "confirm_timeout_s": confirm_timeout_s,
                    **FAMILIES[family].options},
    })  # fmt: skip
    site = config.sites[0].model_copy(update={"devices": [device]})
    return config.model_copy(update={"sites": [site]})


@pytest_asyncio.fixture
async def gateway(
    start_gateway: GatewayFactory, sim: Simulator, family: str, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    async with start_gateway(profile_config(sim, family, tmp_path / "data")) as running:
        yield running


@pytest_asyncio.fixture
async def energy_site(gateway: RunningGateway) -> AsyncIterator[EnergySite]:
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        yield api.energySites.create(SITE_ID)


def truth(sim: Simulator) -> HomeTruth:
    return sim.homes[HOME].truth()


async def test_products_and_site_info_derive_from_the_family(
    gateway: RunningGateway, energy_site: EnergySite, sim: Simulator, family: str
) -> None:
    async with aiohttp.ClientSession() as session:
        api = TeslaFleetApi(session=session, access_token=token(), server=gateway.url)
        products = await api.products()
    entry = products["response"][0]
    assert entry["components"]["battery"] is True
    assert entry["components"]["solar"] is True
    info = (await energy_site.site_info())["response"]
    assert info["components"]["grid"] is True
    battery = info["components"]["batteries"][0]
    assert battery["serial_number"] == ("SG1001" if family == "sungrow_sh_rt" else "HW1001")
    assert info["nameplate_energy"] == truth(sim).capacity_wh


async def test_live_status_matches_the_twin(energy_site: EnergySite, sim: Simulator) -> None:
    body = (await energy_site.live_status())["response"]
    assert body["load_power"] == body["solar_power"] + body["battery_power"] + body["grid_power"]
    assert abs(body["percentage_charged"] - truth(sim).soc_pct) < 1.0
    assert abs(body["solar_power"] - truth(sim).solar_w) < 300  # the twin's physics moves on
    assert body["grid_status"] == "Active"


async def test_backup_reserve_lands_in_the_twin(energy_site: EnergySite, sim: Simulator) -> None:
    assert await energy_site.backup(35) == UPDATED
    assert truth(sim).reserve_pct == 35  # confirmed on the device before the answer
    assert (await energy_site.site_info())["response"]["backup_reserve_percent"] == 35


async def test_operation_backup_and_back(energy_site: EnergySite, sim: Simulator, family: str) -> None:
    assert await energy_site.operation("backup") == UPDATED
    assert truth(sim).reserve_pct == 100
    assert truth(sim).grid_charging is FAMILIES[family].grid_charging
    assert await energy_site.operation("self_consumption") == UPDATED
    assert truth(sim).reserve_pct == 20
    assert truth(sim).grid_charging is False


async def test_export_rule_never_caps_the_twins_export(energy_site: EnergySite, sim: Simulator) -> None:
    assert await energy_site.grid_import_export(None, "never") == {"response": ""}
    assert truth(sim).export_limit_w == 0
    assert await energy_site.grid_import_export(None, "battery_ok") == {"response": ""}
    assert truth(sim).export_limit_w is None


async def test_a_refused_write_answers_540_and_rolls_back(
    gateway: RunningGateway, energy_site: EnergySite, sim: Simulator
) -> None:
    twin = sim.homes[HOME].register_twin("inverter")
    assert await energy_site.backup(51) == UPDATED
    await twin.apply_faults(exception_code=3)  # ILLEGAL DATA VALUE on every request
    async with aiohttp.ClientSession() as http, http.post(
        f"{gateway.url}/api/1/energy_sites/{SITE_ID}/backup", json={"backup_reserve_percent": 53},
        headers={"Authorization": f"Bearer {token()}"},
    ) as resp:
        status, body = resp.status, await resp.json()
    assert status == 540
    assert body["error"] == "device rejected"
    assert truth(sim).reserve_pct == 51
    await twin.apply_faults(exception_code=None)
    handle = gateway.site.devices[0]
    polls = handle.polls
    await eventually(lambda: handle.polls >= polls + 5)
    assert truth(sim).reserve_pct == 51  # and nothing applies it later
    assert (await energy_site.site_info())["response"]["backup_reserve_percent"] == 51


async def test_a_grid_outage_shows_where_the_family_reports_it(
    energy_site: EnergySite, sim: Simulator, family: str
) -> None:
    if not FAMILIES[family].grid_status:
        pytest.skip(f"{family} reports no grid state")
    sim.homes[HOME].set_grid_up(False)

    async def grid_status() -> str:
        return str((await energy_site.live_status())["response"]["grid_status"])

    await eventually(grid_status, lambda s: s == "Inactive")
    sim.homes[HOME].set_grid_up(True)
    await eventually(grid_status, lambda s: s == "Active")


async def test_an_unconfirmed_command_is_kept_and_applied_when_the_twin_is_back(
    start_gateway: GatewayFactory, sim: Simulator, family: str, tmp_path: Path
) -> None:
    twin = sim.homes[HOME].register_twin("inverter")
    config = profile_config(sim, family, tmp_path / "data", confirm_timeout_s=0.5)
    async with start_gateway(config) as gateway, aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token()}"}
    ) as http:
        url = f"{gateway.url}/api/1/energy_sites/{SITE_ID}/backup"
        await twin.apply_faults(ignore_writes=True)  # acknowledged, never applied
        async with http.post(url, json={"backup_reserve_percent": 61}) as resp:
            status, body = resp.status, await resp.json()
        assert status == 504
        assert "applies it when the device is back" in body["error_description"]
        await twin.apply_faults(ignore_writes=False)
        await eventually(lambda: truth(sim).reserve_pct == 61)  # reconciliation re-applied it
