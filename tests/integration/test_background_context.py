"""Background tasks of shared connections log without the context of the request that started them."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest_asyncio
import structlog
from structlog.contextvars import bound_contextvars, merge_contextvars
from structlog.testing import capture_logs

from drivers.errors import DeviceUnreachable
from drivers.transport import ModbusEndpoint, ModbusPool, MqttPool, Transports
from drivers.victron_gx.driver import VictronGxDriver
from drivers.victron_gx.options import VictronGxOptions
from simulator import HomeConfig, Simulator, SimulatorConfig, VictronGxConfig
from simulator.config import SimDeviceConfig
from tests.helpers import eventually

# What gateway/app.py binds for the length of a command request.
REQUEST = {"request_id": "gw-test-1", "token_sub": "someone@example"}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(tick_s=0, homes=[HomeConfig(id="home-x", devices=[
        SimDeviceConfig(id="inverter", kind="sunspec", port=0),
        VictronGxConfig(id="gx", kind="victron_gx")])])  # fmt: skip
    async with Simulator(config) as simulator:
        yield simulator


def leaked(events: list[MutableMapping[str, Any]], names: set[str]) -> list[MutableMapping[str, Any]]:
    """The background events among ``events`` that carry any request key."""
    return [e for e in events if e["event"] in names and REQUEST.keys() & e.keys()]


async def reads(endpoint: ModbusEndpoint) -> bool:
    try:
        await endpoint.read_holding(1, 40000, 2)
    except DeviceUnreachable:
        return False
    return True


async def test_modbus_reconnects_started_by_a_request_log_without_its_context(sim: Simulator) -> None:
    dev = sim.homes["home-x"].device("inverter")
    pool = ModbusPool(timeout_s=1.0, backoff_max_s=0.2)
    endpoint = pool.acquire(dev.host, dev.port)
    try:
        with capture_logs(processors=[merge_contextvars]) as events, bound_contextvars(**REQUEST):
            structlog.get_logger("test").info("request.work")  # the request's own lines keep it
            await endpoint.read_holding(1, 40000, 2)  # the request starts the reconnect loop
            await dev.drop_connections()
            await eventually(lambda: reads(endpoint))  # ... and again after the drop
    finally:
        await pool.close()
    assert next(e for e in events if e["event"] == "request.work")["request_id"] == "gw-test-1"
    assert [e["event"] for e in events].count("modbus.connected") == 2
    assert leaked(events, {"modbus.connected"}) == []


async def test_mqtt_and_victron_background_tasks_log_without_the_request_context(
    sim: Simulator,
) -> None:
    gx = sim.homes["home-x"].victron_gx("gx")
    transports = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
    options = VictronGxOptions(host=gx.host, port=gx.port, connect_timeout_s=2.0)
    driver = VictronGxDriver("gx", options, transports)
    try:
        with capture_logs(processors=[merge_contextvars]) as events, bound_contextvars(**REQUEST):
            await driver.connect()  # starts the broker connection and the keepalive loop
            await gx.broker_restart()
            await eventually(lambda: any(e["event"] == "victron.republished" for e in events), timeout=5)
    finally:
        await driver.close()
        await transports.close()
    background = {"mqtt.connected", "mqtt.connection_lost", "victron.republished"}
    assert background <= {e["event"] for e in events}
    assert leaked(events, background) == []
    # connect() itself ran in the request: its own line keeps the request's context
    assert next(e for e in events if e["event"] == "victron.connected")["token_sub"] == "someone@example"
