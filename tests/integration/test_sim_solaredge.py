"""The SolarEdge StorEdge twin over a real socket (pymodbus client): readings, remote control, quirks."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulator import HomeConfig, SimHome, Simulator, SimulatorConfig, SolarEdgeStorEdgeConfig
from simulator.devices.solaredge import SolarEdgeStorEdgeDevice

HOME = "home-se"
START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)  # sunny morning: PV, load and battery all move

# Addresses from SolarEdge's SunSpec and StorEdge technical notes (not from the twin's code).
INV_W, INV_W_SF, INV_DCW, INV_DCW_SF = 40083, 40084, 40100, 40101
METER_W, METER_W_SF = 40206, 40210
EXPORT_MODE, SITE_LIMIT = 0xE000, 0xE002
CONTROL_MODE, AC_POLICY, RESERVE = 0xE004, 0xE005, 0xE008
DEFAULT_MODE, TIMEOUT, COMMAND_MODE = 0xE00A, 0xE00B, 0xE00D
CHARGE_LIMIT, DISCHARGE_LIMIT = 0xE00E, 0xE010
BAT_POWER, BAT_SOE = 0xE174, 0xE184
REMOTE, MSC = 4, 1
CHARGE_PV_AC, MAX_EXPORT, MAX_SELF_CONSUMPTION = 3, 4, 7


def f32(value: float) -> list[int]:
    """A float32 as SolarEdge sends it: low word first."""
    (raw,) = struct.unpack(">I", struct.pack(">f", value))
    return [raw & 0xFFFF, raw >> 16]


def from_f32(words: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">I", (words[1] << 16) | words[0]))[0])


def s16(raw: int) -> int:
    return raw - 0x10000 if raw >= 0x8000 else raw


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(start=START, tick_s=0, homes=[HomeConfig(
        id=HOME, initial_soc_pct=60,
        devices=[SolarEdgeStorEdgeConfig(id="storedge", kind="solaredge_storedge")])])
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def home(sim: Simulator) -> SimHome:
    return sim.homes[HOME]


@pytest.fixture
def device(home: SimHome) -> SolarEdgeStorEdgeDevice:
    return home.solaredge("storedge")


@pytest.fixture
async def client(device: SolarEdgeStorEdgeDevice) -> AsyncIterator[AsyncModbusTcpClient]:
    c = AsyncModbusTcpClient("127.0.0.1", port=device.port, timeout=1, retries=0, reconnect_delay=0)
    assert await c.connect()
    yield c
    c.close()


async def read(client: AsyncModbusTcpClient, address: int, count: int) -> list[int]:
    response = await client.read_holding_registers(address, count=count, device_id=1)
    assert not response.isError(), response
    return list(response.registers)


async def write(client: AsyncModbusTcpClient, address: int, values: list[int]) -> None:
    response = await client.write_registers(address, values, device_id=1)
    assert not response.isError(), response


async def refused(client: AsyncModbusTcpClient, address: int, values: list[int]) -> int:
    """The exception code a write answers (fails when it is accepted)."""
    if len(values) == 1:
        response = await client.write_register(address, values[0], device_id=1)
    else:
        response = await client.write_registers(address, values, device_id=1)
    assert response.isError(), "write accepted"
    return int(response.exception_code)


async def test_sunspec_readings_match_the_truth(
    client: AsyncModbusTcpClient, home: SimHome
) -> None:
    home.step(60)
    truth = home.truth()
    assert await read(client, 40000, 2) == [0x5375, 0x6E53]
    assert (await read(client, 40002, 2)) == [1, 65]  # SolarEdge's common model has L = 65
    assert (await read(client, 40069, 2)) == [103, 50]
    assert (await read(client, 40188, 2)) == [203, 105]
    assert (await read(client, 40295, 2)) == [0xFFFF, 0]
    inverter = await read(client, 40069, 52)  # one read: value and its scale factor together
    ac_w = s16(inverter[INV_W - 40069]) * 10.0 ** s16(inverter[INV_W_SF - 40069])
    assert ac_w == pytest.approx(truth.solar_w + truth.battery_w, abs=1)
    dc_w = s16(inverter[INV_DCW - 40069]) * 10.0 ** s16(inverter[INV_DCW_SF - 40069])
    assert dc_w == pytest.approx(truth.solar_w + truth.battery_w, abs=1)
    meter = await read(client, METER_W, 5)
    assert s16(meter[0]) * 10.0 ** s16(meter[4]) == pytest.approx(-truth.grid_w, abs=1)  # + export
    assert from_f32(await read(client, BAT_POWER, 2)) == pytest.approx(-truth.battery_w, abs=0.5)
    assert from_f32(await read(client, BAT_SOE, 2)) == pytest.approx(truth.soc_pct, abs=0.01)


async def test_the_power_scale_factor_follows_the_value(
    client: AsyncModbusTcpClient, home: SimHome
) -> None:
    home.step(13 * 3600)  # night: the AC output is the battery's discharge alone
    await write(client, CONTROL_MODE, [REMOTE])
    factors = []
    for discharge_w in (150, 5000):
        await write(client, DISCHARGE_LIMIT, f32(discharge_w))
        await write(client, COMMAND_MODE, [MAX_EXPORT])
        home.step(1)
        w, sf = await read(client, INV_W, 2)  # value and factor in one read
        truth = home.truth()
        assert truth.solar_w == 0
        assert s16(w) * 10.0 ** s16(sf) == pytest.approx(truth.battery_w, abs=1)
        factors.append(s16(sf))
    assert factors == [-2, 0]  # 150.00 W in hundredths; 5000 W does not fit tenths in an int16


async def test_storage_commands_act_only_in_remote_control_mode(
    client: AsyncModbusTcpClient, home: SimHome
) -> None:
    await write(client, DISCHARGE_LIMIT, f32(3000))
    await write(client, COMMAND_MODE, [MAX_EXPORT])
    assert await read(client, COMMAND_MODE, 1) == [MAX_EXPORT]  # stored ...
    assert home.truth().battery_command_w is None  # ... but the battery is in self-consumption
    await write(client, CONTROL_MODE, [REMOTE])
    home.step(1)
    assert home.truth().battery_command_w == pytest.approx(3000)
    await write(client, CONTROL_MODE, [MSC])
    assert home.truth().battery_command_w is None


async def test_a_remote_command_reverts_when_its_timeout_lapses(
    client: AsyncModbusTcpClient, home: SimHome, device: SolarEdgeStorEdgeDevice
) -> None:
    await write(client, CONTROL_MODE, [REMOTE])
    await write(client, AC_POLICY, [1])
    await write(client, TIMEOUT, [60, 0])  # U32, low word first
    await write(client, CHARGE_LIMIT, f32(2500))
    await write(client, COMMAND_MODE, [CHARGE_PV_AC])
    home.step(30)
    assert home.truth().battery_command_w == pytest.approx(-2500)
    await write(client, CHARGE_LIMIT, f32(2000))  # a command restarts the timeout
    home.step(45)
    assert home.truth().battery_command_w == pytest.approx(-2000)
    await write(client, TIMEOUT, [60, 0])  # so does re-sending the timeout alone
    home.step(45)
    assert home.truth().battery_command_w == pytest.approx(-2000)
    home.step(20)
    assert home.truth().battery_command_w is None  # reverted in the physics ...
    assert await read(client, COMMAND_MODE, 1) == [MAX_SELF_CONSUMPTION]  # ... and the register
    assert await read(client, DEFAULT_MODE, 1) == [MAX_SELF_CONSUMPTION]
    assert device.command_until is None


async def test_backup_reserve_grid_charging_and_export_limit(
    client: AsyncModbusTcpClient, home: SimHome
) -> None:
    await write(client, RESERVE, f32(45))
    assert home.truth().reserve_pct == 45
    assert from_f32(await read(client, RESERVE, 2)) == 45
    await write(client, EXPORT_MODE, [1])
    await write(client, SITE_LIMIT, f32(0))
    assert home.truth().export_limit_w == 0
    await write(client, EXPORT_MODE, [0])
    assert home.truth().export_limit_w is None
    # AC charging: only in remote control, and only with the AC charge policy allowing it.
    await write(client, CONTROL_MODE, [REMOTE])
    await write(client, CHARGE_LIMIT, f32(1000))
    await write(client, COMMAND_MODE, [CHARGE_PV_AC])
    assert home.truth().battery_command_w is None  # policy 0: PV only, never from the grid
    await write(client, AC_POLICY, [1])
    assert home.truth().battery_command_w == pytest.approx(-1000)


async def test_writes_outside_the_documented_map_are_refused(
    client: AsyncModbusTcpClient, device: SolarEdgeStorEdgeDevice
) -> None:
    before = device.settings
    assert await refused(client, RESERVE, f32(150)) == 3  # out of range
    assert await refused(client, CONTROL_MODE, [9]) == 3  # undefined mode
    assert await refused(client, DISCHARGE_LIMIT, f32(1e6)) == 3  # above the battery's rating
    assert await refused(client, RESERVE, [0]) == 2  # half of a 32-bit value (FC6)
    assert await refused(client, 40083, [1]) == 2  # SunSpec readings are read-only
    assert await refused(client, 0xE174, f32(1)) == 2  # so is the battery block
    assert device.settings == before
    outside = await client.read_holding_registers(0xE010, count=4, device_id=1)
    assert outside.isError()
    assert outside.exception_code == 2  # past the end of the storage block
    fc4 = await client.read_input_registers(40000, count=2, device_id=1)
    assert fc4.isError()
    assert fc4.exception_code == 2  # holding registers only


async def test_one_client_at_a_time(
    client: AsyncModbusTcpClient, device: SolarEdgeStorEdgeDevice
) -> None:
    second = AsyncModbusTcpClient("127.0.0.1", port=device.port, timeout=0.5, retries=0,
                                  reconnect_delay=0)
    try:
        await second.connect()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while device.stats.refused == 0:  # the twin resets the second connection at once
            assert loop.time() < deadline, "second client was not refused"
            await asyncio.sleep(0.01)
    finally:
        second.close()
    assert await read(client, 40000, 2) == [0x5375, 0x6E53]  # the first client carries on
    assert device.stats.accepted == 1


async def test_reboot_restores_factory_settings_and_ignored_writes_store_nothing(
    client: AsyncModbusTcpClient, home: SimHome, device: SolarEdgeStorEdgeDevice
) -> None:
    await write(client, RESERVE, f32(70))
    await write(client, CONTROL_MODE, [REMOTE])
    device.faults.ignore_writes = True
    await write(client, RESERVE, f32(90))  # acknowledged ...
    assert home.truth().reserve_pct == 70  # ... and ignored
    device.faults.ignore_writes = False
    await device.reboot(wait=True)
    assert home.truth().reserve_pct == 20
    assert device.settings.control_mode == MSC
    fresh = AsyncModbusTcpClient("127.0.0.1", port=device.port, timeout=1, retries=0,
                                 reconnect_delay=0)
    try:
        assert await fresh.connect()
        assert from_f32(await read(fresh, RESERVE, 2)) == 20
    finally:
        fresh.close()


async def test_pysunspec2_scans_the_sunspec_part(
    device: SolarEdgeStorEdgeDevice, home: SimHome
) -> None:
    import sunspec2.modbus.client as sunspec_client

    def scan() -> tuple[list[int], float, float]:
        dev = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                          ipport=device.port, timeout=2)
        try:
            dev.scan()
            inverter, meter = dev.models[103][0], dev.models[203][0]
            inverter.read()
            meter.read()
            return (sorted(k for k in dev.models if isinstance(k, int)), inverter.W.cvalue,
                    meter.W.cvalue)
        finally:
            dev.close()

    models, ac_w, meter_w = await asyncio.to_thread(scan)
    truth = home.truth()
    assert models == [1, 103, 203]  # the L = 65 common model scans like any other
    assert ac_w == pytest.approx(truth.solar_w + truth.battery_w, abs=1)
    assert meter_w == pytest.approx(-truth.grid_w, abs=1)
