"""Field faults (issue 6): hung devices, ignored writes, reboots, single-client inverters,
concurrent commands, restarts. Faults are played by the simulator, never by mocks."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
from pymodbus.client import AsyncModbusTcpClient
from structlog.testing import capture_logs

from gateway.core.config import Config, DeviceConfig, SiteConfig
from gateway.web.keys import PROXIES, SITES
from simulator import Simulator
from simulator.config import HomeConfig, SimDeviceConfig
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory

AUTH = {"Authorization": f"Bearer {token()}"}


def url(gateway_url: str, resource: str, site_id: int = SITE_ID) -> str:
    return f"{gateway_url}/api/1/energy_sites/{site_id}/{resource}"


async def post(http: aiohttp.ClientSession, target: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, Any]]:
    async with http.post(target, json=body, headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_a_hung_device_blocks_neither_other_sites_nor_http(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    # a second home and site beside site 1001
    second = Simulator(sim.config.model_copy(update={"homes": [HomeConfig(
        id="home-2002", devices=[SimDeviceConfig(id="inverter", kind="sunspec", port=0)])]}))
    async with second:
        base = gateway_config(sim, tmp_path / "data", stale_after_s=1.0)
        ep = second.endpoint("home-2002/inverter")
        other = SiteConfig(energy_site_id=2002, name="Other", time_zone="Europe/Berlin",
                           devices=[DeviceConfig.model_validate({
                               "name": "inverter", "type": "sunspec", "poll_interval_s": 0.1,
                               "options": {"host": ep.host, "port": ep.port,
                                           "timeout_s": 0.5}})])
        config = base.model_copy(update={"sites": [*base.sites, other]})
        async with start_gateway(config) as gateway, aiohttp.ClientSession() as http:
            hung = sim.homes["home-1001"].device("inverter")
            await hung.apply_faults(half_open=True)
            site = gateway.app[SITES][SITE_ID]
            await eventually(lambda: site.offline() != [], timeout=5)
            async with http.get(url(gateway.url, "live_status"), headers=AUTH) as resp:
                assert resp.status == 408
                body = await resp.json()
            assert "inverter" in body["error_description"]
            # the other site keeps answering, fresh, while 1001's device hangs
            for _ in range(20):
                async with http.get(url(gateway.url, "live_status", 2002), headers=AUTH) as resp:
                    assert resp.status == 200
                await asyncio.sleep(0.05)
            assert not gateway.app[SITES][2002].offline()
            async with http.get(f"{gateway.url}/health") as resp:
                health = await resp.json()
            device = health["sites"][str(SITE_ID)]["devices"]["inverter"]
            assert device["quality"] == "offline"
            assert device["failures"] >= 1
            assert "DeviceUnreachable" in device["last_error"]
            assert health["status"] == "degraded"
            await hung.apply_faults(half_open=False)
            await eventually(lambda: not site.offline(), timeout=40)  # backoff is capped at 30 s


async def test_acknowledged_but_ignored_write_is_an_error_and_applied_later(
    gateway: Any, sim: Simulator
) -> None:
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    await device.apply_faults(ignore_writes=True)
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, url(gateway.url, "backup"), {"backup_reserve_percent": 77})
        assert status == 504
        assert body["error"] == "device did not confirm"
        assert home.truth().reserve_pct == 20
        async with http.get(url(gateway.url, "site_info"), headers=AUTH) as resp:
            assert (await resp.json())["response"]["backup_reserve_percent"] == 77  # kept
        await device.apply_faults(ignore_writes=False)
        await eventually(lambda: home.truth().reserve_pct == 77)


async def test_reboot_restores_every_desired_setting_within_two_poll_cycles(
    gateway: Any, sim: Simulator
) -> None:
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    async with aiohttp.ClientSession() as http:
        assert (await post(http, url(gateway.url, "backup"), {"backup_reserve_percent": 45}))[0] == 200
        assert (await post(http, url(gateway.url, "grid_import_export"),
                           {"customer_preferred_export_rule": "never"}))[0] == 200
    drift_before = gateway.site.drift_count
    handle = gateway.site.devices[0]
    with capture_logs() as logs:
        await device.reboot()  # factory defaults: reserve 20, export unlimited; connections dropped
        assert home.truth().reserve_pct == 20
        assert home.truth().export_limit_w is None
        polls_back = handle.polls  # the device answers again from here on
        await eventually(lambda: home.truth().reserve_pct == 45 and home.truth().export_limit_w == 0)
    # back within two poll cycles of the device returning: the reconnect itself triggers it
    assert handle.polls - polls_back <= 2
    assert gateway.site.drift_count > drift_before
    drift = [e for e in logs if e["event"] == "setpoints.drift"]
    assert drift
    assert drift[0]["held"]["reserve_pct"] == 20
    assert drift[0]["wanted"]["reserve_pct"] == 45


async def test_drift_from_someone_else_is_detected_counted_and_reapplied(
    gateway: Any, sim: Simulator
) -> None:
    home = sim.homes["home-1001"]
    ep = sim.endpoint("home-1001/inverter")
    reserve_at = home.device("inverter").model_address(124) + 7
    client = AsyncModbusTcpClient(ep.host, port=ep.port, retries=0, timeout=2)
    await client.connect()
    try:
        assert not (await client.write_register(reserve_at, 90, device_id=ep.unit_id)).isError()
    finally:
        client.close()
    assert home.truth().reserve_pct == 90
    await eventually(lambda: gateway.site.drift_count >= 1)
    await eventually(lambda: home.truth().reserve_pct == 20)


async def test_single_client_inverter_serves_others_through_the_proxy(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    device = sim.homes["home-1001"].device("inverter")
    await device.apply_faults(single_client=True)
    base = gateway_config(sim, tmp_path / "data")
    dev = base.sites[0].devices[0].model_copy(update={"proxy_port": 0})
    config: Config = base.model_copy(update={"sites": [base.sites[0].model_copy(
        update={"devices": [dev]})]})
    async with start_gateway(config) as gateway:
        ep = sim.endpoint("home-1001/inverter")
        direct = AsyncModbusTcpClient(ep.host, port=ep.port, retries=0, timeout=0.5)
        await direct.connect()
        try:
            reply = await direct.read_holding_registers(40000, count=2, device_id=1)
            refused = reply.isError()
        except Exception:
            refused = True
        finally:
            direct.close()
        assert refused, "the inverter must refuse a second client"
        port = gateway.app[PROXIES][(SITE_ID, "inverter")].port
        shared = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, timeout=2)
        await shared.connect()
        try:
            marker = await shared.read_holding_registers(40000, count=2, device_id=1)
            assert marker.registers == [0x5375, 0x6E53]
        finally:
            shared.close()
        assert device.stats.active == 1  # only the gateway's connection
        assert not gateway.site.offline()


async def test_concurrent_commands_end_in_the_last_acknowledged_state(
    gateway: Any, sim: Simulator
) -> None:
    rng = random.Random(6)
    values = [rng.randint(0, 100) for _ in range(25)]
    finished: list[int] = []

    async def send(http: aiohttp.ClientSession, value: int) -> None:
        status, _ = await post(http, url(gateway.url, "backup"), {"backup_reserve_percent": value})
        assert status == 200
        finished.append(value)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(send(http, v) for v in values))
        async with http.get(url(gateway.url, "site_info"), headers=AUTH) as resp:
            served = (await resp.json())["response"]["backup_reserve_percent"]
    # commands are serialised per site: the last to be acknowledged is what the device holds
    assert sim.homes["home-1001"].truth().reserve_pct == finished[-1] == served


async def test_history_survives_a_gateway_restart(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = gateway_config(sim, tmp_path / "data")
    home = sim.homes["home-1001"]

    async def total_energy(gateway_url: str, http: aiohttp.ClientSession) -> float:
        async with http.get(url(gateway_url, "calendar_history?kind=energy&period=day"),
                            headers=AUTH) as resp:
            series = (await resp.json())["response"]["time_series"]
        return float(sum(entry["total_home_usage"] for entry in series))

    async with start_gateway(config) as gateway, aiohttp.ClientSession() as http:
        start = time.monotonic()
        await eventually(lambda: time.monotonic() - start > 1.0)  # let some energy accumulate
        before = await total_energy(gateway.url, http)
        assert before > 0
        assert home.truth().load_w > 0
    async with start_gateway(config) as gateway, aiohttp.ClientSession() as http:
        assert await total_energy(gateway.url, http) >= before
