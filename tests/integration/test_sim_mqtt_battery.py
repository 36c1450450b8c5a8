"""The simulated MQTT battery against a real broker (Mosquitto or amqtt), and the broker test helper."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from simulator import HomeConfig, MqttBatteryConfig, Simulator, SimulatorConfig
from simulator.devices.mqtt_battery import MqttBatteryDevice
from simulator.physics import HomePhysics
from tests.helpers import eventually
from tests.integration.brokers import BrokerKind, RunningBroker, mosquitto_path, mqtt_broker

BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2024, 6, 21, 13, 0, tzinfo=BERLIN)
BASE = "sim/battery1"

KINDS = [
    pytest.param(
        "mosquitto",
        marks=pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed"),
    ),
    "amqtt",
]


@dataclass
class Watcher:
    """A plain aiomqtt client recording the battery's availability and state."""

    client: aiomqtt.Client
    availability: list[bytes] = field(default_factory=list)
    states: list[dict[str, object]] = field(default_factory=list)

    async def command(self, name: str, payload: bytes) -> None:
        await self.client.publish(f"{BASE}/set/{name}", payload, qos=1)


@asynccontextmanager
async def watch(port: int) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        w = Watcher(client)
        await client.subscribe(f"{BASE}/availability", qos=1)
        await client.subscribe(f"{BASE}/state", qos=1)

        async def read() -> None:
            async for m in client.messages:
                raw = m.payload
                if m.topic.matches(f"{BASE}/availability"):
                    w.availability.append(raw)
                elif m.topic.matches(f"{BASE}/state"):
                    w.states.append(json.loads(raw))

        task = asyncio.create_task(read())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def home(port: int, interval_s: float = 30.0) -> HomeConfig:
    return HomeConfig(id="home-1", initial_soc_pct=60, devices=[MqttBatteryConfig(
        id="battery", kind="mqtt_battery", broker_port=port, base_topic=BASE,
        publish_interval_s=interval_s)])  # fmt: skip


@asynccontextmanager
async def battery(port: int, interval_s: float = 30.0) -> AsyncIterator[MqttBatteryDevice]:
    cfg = home(port, interval_s)
    device = MqttBatteryDevice(cfg, cfg.devices[0], HomePhysics(cfg, NOON, BERLIN))  # type: ignore[arg-type]
    await device.start()
    try:
        await device.wait_connected()
        yield device
    finally:
        await device.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_broker_helper_starts_and_restarts(kind: BrokerKind) -> None:
    async with mqtt_broker(kind) as broker:
        host, port = broker
        assert isinstance(broker, RunningBroker)
        assert (host, broker.kind) == ("127.0.0.1", kind)
        async with aiomqtt.Client(host, port, timeout=2):
            pass
        await broker.restart()
        assert broker.port == port
        async with aiomqtt.Client(host, port, timeout=2):
            pass
    assert not broker.running


async def test_availability_state_and_commands() -> None:
    async with mqtt_broker() as (_, port), watch(port) as w, battery(port) as dev:
        await eventually(lambda: w.availability[-1:] == [b"online"])
        await eventually(lambda: w.states)
        first = w.states[0]
        assert set(first) == {"soc", "power", "reserve", "grid_charging", "export_limit"}
        assert (first["soc"], first["reserve"], first["grid_charging"]) == (60.0, 20.0, False)
        assert first["power"] == pytest.approx(dev._physics.truth().battery_w, abs=0.1)

        # The interval is 30 s: each of these states can only be the immediate echo.
        await w.command("reserve", b"35")
        await eventually(lambda: w.states[-1]["reserve"] == 35.0)
        assert dev._physics.truth().reserve_pct == 35
        await w.command("grid_charging", b"true")
        await eventually(lambda: w.states[-1]["grid_charging"] is True)
        await w.command("export_limit", b"0")
        await eventually(lambda: w.states[-1]["export_limit"] == 0.0)
        assert dev._physics.truth().export_limit_w == 0
        await w.command("export_limit", b"null")
        await eventually(lambda: w.states[-1]["export_limit"] is None)

        count = len(w.states)
        bad = (("reserve", b"150"), ("reserve", b"oops"), ("grid_charging", b"1"), ("x", b"1"))
        for name, payload in bad:
            await w.command(name, payload)
        await w.command("reserve", b"21")  # a valid one after the bad ones: the only echo
        await eventually(lambda: w.states[-1]["reserve"] == 21.0)
        assert len(w.states) == count + 1
        assert dev._physics.truth().grid_charging


async def test_clean_stop_publishes_offline() -> None:
    async with mqtt_broker() as (_, port), watch(port) as w:
        async with battery(port):
            await eventually(lambda: w.availability[-1:] == [b"online"])
        await eventually(lambda: w.availability[-1:] == [b"offline"])


async def test_state_published_periodically() -> None:
    async with mqtt_broker() as (_, port), watch(port) as w, battery(port, interval_s=0.05):
        await eventually(lambda: len(w.states) >= 4)


@pytest.mark.parametrize("kind", KINDS)
async def test_survives_a_broker_restart(kind: BrokerKind) -> None:
    async with mqtt_broker(kind) as broker, battery(broker.port) as dev:
        assert dev.connections == 1
        await broker.restart()
        await eventually(lambda: dev.connections == 2 and dev.connected, timeout=8)
        async with watch(broker.port) as w:
            # retained "online" was republished on reconnect (a restarted broker forgot it)
            await eventually(lambda: w.availability[-1:] == [b"online"])
            await w.command("reserve", b"44")
            await eventually(lambda: w.states and w.states[-1]["reserve"] == 44.0)
        assert dev._physics.truth().reserve_pct == 44


async def test_battery_only_home_in_the_simulator() -> None:
    async with mqtt_broker() as (host, port):
        config = SimulatorConfig(tick_s=0, homes=[home(port)])
        async with Simulator(config) as sim:
            ep = sim.endpoint("home-1/battery")
            assert (ep.host, ep.port, ep.unit_id, ep.kind) == (host, port, 0, "mqtt_battery")
            dev = sim.homes["home-1"].mqtt_battery("battery")
            await dev.wait_connected()
            async with watch(port) as w:
                await w.command("reserve", b"55")
                await eventually(lambda: sim.homes["home-1"].truth().reserve_pct == 55)
            with pytest.raises(TypeError):
                sim.homes["home-1"].device("battery")
