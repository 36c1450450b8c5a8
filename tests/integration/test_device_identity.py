"""Issue 9 defect 6: what a device is (identity, nameplate, capabilities) is learned at its first
discovery and kept in SQLite, so products and site_info keep their shape while it is offline,
also after a restart; a device never reached since install reports what can be known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gateway.core.config import Config
from simulator import Simulator
from tests.helpers import SITE_ID, gateway_config, token
from tests.integration.conftest import GatewayFactory, RunningGateway

AUTH = {"Authorization": f"Bearer {token()}"}


async def get(gateway: RunningGateway, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}{path}", headers=AUTH) as resp:
        return resp.status, await resp.json()


def offline_config(sim: Simulator, data_dir: Path) -> Config:
    return gateway_config(sim, data_dir, stale_after_s=1.0)


async def test_products_and_site_info_keep_the_battery_while_offline_after_a_restart(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = offline_config(sim, tmp_path / "data")
    async with start_gateway(config) as gateway:  # the first discovery
        _, online_products = await get(gateway, "/api/1/products")
        _, online_info = await get(gateway, f"/api/1/energy_sites/{SITE_ID}/site_info")
    await sim.homes["home-1001"].device("inverter").stop()
    async with start_gateway(config, wait_online=False) as gateway:  # devices offline at start
        assert gateway.site.offline() == gateway.site.devices
        status, products = await get(gateway, "/api/1/products")
        assert status == 200
        entry = products["response"][0]
        assert entry["resource_type"] == "battery"
        assert entry["backup_capable"] is True
        assert entry["components"] == online_products["response"][0]["components"]
        assert "percentage_charged" not in entry  # live fields only while online
        status, info = await get(gateway, f"/api/1/energy_sites/{SITE_ID}/site_info")
        assert status == 200
        assert info["response"]["components"] == online_info["response"]["components"]
        assert info["response"]["nameplate_energy"] == online_info["response"]["nameplate_energy"]
        assert info["response"]["components"]["batteries"][0]["serial_number"] == "SIM1001"
        status, live = await get(gateway, f"/api/1/energy_sites/{SITE_ID}/live_status")
        assert status == 408  # live data is needed here
        assert live["error"] == "device offline"


async def test_a_device_never_reached_reports_what_it_can_and_408_where_data_is_needed(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    await sim.homes["home-1001"].device("inverter").stop()
    async with start_gateway(offline_config(sim, tmp_path / "data"), wait_online=False) as gateway:
        status, products = await get(gateway, "/api/1/products")
        assert status == 200
        assert [e["energy_site_id"] for e in products["response"]] == [SITE_ID]
        for resource in ("site_info", "live_status"):
            status, body = await get(gateway, f"/api/1/energy_sites/{SITE_ID}/{resource}")
            assert status == 408
            assert "never read" in body["error_description"]
