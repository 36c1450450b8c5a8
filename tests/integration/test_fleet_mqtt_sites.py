"""tesla-fleet-api drives an MQTT site (a Victron GX, 1002) and a mixed site (a SunSpec PV
inverter + a generic MQTT battery, 1003) exactly as it drives the SunSpec site: each command is
checked on the device's own MQTT topics and on the simulated home's truth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
import pytest_asyncio
from aiohttp import web
from tesla_fleet_api import TeslaFleetApi
from tesla_fleet_api.tesla.energysite import EnergySite

from gateway.core.config import Config, DeviceConfig, GatewaySection, SiteConfig
from gateway.web.app import create_app
from gateway.web.keys import SITES
from simulator import Simulator
from simulator.config import (
    ControlConfig,
    HomeConfig,
    MqttBatteryConfig,
    SimDeviceConfig,
    SimulatorConfig,
    VictronGxConfig,
)
from tests.helpers import SECRET, eventually, token
from tests.integration.brokers import RunningBroker, mqtt_broker

PORTAL = "c0619ab1f00d"
UPDATED = {"response": {"code": 201, "message": "Updated"}}
MIN_SOC = "settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit"
MAX_FEED_IN = "settings/0/Settings/CGwacs/MaxFeedInPower"
DISABLE_CHARGE = "vebus/227/Hub4/DisableCharge"


@dataclass
class Topics:
    """What a plain MQTT client sees on a broker: the latest payload of every topic."""

    latest: dict[str, bytes] = field(default_factory=dict)

    def gx(self, path: str) -> Any:
        payload = self.latest.get(f"N/{PORTAL}/{path}")
        return None if not payload else json.loads(payload)["value"]

    def json(self, topic: str) -> Any:
        payload = self.latest.get(topic)
        return None if payload is None else json.loads(payload)


@contextlib.asynccontextmanager
async def watch(port: int, *filters: str) -> AsyncIterator[Topics]:
    """Record every message on ``filters`` (filtered here: amqtt leaks retained messages)."""
    seen = Topics()
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)

        async def read() -> None:
            async for message in client.messages:
                if any(message.topic.matches(f) for f in filters):
                    seen.latest[str(message.topic)] = bytes(message.payload)

        task = asyncio.create_task(read())
        try:
            if any(f.startswith("N/") for f in filters):
                await client.publish(f"R/{PORTAL}/keepalive", b"")  # start the GX publishing
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class World:
    sim: Simulator
    broker: RunningBroker
    url: str
    app: web.Application


def _gateway_config(sim: Simulator, broker_port: int, data_dir: Path) -> Config:
    gx = sim.endpoint("home-1002/gx")
    pv = sim.endpoint("home-1003/pv")
    state = "{base}/state"
    battery = DeviceConfig.model_validate({
        "name": "battery", "type": "mqtt_battery", "poll_interval_s": 0.1, "options": {
            "host": "127.0.0.1", "port": broker_port,
            "base_topic": "sim/battery-1003", "availability_topic": "{base}/availability",
            "capacity_wh": 13500, "max_charge_w": 5000, "max_discharge_w": 5000,
            "points": {
                "soc_pct": {"state_topic": state, "value_path": "soc"},
                "battery_w": {"state_topic": state, "value_path": "power"},
                "reserve_pct": {"state_topic": state, "value_path": "reserve",
                                "command_topic": "{base}/set/reserve"},
                "grid_charging": {"state_topic": state, "value_path": "grid_charging",
                                  "command_topic": "{base}/set/grid_charging"},
            }}})
    pv_device = DeviceConfig.model_validate({
        "name": "pv", "type": "sunspec", "poll_interval_s": 0.1,
        "options": {"host": pv.host, "port": pv.port, "timeout_s": 0.5}})
    gx_device = DeviceConfig.model_validate({
        "name": "gx", "type": "victron_gx", "poll_interval_s": 0.1,
        "options": {"host": gx.host, "port": gx.port, "capacity_wh": 13500,
                    "storm_alert": {"path": "platform/0/StormAlert"}}})  # the simulated GX's
    return Config(
        gateway=GatewaySection(port=0, data_dir=data_dir, jwt_secret=SECRET,
                               command_timeout_s=4.0, reconcile_interval_s=0.5),
        sites=[
            SiteConfig(energy_site_id=1002, name="Lake Cabin", time_zone="Europe/Amsterdam",
                       devices=[gx_device]),
            SiteConfig(energy_site_id=1003, name="Mixed Home", time_zone="Europe/Berlin",
                       devices=[pv_device, battery]),
        ],
    )


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with mqtt_broker() as broker:
        config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05, homes=[
            HomeConfig(id="home-1002", initial_soc_pct=70, devices=[
                VictronGxConfig(id="gx", kind="victron_gx", port=0, portal_id=PORTAL)]),
            HomeConfig(id="home-1003", initial_soc_pct=40, devices=[
                SimDeviceConfig(id="pv", kind="sunspec", port=0, profile="pv"),
                MqttBatteryConfig(id="battery", kind="mqtt_battery", broker_port=broker.port,
                                  base_topic="sim/battery-1003")]),
        ])
        async with Simulator(config) as sim:
            app = create_app(_gateway_config(sim, broker.port, tmp_path / "data"))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            try:
                host, port = runner.addresses[0][:2]
                sites = list(app[SITES].values())
                await eventually(lambda: not any(s.offline() for s in sites))
                await eventually(lambda: all(s.applied is not None for s in sites))
                yield World(sim, broker, f"http://{host}:{port}", app)
            finally:
                await runner.cleanup()


@pytest_asyncio.fixture
async def api(world: World) -> AsyncIterator[TeslaFleetApi]:
    async with aiohttp.ClientSession() as session:
        yield TeslaFleetApi(session=session, access_token=token(), server=world.url)


def site(api: TeslaFleetApi, site_id: int) -> EnergySite:
    return api.energySites.create(site_id)


async def test_victron_site_commands_land_on_the_gx_topics(world: World, api: TeslaFleetApi) -> None:
    home = world.sim.homes["home-1002"]
    gx_port = world.sim.endpoint("home-1002/gx").port
    cabin = site(api, 1002)
    async with watch(gx_port, f"N/{PORTAL}/#") as topics:
        assert await cabin.backup(35) == UPDATED
        await eventually(lambda: topics.gx(MIN_SOC) == 35)
        assert home.truth().reserve_pct == 35

        assert await cabin.operation("backup") == UPDATED
        await eventually(lambda: topics.gx(MIN_SOC) == 100)

        assert await cabin.grid_import_export(True, None) == {"response": ""}
        await eventually(lambda: topics.gx(DISABLE_CHARGE) == 1)
        assert home.truth().grid_charging is False

        assert await cabin.grid_import_export(None, "never") == {"response": ""}
        await eventually(lambda: topics.gx(MAX_FEED_IN) == 0)
        assert home.truth().export_limit_w == 0

        assert await cabin.operation("self_consumption") == UPDATED
        await eventually(lambda: topics.gx(MIN_SOC) == 35)

        assert await cabin.storm_mode(True) == UPDATED
        home.set_storm_alert(True)
        await eventually(lambda: topics.gx(MIN_SOC) == 100)
        home.set_storm_alert(False)
        await eventually(lambda: topics.gx(MIN_SOC) == 35)

    live = (await cabin.live_status())["response"]
    assert live["load_power"] == live["solar_power"] + live["battery_power"] + live["grid_power"]
    assert live["grid_status"] == "Active"
    assert abs(live["percentage_charged"] - home.truth().soc_pct) < 1.5
    info = (await cabin.site_info())["response"]
    assert info["components"]["battery"] is True
    assert info["components"]["storm_mode_capable"] is True
    assert info["backup_reserve_percent"] == 35


async def test_mixed_site_sums_devices_and_sends_each_command_where_it_belongs(
    world: World, api: TeslaFleetApi
) -> None:
    home = world.sim.homes["home-1003"]
    mixed = site(api, 1003)
    live = (await mixed.live_status())["response"]
    truth = home.truth()
    assert abs(live["solar_power"] - truth.solar_w) < 200  # from the SunSpec PV inverter
    assert abs(live["battery_power"] - truth.battery_w) < 200  # from the MQTT battery
    assert abs(live["percentage_charged"] - truth.soc_pct) < 1.5
    assert live["load_power"] == live["solar_power"] + live["battery_power"] + live["grid_power"]

    async with watch(world.broker.port, "sim/battery-1003/#") as topics:
        assert await mixed.backup(55) == UPDATED  # only the battery honours a reserve
        await eventually(lambda: (topics.json("sim/battery-1003/state") or {}).get("reserve") == 55)
        assert topics.json("sim/battery-1003/set/reserve") == 55
    assert home.truth().reserve_pct == 55

    assert await mixed.grid_import_export(None, "never") == {"response": ""}
    assert home.truth().export_limit_w == 0  # via the PV inverter's model 123
    info = (await mixed.site_info())["response"]
    assert info["components"]["solar"] is True
    assert info["components"]["battery"] is True
    assert info["battery_count"] == 1


async def test_a_broker_restart_mid_run_and_the_next_command_still_confirms(
    world: World, api: TeslaFleetApi
) -> None:
    mixed = site(api, 1003)
    assert await mixed.backup(30) == UPDATED
    await world.broker.restart()
    restarted = time.monotonic()
    battery = next(d for d in world.app[SITES][1003].devices if d.name == "battery")
    # the pool reconnects and re-subscribes; fresh state arrives through the new connection
    await eventually(lambda: (battery.received_at or 0) > restarted and battery.connected,
                     timeout=20)
    assert await mixed.backup(61) == UPDATED
    assert world.sim.homes["home-1003"].truth().reserve_pct == 61


@pytest.mark.parametrize("site_id", [1002, 1003])
async def test_products_lists_mqtt_sites(world: World, api: TeslaFleetApi, site_id: int) -> None:
    products = await api.products()
    entry = next(e for e in products["response"] if e["energy_site_id"] == site_id)
    assert entry["components"]["battery"] is True
