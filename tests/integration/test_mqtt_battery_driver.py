"""The generic MQTT driver against the simulated MQTT battery on a real broker (mosquitto or amqtt)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
import pytest_asyncio

from drivers.base import Capability, DeviceTelemetry, Setpoints
from drivers.errors import DeviceUnreachable, NotConfirmed
from drivers.mqtt_battery.driver import MqttBatteryDriver
from drivers.mqtt_battery.options import MqttBatteryOptions
from drivers.transport import MqttPool, Transports
from simulator import HomeConfig, MqttBatteryConfig, Simulator, SimulatorConfig
from tests.helpers import eventually
from tests.integration.brokers import RunningBroker, mosquitto_path, mqtt_broker

NOON = datetime(2026, 6, 21, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
BASE = "sim/battery1"


def battery_options(host: str, port: int, **extra: Any) -> dict[str, Any]:
    """The driver options that map the simulated battery's topics (what config.example.yaml holds)."""
    state = "{base}/state"
    return {
        "host": host, "port": port, "base_topic": BASE,
        "availability_topic": "{base}/availability",
        "points": {
            "soc_pct": {"state_topic": state, "value_path": "soc"},
            "battery_w": {"state_topic": state, "value_path": "power"},
            "reserve_pct": {"state_topic": state, "value_path": "reserve",
                            "command_topic": "{base}/set/reserve"},
            "grid_charging": {"state_topic": state, "value_path": "grid_charging",
                              "command_topic": "{base}/set/grid_charging"},
            "export_limit_w": {"state_topic": state, "value_path": "export_limit",
                               "command_topic": "{base}/set/export_limit"},
        },
        "capacity_wh": 13500, "max_charge_w": 5000, "max_discharge_w": 5000,
        "confirm_timeout_s": 1.5, "connect_timeout_s": 3.0,
        **extra,
    }  # fmt: skip


@pytest_asyncio.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[RunningBroker]:
    kind = getattr(request, "param", None)  # default: mosquitto when installed, else amqtt
    if kind == "mosquitto" and mosquitto_path() is None:
        pytest.skip("mosquitto is not installed")
    async with mqtt_broker(kind) as running:
        yield running


@pytest_asyncio.fixture
async def sim(broker: RunningBroker) -> AsyncIterator[Simulator]:
    device = MqttBatteryConfig(id="battery", kind="mqtt_battery", broker_port=broker.port,
                               base_topic=BASE, publish_interval_s=0.1)  # fmt: skip
    home = HomeConfig(id="home-b", initial_soc_pct=55, devices=[device])
    config = SimulatorConfig(start=NOON, tick_s=0, homes=[home])
    async with Simulator(config) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[Transports]:
    t = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
    yield t
    await t.close()


@asynccontextmanager
async def battery(
    broker: RunningBroker, transports: Transports, **extra: Any
) -> AsyncIterator[MqttBatteryDriver]:
    options = MqttBatteryOptions.model_validate(battery_options(broker.host, broker.port, **extra))
    driver = MqttBatteryDriver("battery", options, transports)
    try:
        yield driver
    finally:
        await driver.close()


@pytest_asyncio.fixture
async def driver(
    broker: RunningBroker, sim: Simulator, transports: Transports
) -> AsyncIterator[MqttBatteryDriver]:
    async with battery(broker, transports) as d:
        await d.connect()
        yield d


async def readable(driver: MqttBatteryDriver) -> bool:
    try:
        await driver.read()
    except DeviceUnreachable:
        return False
    return True


@asynccontextmanager
async def command_probe(broker: RunningBroker) -> AsyncIterator[list[tuple[str, bytes, bool]]]:
    seen: list[tuple[str, bytes, bool]] = []
    flt = f"{BASE}/set/#"
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.subscribe(flt, qos=1)

        async def read() -> None:
            async for m in client.messages:
                if m.topic.matches(flt):
                    seen.append((str(m.topic), bytes(m.payload), m.retain))

        task = asyncio.create_task(read())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_connect_and_read_the_truth(sim: Simulator, driver: MqttBatteryDriver) -> None:
    assert driver.capabilities == {Capability.BATTERY, Capability.BACKUP_RESERVE,
                                   Capability.GRID_CHARGING, Capability.EXPORT_LIMIT}  # fmt: skip
    truth = sim.homes["home-b"].truth()
    t = await driver.read()
    assert t.soc_pct == pytest.approx(truth.soc_pct, abs=0.06)
    assert t.battery_w == pytest.approx(truth.battery_w, abs=0.06)  # + discharging on both sides
    assert (t.grid_w, t.solar_w, t.load_w) == (None, None, None)
    assert t.capacity_wh == 13500
    assert driver.available is True


async def test_each_apply_lands_on_the_truth_unretained(
    broker: RunningBroker, sim: Simulator, driver: MqttBatteryDriver
) -> None:
    home = sim.homes["home-b"]
    async with command_probe(broker) as commands:
        await driver.apply(Setpoints(reserve_pct=40, grid_charging=True, export_limit_w=3000))
        truth = home.truth()
        assert (truth.reserve_pct, truth.grid_charging) == (40, True)
        assert truth.export_limit_w == pytest.approx(3000)
        await driver.apply(Setpoints(reserve_pct=40, grid_charging=False, export_limit_w=None))
        truth = home.truth()
        assert (truth.grid_charging, truth.export_limit_w) == (False, None)
        assert await driver.read_back() == Setpoints(reserve_pct=40, grid_charging=False, export_limit_w=None)
        await eventually(lambda: len(commands) >= 5)
    sent = [(t.removeprefix(f"{BASE}/set/"), p) for t, p, _ in commands]
    assert sent == [("reserve", b"40"), ("grid_charging", b"true"), ("export_limit", b"3000"),
                    ("grid_charging", b"false"), ("export_limit", b"null")]  # fmt: skip
    assert not any(retained for *_, retained in commands)


async def test_ignored_command_is_not_confirmed(sim: Simulator, driver: MqttBatteryDriver) -> None:
    home = sim.homes["home-b"]
    before = home.truth().reserve_pct
    with pytest.raises(NotConfirmed) as caught:
        await driver.apply(Setpoints(reserve_pct=150, grid_charging=home.truth().grid_charging,
                                     export_limit_w=None))  # fmt: skip
    assert caught.value.expected == {"reserve_pct": 150.0}
    assert home.truth().reserve_pct == before


# Default broker only (mosquitto here): amqtt 0.12.1's shutdown can hang on Python 3.11 (its reader
# task's wait_for swallows the cancel), which would make a restart test flaky.
async def test_broker_restart_reconnects_resubscribes_and_confirms(
    broker: RunningBroker, sim: Simulator, driver: MqttBatteryDriver
) -> None:
    home = sim.homes["home-b"]
    await driver.apply(Setpoints(reserve_pct=25, grid_charging=False, export_limit_w=None))
    connection = driver._broker
    assert connection is not None
    assert connection.connections == 1
    await broker.restart()
    await eventually(lambda: connection.connections >= 2, timeout=5)
    # mosquitto sent the battery's will ("offline") on shutdown; the battery reconnects on its
    # own schedule, announces "online" and state flows again on our re-subscription
    await eventually(lambda: readable(driver), timeout=5)
    assert driver._broker is connection  # the same shared connection, re-made underneath
    await eventually(lambda: home.mqtt_battery("battery").connected, timeout=5)
    await driver.apply(Setpoints(reserve_pct=65, grid_charging=True, export_limit_w=0))
    truth = home.truth()
    assert (truth.reserve_pct, truth.grid_charging, truth.export_limit_w) == (65, True, 0)


async def test_device_going_offline_is_unreachable(sim: Simulator, driver: MqttBatteryDriver) -> None:
    await sim.homes["home-b"].mqtt_battery("battery").stop()  # publishes "offline" (retained)
    await eventually(lambda: driver.available is False)
    with pytest.raises(DeviceUnreachable, match="offline"):
        await driver.read()


async def test_silent_device_goes_stale(
    broker: RunningBroker, sim: Simulator, transports: Transports
) -> None:
    async with battery(broker, transports, stale_after_s=0.3) as d:
        await d.connect()
        await sim.homes["home-b"].mqtt_battery("battery").stop()

        async def read_by_staleness_alone() -> DeviceTelemetry:
            # forget the "offline" it announced, also when that message arrives late (under load)
            d.available = None
            return await d.read()

        with pytest.raises(DeviceUnreachable, match="stale"):
            await eventually(read_by_staleness_alone, lambda _: False, timeout=2)


async def test_no_device_on_the_broker_is_unreachable(broker: RunningBroker, transports: Transports) -> None:
    async with battery(broker, transports, connect_timeout_s=0.3) as d:
        with pytest.raises(DeviceUnreachable, match="no value"):
            await d.connect()


async def test_raw_scaled_inverted_points_of_a_plain_publisher(
    broker: RunningBroker, transports: Transports
) -> None:
    # An OpenDTU/Homie-style device the simulator does not play: raw payloads, kW, + = export.
    options = MqttBatteryOptions.model_validate({
        "host": broker.host, "port": broker.port, "base_topic": "dtu/116",
        "points": {
            "solar_w": {"state_topic": "{base}/0/power", "scale": 1000},
            "grid_w": {"state_topic": "meter/export_kw", "scale": 1000, "invert_sign": True},
            "export_limit_w": {"state_topic": "{base}/status/limit_absolute",
                               "command_topic": "{base}/cmd/limit_nonpersistent_absolute",
                               "payload_template": "{value}W", "qos": 0},
        },
    })  # fmt: skip
    driver = MqttBatteryDriver("dtu", options, transports)
    assert driver.capabilities == {Capability.SOLAR, Capability.GRID_METER, Capability.EXPORT_LIMIT}
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as device:
        await device.subscribe("dtu/116/cmd/#", qos=1)
        await device.publish("dtu/116/0/power", b"2.5", retain=True)
        await device.publish("meter/export_kw", b"1.25", retain=True)
        await device.publish("dtu/116/status/limit_absolute", b"800", retain=True)

        async def firmware() -> None:  # applies a limit and reports it, the way OpenDTU does
            async for m in device.messages:
                if m.topic.matches("dtu/116/cmd/limit_nonpersistent_absolute"):
                    watts = bytes(m.payload).decode().removesuffix("W")
                    await device.publish("dtu/116/status/limit_absolute", watts.encode())

        task = asyncio.create_task(firmware())
        try:
            await driver.connect()
            t = await driver.read()
            assert (t.solar_w, t.grid_w, t.load_w) == (2500, -1250, 1250)
            await driver.apply(Setpoints(reserve_pct=0, grid_charging=False, export_limit_w=600))
            assert (await driver.read_back()).export_limit_w == 600
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await driver.close()
            for topic in ("dtu/116/0/power", "meter/export_kw", "dtu/116/status/limit_absolute"):
                await device.publish(topic, b"", retain=True)
