"""Every registered driver against its simulated twin: connect() and read(), failures by type."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.base import Capability, DeviceInfo, DeviceTelemetry, Driver
from drivers.errors import DeviceUnreachable
from drivers.registry import DRIVERS
from drivers.transport import ModbusPool, MqttPool, Transports
from simulator import (
    DeviceConfig,
    Endpoint,
    HomeConfig,
    MqttBatteryConfig,
    SimDeviceConfig,
    Simulator,
    SimulatorConfig,
    VictronGxConfig,
)
from tests.integration.brokers import mqtt_broker


@dataclass(frozen=True)
class Twin:
    """How to stand a driver's device up in the simulator and point the driver at it.

    ``device`` gets the port of a test broker when ``needs_broker`` (a device that is an MQTT
    client of a broker it does not own), else 0.
    """

    device: Callable[[int], DeviceConfig]
    options: Callable[[Endpoint], dict[str, Any]]
    needs_broker: bool = False


def _mqtt_battery_options(ep: Endpoint) -> dict[str, Any]:
    state = "{base}/state"
    return {
        "host": ep.host, "port": ep.port, "base_topic": "sim/battery1", "connect_timeout_s": 1.0,
        "availability_topic": "{base}/availability",
        "points": {
            "soc_pct": {"state_topic": state, "value_path": "soc"},
            "battery_w": {"state_topic": state, "value_path": "power"},
            "reserve_pct": {"state_topic": state, "value_path": "reserve",
                            "command_topic": "{base}/set/reserve"},
        },
    }  # fmt: skip


TWINS: dict[str, Twin] = {
    "sunspec": Twin(
        device=lambda _: SimDeviceConfig(id="device", kind="sunspec"),
        options=lambda ep: {"host": ep.host, "port": ep.port, "unit_id": ep.unit_id},
    ),
    "victron_gx": Twin(
        device=lambda _: VictronGxConfig(id="device", kind="victron_gx"),
        options=lambda ep: {"host": ep.host, "port": ep.port, "connect_timeout_s": 1.0},
    ),
    "mqtt_battery": Twin(
        device=lambda port: MqttBatteryConfig(
            id="device", kind="mqtt_battery", broker_port=port, publish_interval_s=0.1
        ),
        options=_mqtt_battery_options,
        needs_broker=True,
    ),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def transports() -> AsyncIterator[Transports]:
    t = Transports(
        modbus=ModbusPool(timeout_s=0.5, backoff_max_s=0.3), mqtt=MqttPool(timeout_s=0.5, backoff_max_s=0.3)
    )
    yield t
    await t.close()


def test_every_driver_has_a_simulated_twin() -> None:
    assert set(DRIVERS) == set(TWINS)


@pytest.mark.parametrize("kind", sorted(DRIVERS))
async def test_driver_reads_its_twin(kind: str, transports: Transports) -> None:
    twin = TWINS[kind]
    async with contextlib.AsyncExitStack() as stack:
        broker_port = (await stack.enter_async_context(mqtt_broker())).port if twin.needs_broker else 0
        config = SimulatorConfig(
            start=datetime(2026, 6, 21, 12, 0, tzinfo=UTC),
            tick_s=0,
            homes=[HomeConfig(id="home-1", devices=[twin.device(broker_port)])],
        )
        sim = await stack.enter_async_context(Simulator(config))
        cls = DRIVERS[kind]
        options = cls.options_model.model_validate(twin.options(sim.endpoint("home-1/device")))
        driver = cls(kind, options, transports)
        assert isinstance(driver, Driver)
        try:
            info = await driver.connect()
            telemetry = await driver.read()
        finally:
            await driver.close()
    assert isinstance(info, DeviceInfo)
    assert isinstance(telemetry, DeviceTelemetry)
    assert driver.capabilities
    assert telemetry.taken_at.tzinfo is not None
    measured = {
        Capability.SOLAR: telemetry.solar_w,
        Capability.BATTERY: telemetry.soc_pct,
        Capability.GRID_METER: telemetry.grid_w,
        Capability.GRID_STATUS: telemetry.grid_up,
    }
    for capability, value in measured.items():
        if capability in driver.capabilities:
            assert value is not None, capability


@pytest.mark.parametrize("kind", sorted(DRIVERS))
async def test_driver_without_its_device_is_unreachable(kind: str, transports: Transports) -> None:
    cls = DRIVERS[kind]
    ep = Endpoint(host="127.0.0.1", port=free_port(), unit_id=1, kind=kind)
    driver = cls(kind, cls.options_model.model_validate(TWINS[kind].options(ep)), transports)
    try:
        with pytest.raises(DeviceUnreachable):
            await driver.connect()
    finally:
        await driver.close()
