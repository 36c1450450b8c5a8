"""The SMA Sunny Boy Storage twin over a real socket (pymodbus client): unit id, NaN, BMS control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulator import HomeConfig, SimHome, Simulator, SimulatorConfig, SmaSbsConfig
from simulator.devices.sma import SmaSbsDevice

HOME = "home-sma"
NIGHT = datetime(2026, 6, 21, 23, 0, tzinfo=UTC)  # no PV: the battery alone moves
UNIT = 3

# Addresses from SMA's Modbus documents (not from the twin's code).
DEVICE_CLASS, SERIAL, GRID_RELAY = 30051, 30057, 30217
AC_POWER, SOC, GRID_DRAW, GRID_FEED = 30775, 30845, 30865, 30867
CHARGE_W, DISCHARGE_W = 31393, 31395
OP_MODE, CHA_MAX, DSCH_MAX = 40236, 40795, 40799
DEFAULT, CHARGE, DISCHARGE = 2424, 2289, 2290
NAN_U32, NAN_S32 = 0xFFFFFFFF, 0x80000000


def u32(words: list[int]) -> int:
    return (words[0] << 16) | words[1]


def s32(words: list[int]) -> int:
    raw = u32(words)
    return raw - (1 << 32) if raw >= 1 << 31 else raw


def words(value: int) -> list[int]:
    raw = value & 0xFFFFFFFF
    return [raw >> 16, raw & 0xFFFF]


def sim_config(*, energy_meter: bool = True) -> SimulatorConfig:
    return SimulatorConfig(start=NIGHT, tick_s=0, homes=[HomeConfig(
        id=HOME, initial_soc_pct=60, base_load_w=600,
        devices=[SmaSbsConfig(id="sbs", kind="sma_sbs", energy_meter=energy_meter)])])


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as simulator:
        yield simulator


@pytest.fixture
def home(sim: Simulator) -> SimHome:
    return sim.homes[HOME]


@pytest.fixture
def device(home: SimHome) -> SmaSbsDevice:
    return home.sma("sbs")


async def connected(port: int) -> AsyncModbusTcpClient:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0, reconnect_delay=0)
    assert await c.connect()
    return c


@pytest.fixture
async def client(device: SmaSbsDevice) -> AsyncIterator[AsyncModbusTcpClient]:
    c = await connected(device.port)
    yield c
    c.close()


async def read(client: AsyncModbusTcpClient, address: int, count: int = 2) -> list[int]:
    response = await client.read_holding_registers(address, count=count, device_id=UNIT)
    assert not response.isError(), response
    return list(response.registers)


async def write(client: AsyncModbusTcpClient, address: int, value: int) -> None:
    response = await client.write_registers(address, words(value), device_id=UNIT)
    assert not response.isError(), response


async def test_it_answers_unit_3_with_fc3_and_fc4_alike(client: AsyncModbusTcpClient) -> None:
    assert u32(await read(client, DEVICE_CLASS)) == 8007  # battery inverter
    assert u32(await read(client, SERIAL)) == 3012345678
    fc4 = await client.read_input_registers(DEVICE_CLASS, count=2, device_id=UNIT)
    assert list(fc4.registers) == await read(client, DEVICE_CLASS)
    other = await client.read_holding_registers(DEVICE_CLASS, count=2, device_id=1)
    assert other.isError()  # not the SMA Modbus profile's unit


async def test_readings_and_nan_sentinels(client: AsyncModbusTcpClient, home: SimHome) -> None:
    home.step(60)
    truth = home.truth()
    assert truth.battery_w > 100  # discharging into the night load
    assert s32(await read(client, AC_POWER)) == round(truth.battery_w)
    assert u32(await read(client, DISCHARGE_W)) == round(truth.battery_w)
    assert u32(await read(client, CHARGE_W)) == 0
    assert u32(await read(client, SOC)) == round(truth.soc_pct)
    assert u32(await read(client, GRID_DRAW)) == round(max(0.0, truth.grid_w))
    assert u32(await read(client, GRID_RELAY)) == 51  # closed
    # Hold the battery (default mode, no discharge): the inverter stands by, its power is NaN.
    await write(client, DSCH_MAX, 0)
    home.step(60)
    assert home.truth().battery_w == 0
    assert u32(await read(client, AC_POWER)) == NAN_S32
    assert u32(await read(client, DISCHARGE_W)) == 0
    home.set_grid_up(False)
    home.step(1)
    assert u32(await read(client, GRID_RELAY)) == 311  # open


async def test_grid_registers_read_nan_without_an_energy_meter() -> None:
    async with Simulator(sim_config(energy_meter=False)) as sim:
        c = await connected(sim.homes[HOME].sma("sbs").port)
        try:
            assert u32(await read(c, GRID_DRAW)) == NAN_U32
            assert u32(await read(c, GRID_FEED)) == NAN_U32
        finally:
            c.close()


async def test_battery_control_through_the_bms_registers(
    client: AsyncModbusTcpClient, home: SimHome, device: SmaSbsDevice
) -> None:
    await write(client, CHA_MAX, 3000)
    await write(client, OP_MODE, CHARGE)
    assert home.truth().battery_command_w == pytest.approx(-3000)
    home.step(10)
    assert home.truth().battery_w == pytest.approx(-3000, abs=1)  # from the grid, at night
    response = await client.write_registers(DSCH_MAX, [*words(2000), *words(0)], device_id=UNIT)
    assert not response.isError()  # 40799 and 40801 in one FC16
    await write(client, OP_MODE, DISCHARGE)
    assert home.truth().battery_command_w == pytest.approx(2000)
    await write(client, OP_MODE, DEFAULT)
    assert home.truth().battery_command_w is None
    assert u32(await read(client, OP_MODE)) == DEFAULT
    assert device.settings.discharge_max_w == 2000


async def test_refusals_follow_the_sma_rules(
    client: AsyncModbusTcpClient, device: SmaSbsDevice
) -> None:
    before = device.settings
    half = await client.write_register(OP_MODE, 0, device_id=UNIT)
    assert half.isError()
    assert half.exception_code == 2  # FC6 writes half of a U32
    bad = await client.write_registers(OP_MODE, words(1234), device_id=UNIT)
    assert bad.exception_code == 3  # undefined operating mode
    nan = await client.write_registers(CHA_MAX, words(NAN_U32), device_id=UNIT)
    assert nan.exception_code == 3  # NaN is not a value
    high = await client.write_registers(CHA_MAX, words(50_000), device_id=UNIT)
    assert high.exception_code == 3  # above the battery's rating
    ro = await client.write_registers(SOC, words(50), device_id=UNIT)
    assert ro.exception_code == 2  # a reading
    assert device.settings == before
    gap = await client.read_holding_registers(SOC, count=4, device_id=UNIT)
    assert gap.isError()
    assert gap.exception_code == 2  # 30847 is not documented: no reading across it
    assert len(await read(client, 30849, 4)) == 4  # adjacent documented registers read together


async def test_reboot_restores_the_default_mode(
    client: AsyncModbusTcpClient, home: SimHome, device: SmaSbsDevice
) -> None:
    await write(client, OP_MODE, CHARGE)
    device.faults.ignore_writes = True
    await write(client, OP_MODE, DISCHARGE)  # acknowledged, not stored
    assert u32(await read(client, OP_MODE)) == CHARGE
    device.faults.ignore_writes = False
    await device.reboot(wait=True)
    assert home.truth().battery_command_w is None
    fresh = await connected(device.port)
    try:
        assert u32(await read(fresh, OP_MODE)) == DEFAULT
    finally:
        fresh.close()
