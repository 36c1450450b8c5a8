"""Faults on a SunSpec device's Modbus TCP port, seen by a plain pymodbus client, and the control API."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from structlog.testing import capture_logs

from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from simulator.devices.sunspec import SunSpecDevice
from tests.helpers import eventually

HOME = "home-1"
UNIT = 1


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    """One home with a SunSpec inverter on a free port; no ticker (the physics stands still)."""
    config = SimulatorConfig(
        control=ControlConfig(port=0),
        tick_s=0,
        homes=[HomeConfig(id=HOME, initial_soc_pct=60, devices=[
            SimDeviceConfig(id="inverter", kind="sunspec", port=0, unit_id=UNIT)])],
    )  # fmt: skip
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def dev(sim: Simulator) -> SunSpecDevice:
    return sim.homes[HOME].device("inverter")


def client(dev: SunSpecDevice, timeout: float = 2.0) -> AsyncModbusTcpClient:
    # reconnect_delay=0: no silent reconnects, so a dropped connection stays visible.
    return AsyncModbusTcpClient(dev.host, port=dev.port, timeout=timeout, retries=0, reconnect_delay=0)


@asynccontextmanager
async def connected(dev: SunSpecDevice, timeout: float = 2.0) -> AsyncIterator[AsyncModbusTcpClient]:
    c = client(dev, timeout)
    try:
        assert await c.connect()
        yield c
    finally:
        c.close()


def listening(dev: SunSpecDevice) -> bool:
    # a function, not the property: mypy would narrow the property and call later asserts unreachable
    return dev.listening


def reserve_address(dev: SunSpecDevice) -> int:
    return dev.model_address(124) + 7  # MinRsvPct, scale factor 0


async def read_reserve(c: AsyncModbusTcpClient, dev: SunSpecDevice) -> int:
    rr = await c.read_holding_registers(reserve_address(dev), count=1, device_id=UNIT)
    assert not rr.isError(), rr
    return int(rr.registers[0])


async def serves(dev: SunSpecDevice) -> bool:
    """A fresh client connects and reads the reserve."""
    c = client(dev, timeout=0.5)
    try:
        if not await c.connect():
            return False
        await read_reserve(c, dev)
    except ModbusException:
        return False
    finally:
        c.close()
    return True


async def test_refused_connections_recover_on_the_same_port(dev: SunSpecDevice) -> None:
    port = dev.port
    async with connected(dev) as open_before:
        await dev.apply_faults(refuse_connections=True)
        assert not listening(dev)
        c = client(dev)
        assert not await c.connect()
        c.close()
        # a connection made before the refusal is not dropped by it
        assert await read_reserve(open_before, dev) == 20
    # clearing by plain assignment reopens the listener too
    dev.faults.refuse_connections = False
    await eventually(lambda: dev.listening)
    assert dev.port == port
    assert await serves(dev)


async def test_dropped_connections_are_closed(dev: SunSpecDevice) -> None:
    async with connected(dev) as c:
        assert await read_reserve(c, dev) == 20
        assert dev.stats.active == 1
        assert await dev.drop_connections() == 1
        await eventually(lambda: not c.connected)
        with pytest.raises(ModbusException):
            await read_reserve(c, dev)
    assert dev.stats.dropped == 1
    await eventually(lambda: dev.stats.active == 0)
    assert await serves(dev)


async def test_half_open_accepts_but_never_answers(dev: SunSpecDevice) -> None:
    await dev.apply_faults(half_open=True)
    async with connected(dev, timeout=0.3) as c:
        with pytest.raises(ModbusException):
            await read_reserve(c, dev)
    assert dev.stats.accepted == 1
    assert dev.stats.requests >= 1
    assert dev.stats.answered == 0
    dev.faults.half_open = False
    assert await serves(dev)


async def test_delay_slows_every_answer(dev: SunSpecDevice) -> None:
    await dev.apply_faults(delay_s=0.4)
    async with connected(dev, timeout=0.1) as impatient:
        with pytest.raises(ModbusException):
            await read_reserve(impatient, dev)
    async with connected(dev, timeout=5) as patient:
        started = time.monotonic()
        assert await read_reserve(patient, dev) == 20
        assert time.monotonic() - started >= 0.3
        dev.faults.delay_s = 0
        assert await read_reserve(patient, dev) == 20


async def test_exception_code_answers_every_request(dev: SunSpecDevice) -> None:
    await dev.apply_faults(exception_code=6)
    async with connected(dev) as c:
        rr = await c.read_holding_registers(reserve_address(dev), count=1, device_id=UNIT)
        assert rr.isError()
        assert rr.exception_code == 6
        rr = await c.write_register(reserve_address(dev), 50, device_id=UNIT)
        assert rr.exception_code == 6
        dev.faults.exception_code = None
        assert await read_reserve(c, dev) == 20  # the write was never applied
    assert dev.stats.answered == 3


async def test_ignored_writes_are_acknowledged_and_not_applied(sim: Simulator, dev: SunSpecDevice) -> None:
    await dev.apply_faults(ignore_writes=True)
    async with connected(dev) as c:
        rr = await c.write_register(reserve_address(dev), 50, device_id=UNIT)
        assert not rr.isError()
        rr = await c.write_registers(reserve_address(dev), [55], device_id=UNIT)
        assert not rr.isError()
        assert await read_reserve(c, dev) == 20
    assert sim.homes[HOME].truth().reserve_pct == 20


async def test_single_client_refuses_a_second_connection(dev: SunSpecDevice) -> None:
    await dev.apply_faults(single_client=True)
    async with connected(dev) as first:
        assert await read_reserve(first, dev) == 20
        assert not await serves(dev)
        assert dev.stats.refused >= 1
        assert await read_reserve(first, dev) == 20  # the first client is unaffected
    await eventually(lambda: dev.stats.active == 0)
    assert await serves(dev)
    assert dev.stats.accepted == 2


async def test_reboot_restores_factory_settings_and_drops_connections(
    sim: Simulator, dev: SunSpecDevice
) -> None:
    home = sim.homes[HOME]
    port = dev.port
    dev.faults.reboot_s = 0.3
    async with connected(dev) as c:
        rr = await c.write_register(reserve_address(dev), 50, device_id=UNIT)
        assert not rr.isError()
        rr = await c.write_register(dev.model_address(124) + 17, 1, device_id=UNIT)  # ChaGriSet GRID
        assert not rr.isError()
        assert (home.truth().reserve_pct, home.truth().grid_charging) == (50, True)
        before = home.truth()
        await dev.reboot(wait=False)
        assert not listening(dev)
        await eventually(lambda: not c.connected)
        assert not await serves(dev)  # still booting
    truth = home.truth()
    assert (truth.reserve_pct, truth.grid_charging, truth.export_limit_w) == (20, False, None)
    assert truth.battery_command_w is None
    assert truth.soc_pct == before.soc_pct
    assert truth.grid_import_wh == before.grid_import_wh
    assert await eventually(lambda: serves(dev))
    assert dev.port == port
    assert (dev.stats.reboots, dev.stats.dropped) == (1, 1)
    await dev.reboot()  # wait=True: back when it returns
    assert dev.listening
    assert await serves(dev)


async def test_drops_and_reboots_are_normal_life_not_errors(
    dev: SunSpecDevice, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 9 point 10: every drop or reboot logged an error-level CancelledError traceback
    # ("Exception in callback StreamReaderProtocol.connection_made...") from modbus_front.
    caplog.set_level(logging.DEBUG)
    await dev.apply_faults(reboot_s=0.05)
    with capture_logs() as events:
        async with connected(dev) as c:
            await read_reserve(c, dev)
            assert await dev.drop_connections() == 1
        async with connected(dev) as c:
            await read_reserve(c, dev)
            await dev.reboot()
        async with connected(dev) as c:  # and a connection still open when the device stops
            await read_reserve(c, dev)
            await dev.stop()
    assert dev.stats.dropped == 2
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or "CancelledError" in r.getMessage()]
    assert loud == []
    assert [e for e in events if e["log_level"] not in {"debug", "info"} or "exc_info" in e] == []
    assert [e["event"] for e in events].count("modbus front connection closed") == 3


async def test_stop_while_rebooting_leaves_nothing_behind(dev: SunSpecDevice) -> None:
    await dev.apply_faults(reboot_s=30)
    await dev.reboot(wait=False)
    await dev.stop()
    assert not listening(dev)


# --- control API --------------------------------------------------------------------------------


async def test_control_api_faults(sim: Simulator, dev: SunSpecDevice) -> None:
    base = f"/homes/{HOME}/devices/inverter"
    async with aiohttp.ClientSession(base_url=sim.control_url) as http:
        async with http.get(f"/homes/{HOME}/devices") as resp:
            assert await resp.json() == [{"id": "inverter", "kind": "sunspec", "host": dev.host,
                                          "port": dev.port, "unit_id": UNIT}]  # fmt: skip
        async with http.get(f"{base}/faults") as resp:
            assert resp.status == 200
            assert (await resp.json())["exception_code"] is None
        async with http.post(f"{base}/faults", json={"exception_code": 4, "delay_s": 0.01}) as resp:
            assert resp.status == 200
            plan = await resp.json()
            assert (plan["exception_code"], plan["delay_s"], plan["half_open"]) == (4, 0.01, False)
        async with connected(dev) as c:
            rr = await c.read_holding_registers(reserve_address(dev), count=1, device_id=UNIT)
            assert rr.exception_code == 4
        for bad, field in (({"delay_s": -1}, "delay_s"), ({"bogus": True}, "bogus"),
                           ({"single_client": "yes"}, "single_client")):  # fmt: skip
            async with http.post(f"{base}/faults", json=bad) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"].startswith(f"{field}: ")
        async with http.post(f"{base}/faults", json=[1]) as resp:
            assert resp.status == 400
        async with http.post(f"{base}/faults", data=b"{not json") as resp:
            assert resp.status == 400
        assert dev.faults.exception_code == 4  # bad requests changed nothing
        refuse = {"exception_code": None, "refuse_connections": True}
        async with http.post(f"{base}/faults", json=refuse) as resp:
            assert resp.status == 200
        assert not listening(dev)
        async with http.post(f"{base}/faults", json={"refuse_connections": False}) as resp:
            assert resp.status == 200
        assert dev.listening  # the answer comes once the listener is back
        for path in ("/homes/nope/devices/inverter/faults", f"/homes/{HOME}/devices/nope/faults",
                     "/homes/nope/devices"):  # fmt: skip
            async with http.get(path) as resp:
                assert resp.status == 404


async def test_control_api_drop_reboot_and_stats(sim: Simulator, dev: SunSpecDevice) -> None:
    base = f"/homes/{HOME}/devices/inverter"
    async with aiohttp.ClientSession(base_url=sim.control_url) as http:
        async with connected(dev) as c:
            await read_reserve(c, dev)
            async with http.post(f"{base}/drop") as resp:
                assert await resp.json() == {"dropped": 1}
        async with http.post(f"{base}/faults", json={"reboot_s": 0.05}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/reboot") as resp:
            assert await resp.json() == {"reboots": 1, "listening": True}
        async with http.post(f"{base}/reboot", json={"wait": False}) as resp:
            assert (await resp.json())["listening"] is False
        async with http.post(f"{base}/reboot", json={"wait": "no"}) as resp:
            assert resp.status == 400
        await eventually(lambda: dev.listening)
        async with http.get(f"{base}/stats") as resp:
            stats = await resp.json()
        assert stats["accepted"] == 1
        assert stats["dropped"] == 1
        assert stats["answered"] == stats["requests"] == 1
        assert stats["reboots"] == 2
        async with http.post(f"{base}/broker_restart") as resp:
            assert resp.status == 409
        async with http.post("/homes/nope/devices/inverter/reboot") as resp:
            assert resp.status == 404
