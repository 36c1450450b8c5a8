"""Faults on the simulated Victron GX: broker restart, dropped MQTT clients, its Modbus face, control API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import aiomqtt
import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient

from simulator import Simulator
from simulator.config import (
    ControlConfig,
    HomeConfig,
    MqttBatteryConfig,
    SimulatorConfig,
    VictronGxConfig,
)
from simulator.devices.victron_gx import VictronGxDevice
from tests.helpers import eventually
from tests.integration.brokers import mqtt_broker

HOME = "home-1"
PORTAL = "c0619ab1f00d"
SERIAL = f"N/{PORTAL}/system/0/Serial"
DONE = f"N/{PORTAL}/full_publish_completed"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        control=ControlConfig(port=0),
        tick_s=0,
        homes=[HomeConfig(id=HOME, initial_soc_pct=60, devices=[
            VictronGxConfig(id="gx", kind="victron_gx", portal_id=PORTAL, port=0, modbus_port=0)])],
    )  # fmt: skip
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def gx(sim: Simulator) -> VictronGxDevice:
    return sim.homes[HOME].victron_gx("gx")


@dataclass
class Listener:
    """A plain aiomqtt client: topics seen, and whether its connection was lost."""

    client: aiomqtt.Client
    seen: list[tuple[str, bool]] = field(default_factory=list)
    lost: bool = False

    def topics(self) -> list[str]:
        return [t for t, _ in self.seen]


@asynccontextmanager
async def listen(port: int) -> AsyncIterator[Listener]:
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        listener = Listener(client)
        await client.subscribe(f"N/{PORTAL}/#", qos=1)

        async def read() -> None:
            try:
                async for m in client.messages:
                    listener.seen.append((str(m.topic), m.retain))
            except aiomqtt.MqttError:
                listener.lost = True

        task = asyncio.create_task(read())
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def keepalive(listener: Listener) -> None:
    await listener.client.publish(f"R/{PORTAL}/keepalive", b"", qos=1)


async def test_broker_restart_drops_clients_and_the_gx_comes_back(gx: VictronGxDevice) -> None:
    port = gx.port
    async with listen(port) as before:
        await eventually(lambda: SERIAL in before.topics())
        await gx.broker_restart()
        await eventually(lambda: before.lost)
    assert gx.connected  # broker_restart returns once the GX's own client is back
    assert gx.port == port
    assert gx.broker_restarts == 1
    async with listen(port) as after:
        # the retained Serial was lost with the broker and published again by the GX
        await eventually(lambda: (SERIAL, True) in after.seen)
        await keepalive(after)
        await eventually(lambda: DONE in after.topics())
        assert f"N/{PORTAL}/system/0/Dc/Battery/Soc" in after.topics()


async def test_dropped_clients_reconnect_and_the_gx_keeps_publishing(gx: VictronGxDevice) -> None:
    async with listen(gx.port) as first, listen(gx.port) as second:
        await eventually(lambda: SERIAL in first.topics() and SERIAL in second.topics())
        assert await gx.drop_connections() == 2
        await eventually(lambda: first.lost and second.lost)
    assert gx.connected  # its own in-process client is not a network client
    async with listen(gx.port) as again:
        await keepalive(again)
        await eventually(lambda: DONE in again.topics())


async def test_modbus_face_plays_the_fault_plan(gx: VictronGxDevice) -> None:
    assert gx.modbus_port
    client = AsyncModbusTcpClient("127.0.0.1", port=gx.modbus_port, retries=0, timeout=2, reconnect_delay=0)
    try:
        assert await client.connect()
        assert (await client.read_holding_registers(843, count=1, device_id=100)).registers == [60]
        await gx.apply_faults(exception_code=4, ignore_writes=True)
        assert (await client.read_holding_registers(843, count=1, device_id=100)).exception_code == 4
        gx.faults.exception_code = None
        assert not (await client.write_register(2901, 305, device_id=100)).isError()
        assert gx._physics.truth().reserve_pct == 20  # acknowledged, not applied
        assert await gx.drop_connections() == 1
        await eventually(lambda: not client.connected)
    finally:
        client.close()
    assert gx.stats.dropped == 1


async def test_control_api(sim: Simulator, gx: VictronGxDevice) -> None:
    base = f"/homes/{HOME}/devices/gx"
    async with aiohttp.ClientSession(base_url=sim.control_url) as http:
        async with listen(gx.port) as probe:
            await eventually(lambda: SERIAL in probe.topics())
            async with http.post(f"{base}/broker_restart") as resp:
                assert resp.status == 200
                assert await resp.json() == {"broker_restarts": 1}
            await eventually(lambda: probe.lost)
        async with listen(gx.port) as probe:
            await eventually(lambda: SERIAL in probe.topics())
            async with http.post(f"{base}/drop") as resp:
                assert await resp.json() == {"dropped": 1}
            await eventually(lambda: probe.lost)
        async with http.post(f"{base}/faults", json={"delay_s": 0.01}) as resp:
            assert (await resp.json())["delay_s"] == 0.01
        async with http.get(f"{base}/faults") as resp:
            assert (await resp.json())["delay_s"] == 0.01
        async with http.get(f"{base}/stats") as resp:
            assert (await resp.json())["accepted"] == 0
        async with http.post(f"{base}/reboot") as resp:
            assert resp.status == 409
            assert "reboot" in (await resp.json())["error"]
    assert json.dumps(gx.faults.to_json())


async def test_the_mqtt_battery_has_no_fault_endpoints() -> None:
    # It is a client of a broker it does not own: tests restart that broker (brokers.py) instead.
    async with mqtt_broker() as broker:
        config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0, homes=[HomeConfig(
            id=HOME, devices=[MqttBatteryConfig(id="battery", kind="mqtt_battery",
                                                broker_port=broker.port)])])  # fmt: skip
        async with Simulator(config) as sim, aiohttp.ClientSession(base_url=sim.control_url) as http:
            base = f"/homes/{HOME}/devices/battery"
            calls = (("GET", "faults"), ("POST", "faults"), ("GET", "stats"),
                     ("POST", "drop"), ("POST", "reboot"), ("POST", "broker_restart"))  # fmt: skip
            for method, path in calls:
                async with http.request(method, f"{base}/{path}", json={}) as resp:
                    assert resp.status == 409, path
                    assert "mqtt_battery" in (await resp.json())["error"]
