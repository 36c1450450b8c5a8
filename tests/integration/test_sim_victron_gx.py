"""The simulated Victron GX over real MQTT (its embedded amqtt broker) and its Modbus TCP face."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient

from simulator import HomeConfig, SimDeviceConfig, Simulator, SimulatorConfig, VictronGxConfig
from simulator.devices.victron_gx import (
    ClosingBroker,
    VictronGxDevice,
    broker_config,
    broker_port,
    shutdown_broker,
)
from simulator.physics import HomePhysics
from tests.helpers import eventually

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)
PORTAL = "c0619ab1f00d"
MIN_SOC = "settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit"
SOURCE = "system/0/Ac/ActiveIn/Source"


@dataclass
class Probe:
    """A plain aiomqtt client recording every message on its filters."""

    client: aiomqtt.Client
    filters: tuple[str, ...]
    seen: list[tuple[str, Any, bool]] = field(default_factory=list)

    def values(self, path: str) -> list[Any]:
        """Every `{"value": x}` seen on N/<portal>/<path>, oldest first."""
        topic = f"N/{PORTAL}/{path}"
        return [payload["value"] for t, payload, _ in self.seen if t == topic]

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.seen]

    async def send(self, topic: str, doc: Any = None) -> None:
        payload = b"" if doc is None else json.dumps(doc).encode()
        await self.client.publish(topic, payload, qos=1)


@asynccontextmanager
async def probe(port: int, *filters: str) -> AsyncIterator[Probe]:
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        p = Probe(client, filters)
        for f in filters:
            await client.subscribe(f, qos=1)

        async def read() -> None:
            async for m in client.messages:
                # amqtt may push retained messages of other clients' filters: keep ours only.
                if any(m.topic.matches(f) for f in filters):
                    raw = m.payload
                    p.seen.append((str(m.topic), json.loads(raw) if raw else None, m.retain))

        task = asyncio.create_task(read())
        try:
            yield p
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


HOME = HomeConfig(id="home-1", initial_soc_pct=60, devices=[
    VictronGxConfig(id="gx", kind="victron_gx", keepalive_timeout_s=0.8, modbus_port=0)])  # fmt: skip


@pytest_asyncio.fixture
async def gx() -> AsyncIterator[VictronGxDevice]:
    physics = HomePhysics(HOME, NOON, BERLIN)
    device = VictronGxDevice(HOME, HOME.devices[0], physics, change_interval_s=0.05)  # type: ignore[arg-type]
    await device.start()
    try:
        yield device
    finally:
        await device.stop()


async def rounds_pass(gx: VictronGxDevice, n: int = 3) -> None:
    start = gx.rounds
    await eventually(lambda: gx.rounds >= start + n)


async def test_simulator_endpoint_and_retained_serial() -> None:
    config = SimulatorConfig(tick_s=0, homes=[HomeConfig(id="home-1", devices=[
        SimDeviceConfig(id="inverter", kind="sunspec"),
        VictronGxConfig(id="gx", kind="victron_gx", portal_id="abc123"),
    ])])  # fmt: skip
    async with Simulator(config) as sim:
        ep = sim.endpoint("home-1/gx")
        assert (ep.host, ep.unit_id, ep.kind) == ("127.0.0.1", 0, "victron_gx")
        assert ep.port > 0
        async with probe(ep.port, "N/+/system/0/Serial") as p:
            await eventually(lambda: p.seen)
            assert p.seen == [("N/abc123/system/0/Serial", {"value": "abc123"}, True)]
        # one truth behind both faces
        gx = sim.homes["home-1"].victron_gx("gx")
        assert gx.write(MIN_SOC, 33).__class__.__name__ == "WriteAccepted"
        assert sim.homes["home-1"].truth().reserve_pct == 33


async def test_nothing_before_keepalive_then_full_publish(gx: VictronGxDevice) -> None:
    async with probe(gx.port, f"N/{PORTAL}/#") as p:
        await eventually(lambda: p.topics() == [f"N/{PORTAL}/system/0/Serial"])
        gx._physics.set_grid_up(False)  # a change that must not be published: nobody is alive
        await rounds_pass(gx)
        assert p.topics() == [f"N/{PORTAL}/system/0/Serial"]

        await p.send(f"R/{PORTAL}/keepalive")
        await eventually(lambda: f"N/{PORTAL}/full_publish_completed" in p.topics())
        topics = p.topics()
        assert topics[-1] == f"N/{PORTAL}/full_publish_completed"
        assert set(topics[1:-1]) == {f"N/{PORTAL}/{path}" for path in gx.values()}
        assert p.values(SOURCE) == [240]
        assert p.values(MIN_SOC) == [20]
        assert p.values("vebus/227/Alarms/GridLost") == [2]
        assert all(not retained for t, _, retained in p.seen[1:])


async def test_changes_flow_while_alive_and_stop_after_timeout(gx: VictronGxDevice) -> None:
    async with probe(gx.port, f"N/{PORTAL}/#") as p:
        await p.send(f"R/{PORTAL}/keepalive")
        await eventually(lambda: f"N/{PORTAL}/full_publish_completed" in p.topics())
        gx._physics.set_grid_up(False)
        gx._physics.set_storm_alert(True)
        await eventually(lambda: p.values(SOURCE) == [1, 240])
        await eventually(lambda: p.values("platform/0/StormAlert"), lambda v: v == [0, 1])

        await eventually(lambda: not gx.alive, timeout=3)
        gx._physics.set_grid_up(True)
        await rounds_pass(gx)
        assert p.values(SOURCE) == [1, 240]

        # suppress-republish: alive again without a full publish; the pending change flows
        completed = p.topics().count(f"N/{PORTAL}/full_publish_completed")
        await p.send(f"R/{PORTAL}/keepalive", {"keepalive-options": ["suppress-republish"]})
        await eventually(lambda: p.values(SOURCE) == [1, 240, 1])
        assert p.topics().count(f"N/{PORTAL}/full_publish_completed") == completed


async def test_writes_echo_and_change_the_truth(gx: VictronGxDevice) -> None:
    async with probe(gx.port, f"N/{PORTAL}/#") as p:
        await p.send(f"R/{PORTAL}/keepalive")
        await eventually(lambda: f"N/{PORTAL}/full_publish_completed" in p.topics())

        await p.send(f"W/{PORTAL}/{MIN_SOC}", {"value": 42})
        await eventually(lambda: p.values(MIN_SOC)[-1:] == [42])
        assert gx._physics.truth().reserve_pct == 42

        await p.send(f"W/{PORTAL}/vebus/227/Hub4/DisableCharge", {"value": 0})
        await eventually(lambda: p.values("vebus/227/Hub4/DisableCharge")[-1:] == [0])
        assert gx._physics.truth().grid_charging

        await p.send(f"W/{PORTAL}/settings/0/Settings/CGwacs/MaxFeedInPower", {"value": 1500})
        await eventually(lambda: p.values("settings/0/Settings/CGwacs/MaxFeedInPower")[-1:] == [1500])
        assert gx._physics.truth().export_limit_w == 1500

        # invalid writes are ignored: the old value is re-published unchanged
        count = len(p.values(MIN_SOC))
        for bad in ({"value": 150}, {"value": "20"}, {"nope": 1}):
            await p.send(f"W/{PORTAL}/{MIN_SOC}", bad)
        await eventually(lambda: len(p.values(MIN_SOC)) >= count + 3)
        assert p.values(MIN_SOC)[count:] == [42, 42, 42]
        assert gx._physics.truth().reserve_pct == 42


async def test_read_request_republishes(gx: VictronGxDevice) -> None:
    async with probe(gx.port, f"N/{PORTAL}/#") as p:
        await p.send(f"R/{PORTAL}/settings/0/Settings/CGwacs/Hub4Mode")
        await eventually(lambda: p.values("settings/0/Settings/CGwacs/Hub4Mode") == [1])
        await p.send(f"R/{PORTAL}/vebus/227")
        await eventually(lambda: p.values("vebus/227/Alarms/GridLost") == [0])
        assert p.values("vebus/227/Hub4/DisableCharge") == [1]


async def test_modbus_face_shares_the_settings(gx: VictronGxDevice) -> None:
    assert gx.modbus_port
    client = AsyncModbusTcpClient("127.0.0.1", port=gx.modbus_port, retries=0, timeout=2)
    await client.connect()
    try:
        soc = await client.read_holding_registers(843, count=1, device_id=100)
        assert soc.registers == [60]
        assert not (await client.write_register(2901, 305, device_id=100)).isError()
        assert gx._physics.truth().reserve_pct == 30.5
        assert gx.values()[MIN_SOC] == 30.5
        assert (await client.read_holding_registers(2900, count=3, device_id=100)).registers == [10, 305, 1]
        assert (await client.write_register(2901, 1001, device_id=100)).isError()  # > 100 %
        assert (await client.write_register(843, 1, device_id=100)).isError()  # read-only
        assert not (await client.write_register(38, 0, device_id=227)).isError()
        assert gx._physics.truth().grid_charging
        gx._physics.set_grid_up(False)
        assert (await client.read_holding_registers(64, count=1, device_id=227)).registers == [2]
    finally:
        client.close()


async def test_restart_binds_the_same_port(gx: VictronGxDevice) -> None:
    port = gx.port
    await gx.stop()
    await gx.start()
    assert gx.port == port
    async with probe(port, "N/+/system/0/Serial") as p:
        await eventually(lambda: p.seen)


async def test_a_client_that_leaves_before_connect_leaves_no_socket_open() -> None:
    """amqtt keeps the socket of a client that goes before its CONNECT; the GX's broker closes
    it (it used to surface as a ResourceWarning in whichever test ran at the next collection)."""
    broker = ClosingBroker(broker_config("127.0.0.1", 0))
    await broker.start()
    try:
        server = broker._servers["default"]
        _, writer = await asyncio.open_connection("127.0.0.1", broker_port(broker))
        await eventually(lambda: server.conn_count == 1)
        writer.close()  # before any CONNECT packet
        await writer.wait_closed()
        await eventually(lambda: server.conn_count == 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    finally:
        await shutdown_broker(broker)
