"""Issue 9 defect 4: one honest rule for failed commands. A command the device rejected (540)
changes nothing, now or later; one that could not be delivered or confirmed (408/504) is kept,
applied when the device is back, and its error description says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gateway.core.config import Config, DeviceConfig
from gateway.runtime.storage import Storage
from gateway.runtime.storage.sites import SiteStore
from simulator import Simulator
from simulator.config import HomeConfig, SimDeviceConfig
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway

AUTH = {"Authorization": f"Bearer {token()}"}


async def post(gateway: RunningGateway, resource: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{gateway.url}/api/1/energy_sites/{SITE_ID}/{resource}", json=body,
            headers=AUTH) as resp:
        return resp.status, await resp.json()


async def served_reserve(gateway: RunningGateway) -> int:
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}/api/1/energy_sites/{SITE_ID}/site_info", headers=AUTH) as resp:
        assert resp.status == 200
        return int((await resp.json())["response"]["backup_reserve_percent"])


async def journal(data_dir: Path) -> list[dict[str, Any]]:
    """The site's journal, newest first, read from the gateway's SQLite file."""
    async with Storage(data_dir / "gateway.sqlite3") as storage:
        return await SiteStore(storage).commands(SITE_ID)


async def stored_reserve(data_dir: Path) -> int:
    async with Storage(data_dir / "gateway.sqlite3") as storage:
        settings = await SiteStore(storage).load_settings(SITE_ID)
    assert settings is not None
    return int(settings["backup_reserve_pct"])


async def settled_after_recovery(gateway: RunningGateway, polls: int = 8, passes: int = 4) -> None:
    """Wait until the device answered ``polls`` more polls and the site reconciled ``passes``
    more times: what a rejected command could still do "later" has had its chance."""
    handle = gateway.site.devices[0]
    polls_from, passes_from = handle.polls, gateway.site.reconciles
    await eventually(lambda: handle.polls >= polls_from + polls
                     and gateway.site.reconciles >= passes_from + passes, timeout=30)


async def test_a_rejected_command_changes_nothing_now_or_later(
    gateway: RunningGateway, sim: Simulator, tmp_path: Path
) -> None:
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    assert (await post(gateway, "backup", {"backup_reserve_percent": 51}))[0] == 200
    await device.apply_faults(exception_code=4)  # DEVICE_FAILURE on every request
    status, body = await post(gateway, "backup", {"backup_reserve_percent": 53})
    assert status == 540
    assert await served_reserve(gateway) == 51  # at once: the setting rolled back
    assert home.truth().reserve_pct == 51
    assert body["error"] == "device rejected"
    assert "nothing was changed" in body["error_description"]
    await device.apply_faults(exception_code=None)
    await settled_after_recovery(gateway)
    assert home.truth().reserve_pct == 51  # and nothing applies it later
    assert await served_reserve(gateway) == 51
    assert await stored_reserve(tmp_path / "data") == 51  # rolled back in SQLite too
    last = (await journal(tmp_path / "data"))[0]
    assert (last["command"], last["status"], last["changes"]) == (
        "backup", "rejected", {"backup_reserve_pct": 53})


def two_inverter_config(sim: Simulator, second: Simulator, data_dir: Path) -> Config:
    """Site 1001 with two sink devices: home-1001's inverter, then home-2002's."""
    base = gateway_config(sim, data_dir)
    ep = second.endpoint("home-2002/inverter")
    first = base.sites[0].devices[0]
    other = DeviceConfig.model_validate({
        **first.model_dump(), "name": "second", "options": {
            **first.options.model_dump(), "host": ep.host, "port": ep.port,
            "unit_id": ep.unit_id}})
    site = base.sites[0].model_copy(update={"devices": [*base.sites[0].devices, other]})
    return base.model_copy(update={"sites": [site]})


async def test_a_rejection_on_the_second_device_leaves_both_on_the_previous_settings(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    second = Simulator(sim.config.model_copy(update={"homes": [HomeConfig(
        id="home-2002", initial_soc_pct=60,
        devices=[SimDeviceConfig(id="inverter", kind="sunspec", port=0)])]}))
    async with second:
        config = two_inverter_config(sim, second, tmp_path / "data")
        async with start_gateway(config) as gateway:
            first_home, second_home = sim.homes["home-1001"], second.homes["home-2002"]
            assert [d.name for d in gateway.site.sinks()] == ["inverter", "second"]
            assert (await post(gateway, "backup", {"backup_reserve_percent": 51}))[0] == 200
            assert (first_home.truth().reserve_pct, second_home.truth().reserve_pct) == (51, 51)
            await second_home.device("inverter").apply_faults(exception_code=4)
            status, _ = await post(gateway, "backup", {"backup_reserve_percent": 53})
            assert status == 540
            # the first device had confirmed 53: the rollback put it back before the answer
            assert first_home.truth().reserve_pct == 51
            assert await served_reserve(gateway) == 51
            await second_home.device("inverter").apply_faults(exception_code=None)
            await settled_after_recovery(gateway)
            assert (first_home.truth().reserve_pct, second_home.truth().reserve_pct) == (51, 51)


async def test_an_unconfirmed_command_is_kept_says_so_and_is_applied_when_the_device_is_back(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data", stale_after_s=1.0)
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    async with start_gateway(config) as gateway:
        await device.apply_faults(ignore_writes=True)
        status, body = await post(gateway, "backup", {"backup_reserve_percent": 61})
        assert status == 504
        assert "applies it when the device is back" in body["error_description"]
        await device.apply_faults(ignore_writes=False)
        await eventually(lambda: home.truth().reserve_pct == 61)

        await device.stop()
        await eventually(lambda: gateway.site.offline() != [])
        status, body = await post(gateway, "backup", {"backup_reserve_percent": 62})
        assert status == 408
        assert "applies it when the device is back" in body["error_description"]
        assert await served_reserve(gateway) == 62
        await device.start()
        await eventually(lambda: home.truth().reserve_pct == 62)
    statuses = [(e["changes"]["backup_reserve_pct"], e["status"])
                for e in await journal(tmp_path / "data")]
    assert statuses[:2] == [(62, "kept"), (61, "kept")]
