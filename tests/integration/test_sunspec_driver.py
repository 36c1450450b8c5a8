"""SunSpec driver against the simulator's SunSpec device: reads, writes checked on the truth, faults."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from drivers.base import Capability, Setpoints, supported
from drivers.errors import (
    ConfigurationError,
    DeviceRejected,
    DeviceUnreachable,
    NotConfirmed,
)
from drivers.sunspec.driver import SunSpecDriver
from drivers.sunspec.options import SunSpecOptions
from drivers.transport import ModbusPool, Priority, Transports
from simulator import (
    HomeConfig,
    SimDeviceConfig,
    SimHome,
    Simulator,
    SimulatorConfig,
    SunSpecDevice,
)

HOME = "home-1001"
START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)  # a sunny morning: PV, load and battery all move


def free_port() -> int:
    """A loopback port nothing listens on right now (so a device can be restarted on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], deadline_s: float) -> None:
    """Poll ``check`` until it holds; fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await check():
        if loop.time() > end:
            pytest.fail(f"condition not met within {deadline_s} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        start=START,
        tick_s=0,  # physics only moves when a test steps it: truth is stable between reads
        homes=[
            HomeConfig(
                id=HOME,
                devices=[SimDeviceConfig(id="inverter", kind="sunspec", port=free_port())],
            )
        ],
    )
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def home(sim: Simulator) -> SimHome:
    return sim.homes[HOME]


@pytest.fixture
def device(home: SimHome) -> SunSpecDevice:
    return home.device("inverter")


@pytest.fixture
async def transports() -> AsyncIterator[Transports]:
    t = Transports(modbus=ModbusPool(timeout_s=0.5, backoff_max_s=0.3))
    yield t
    await t.close()


def options(sim: Simulator, **overrides: object) -> SunSpecOptions:
    ep = sim.endpoint(f"{HOME}/inverter")
    values: dict[str, object] = {
        "host": ep.host,
        "port": ep.port,
        "unit_id": ep.unit_id,
        "timeout_s": 0.5,
        "confirm_timeout_s": 1.0,
        "storm_alert": {"evtvnd1_bit": 0},  # the simulated inverter's vendor bit for a storm watch
    }
    values.update(overrides)
    return SunSpecOptions.model_validate(values)


@pytest.fixture
async def driver(sim: Simulator, transports: Transports) -> AsyncIterator[SunSpecDriver]:
    d = SunSpecDriver("inverter", options(sim), transports)
    await d.connect()
    yield d
    await d.close()


async def register(device: SunSpecDevice, model_id: int, offset: int) -> int:
    """One register of the device's image, straight from the simulator (not via the driver)."""
    return (await device.read_registers(device.model_address(model_id) + offset, 1))[0]


# Offsets from the model's ID register (devices.md §1.5).
MIN_RSV_PCT, STOR_CTL_MOD, IN_W_RTE, OUT_W_RTE, RVRT_TMS, CHA_GRI_SET = 7, 5, 13, 12, 15, 17
W_MAX_LIM_PCT, W_MAX_LIM_ENA = 5, 9


async def test_connect_discovers_and_identifies(driver: SunSpecDriver, sim: Simulator) -> None:
    assert driver.map is not None
    assert driver.map.base_address == 40000
    assert driver.map.model_ids == (1, 103, 120, 123, 124, 802, 203)
    assert driver.info is not None
    cfg = sim.homes[HOME].config
    dev_cfg = sim.homes[HOME].device(cfg.devices[0].id).config
    assert (driver.info.manufacturer, driver.info.model) == (dev_cfg.manufacturer, dev_cfg.model)
    assert driver.info.serial_number == dev_cfg.serial_number
    assert driver.info.firmware_version == dev_cfg.firmware
    assert driver.info.nameplate_power_w == cfg.inverter_max_w
    assert driver.info.battery_capacity_wh == cfg.battery_capacity_wh
    assert driver.capabilities == frozenset(Capability)


async def test_read_matches_the_truth(driver: SunSpecDriver, home: SimHome) -> None:
    home.step(60)
    truth = home.truth()
    t = await driver.read()
    assert t.solar_w == pytest.approx(truth.solar_w, abs=1)
    assert t.battery_w == pytest.approx(truth.battery_w, abs=1)
    assert t.grid_w == pytest.approx(truth.grid_w, abs=1)
    assert t.load_w == pytest.approx(truth.load_w, abs=3)
    assert t.soc_pct == pytest.approx(truth.soc_pct, abs=1)
    assert t.capacity_wh == truth.capacity_wh
    assert (t.grid_up, t.storm_alert) == (True, False)
    assert t.counters.grid_import_wh == pytest.approx(truth.grid_import_wh, abs=1)
    assert t.counters.grid_export_wh == pytest.approx(truth.grid_export_wh, abs=1)


async def test_grid_outage_and_storm_alert_are_reported(driver: SunSpecDriver, home: SimHome) -> None:
    home.set_grid_up(False)
    home.set_storm_alert(True)
    home.step(1)
    t = await driver.read()
    assert (t.grid_up, t.storm_alert) == (False, True)
    home.set_grid_up(True)
    home.set_storm_alert(False)
    home.step(1)
    t = await driver.read()
    assert (t.grid_up, t.storm_alert) == (True, False)


async def test_without_the_storm_option_a_vendor_bit_means_nothing(
    sim: Simulator, home: SimHome, transports: Transports
) -> None:
    home.set_storm_alert(True)  # the simulator sets EvtVnd1 bit 0
    home.step(1)
    d = SunSpecDriver("inverter", options(sim, storm_alert=None), transports)
    try:
        await d.connect()
        t = await d.read()
    finally:
        await d.close()
    assert t.storm_alert is None
    assert Capability.STORM_WATCH not in d.capabilities
    assert d.capabilities == frozenset(Capability) - {Capability.STORM_WATCH}


async def test_reserve_and_grid_charging_land_on_the_device(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    await driver.apply(Setpoints(reserve_pct=55, grid_charging=True))
    truth = home.truth()
    assert truth.reserve_pct == 55
    assert truth.grid_charging is True
    assert await register(device, 124, MIN_RSV_PCT) == 55  # MinRsvPct_SF = 0
    assert await register(device, 124, CHA_GRI_SET) == 1
    await driver.apply(Setpoints(reserve_pct=10, grid_charging=False))
    assert (home.truth().reserve_pct, home.truth().grid_charging) == (10, False)


async def test_export_limit_lands_on_the_device(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    await driver.apply(Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=0))
    assert home.truth().export_limit_w == 0
    assert await register(device, 123, W_MAX_LIM_ENA) == 1
    await driver.apply(Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=4000))
    assert home.truth().export_limit_w == pytest.approx(4000)
    await driver.apply(Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=None))
    assert home.truth().export_limit_w is None
    assert await register(device, 123, W_MAX_LIM_ENA) == 0


async def test_battery_command_lands_on_the_device(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    sp = Setpoints(reserve_pct=20, grid_charging=True, battery_w=-2500, revert_s=600)
    await driver.apply(sp)
    assert home.truth().battery_command_w == pytest.approx(-2500)
    assert await register(device, 124, STOR_CTL_MOD) == 1  # CHARGE
    assert await register(device, 124, IN_W_RTE) == 50  # 2500 W of WChaMax 5000 W
    assert await register(device, 124, RVRT_TMS) == 600
    back = await driver.read_back()
    assert supported(back, driver.capabilities) == supported(sp, driver.capabilities)
    await driver.apply(Setpoints(reserve_pct=20, grid_charging=True, battery_w=1000))
    assert home.truth().battery_command_w == pytest.approx(1000)
    assert await register(device, 124, OUT_W_RTE) == 20
    await driver.apply(Setpoints(reserve_pct=20, grid_charging=True))
    assert home.truth().battery_command_w is None
    assert await register(device, 124, STOR_CTL_MOD) == 0


async def test_ignored_writes_are_not_confirmed(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    held = Setpoints(reserve_pct=30, grid_charging=False)
    await driver.apply(held)
    device.faults.ignore_writes = True
    # Nothing differs: nothing is written, so the ignoring device still confirms.
    await driver.apply(held)
    with pytest.raises(NotConfirmed) as info:
        await driver.apply(Setpoints(reserve_pct=70, grid_charging=False))
    assert info.value.expected["MinRsvPct"] == 70
    assert info.value.actual["MinRsvPct"] == 30
    assert home.truth().reserve_pct == 30


async def test_modbus_exception_reply_is_rejected_with_its_code(
    driver: SunSpecDriver, sim: Simulator, transports: Transports, device: SunSpecDevice
) -> None:
    ep = sim.endpoint(f"{HOME}/inverter")
    endpoint = transports.modbus.acquire(ep.host, ep.port)  # the driver's shared connection
    try:
        with pytest.raises(DeviceRejected) as illegal:
            await endpoint.write(ep.unit_id, device.model_address(124) + MIN_RSV_PCT, [101])
        assert illegal.value.code == 3
        with pytest.raises(DeviceRejected) as outside:
            await endpoint.read_holding(ep.unit_id, 1000, 2)
        assert outside.value.code == 2
    finally:
        await transports.modbus.release(endpoint)
    assert (await driver.read()).soc_pct is not None  # the shared connection is still fine


async def test_no_map_at_the_configured_base_is_a_configuration_error(
    sim: Simulator, transports: Transports
) -> None:
    d = SunSpecDriver("inverter", options(sim, base_address=0), transports)
    try:
        with pytest.raises(ConfigurationError):
            await d.connect()
    finally:
        await d.close()


async def test_down_device_is_unreachable_within_the_timeout(transports: Transports) -> None:
    d = SunSpecDriver("ghost", SunSpecOptions(host="127.0.0.1", port=free_port(), timeout_s=0.3), transports)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(DeviceUnreachable):
            await d.connect()
        with pytest.raises(DeviceUnreachable):
            await d.read()
    finally:
        await d.close()
    assert loop.time() - started < 2 * 0.3 + 0.5


async def test_restarted_device_is_reconnected(
    driver: SunSpecDriver, device: SunSpecDevice, transports: Transports
) -> None:
    port = device.port
    await driver.read()
    await device.stop()
    with pytest.raises(DeviceUnreachable):
        await driver.read()
    await device.start()
    assert device.port == port

    async def reads() -> bool:
        try:
            await driver.read()
        except DeviceUnreachable:
            return False
        return True

    # Back within the backoff cap plus one connect attempt.
    await until(reads, deadline_s=transports.modbus.backoff_max_s + 3 * driver.options.timeout_s)


async def test_a_command_is_not_stuck_behind_queued_polls(
    driver: SunSpecDriver, sim: Simulator, transports: Transports, device: SunSpecDevice
) -> None:
    ep = sim.endpoint(f"{HOME}/inverter")
    endpoint = transports.modbus.acquire(ep.host, ep.port)
    device.faults.delay_s = 0.02  # every answer takes a moment, so polls pile up
    done: list[str] = []
    polls_n = 30

    async def poll(i: int) -> None:
        await endpoint.read_holding(
            ep.unit_id, device.model_address(103), 52, priority=Priority.POLL, timeout_s=5
        )
        done.append(f"poll{i}")

    async def command() -> None:
        await driver.apply(Setpoints(reserve_pct=45, grid_charging=True))
        done.append("command")

    try:
        polls = [asyncio.create_task(poll(i)) for i in range(polls_n)]

        async def piled_up() -> bool:
            return endpoint.queued >= polls_n // 2

        await until(piled_up, deadline_s=2)
        await asyncio.gather(command(), *polls)
    finally:
        device.faults.delay_s = 0
        await transports.modbus.release(endpoint)
    # The command's transactions (2 writes, 1 confirm read) each go ahead of every
    # waiting poll, so at most one poll slips in between two of them.
    assert done.index("command") <= 8
    assert done[-1] != "command"
    assert home_reserve(sim) == 45


def home_reserve(sim: Simulator) -> float:
    return sim.homes[HOME].truth().reserve_pct


# --- transactions per command (counted by the simulated device, not by the driver) -------------


async def transactions(device: SunSpecDevice, action: Awaitable[object]) -> int:
    """Modbus requests the device received while ``action`` ran."""
    before = device.stats.requests
    await action
    return device.stats.requests - before


async def test_a_command_costs_its_writes_and_one_read_back(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    await driver.read()  # the gateway commands a device it polls
    assert await transactions(device, driver.apply(Setpoints(reserve_pct=45, grid_charging=False))) == 2
    assert home.truth().reserve_pct == 45
    # Only the point that differs is written; the read-back refreshed what the driver knows.
    assert await transactions(device, driver.apply(Setpoints(reserve_pct=45, grid_charging=True))) == 2
    assert home.truth().grid_charging is True
    charge = Setpoints(reserve_pct=45, grid_charging=True, battery_w=-2500, revert_s=600)
    assert await transactions(device, driver.apply(charge)) == 4  # rate, timeout, mode, read-back
    assert home.truth().battery_command_w == pytest.approx(-2500)
    # Held already: only the revert timeout is re-sent (it restarts the device's timer).
    assert await transactions(device, driver.apply(charge)) == 2
    assert await transactions(device, driver.apply(Setpoints(reserve_pct=45, grid_charging=True,
                                                             battery_w=-2500, revert_s=600))) == 2


async def test_a_point_skipped_on_a_stale_reading_is_written_after_the_read_back(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    await driver.apply(Setpoints(reserve_pct=45, grid_charging=False))
    # A reboot the driver never saw (no poll since): the device is back on its factory 20 %.
    await device.reboot(wait=True)
    assert home.truth().reserve_pct == 20
    # The driver believes the device holds 45, skips the write, and the read-back says otherwise.
    cost = await transactions(device, driver.apply(Setpoints(reserve_pct=45, grid_charging=False)))
    assert home.truth().reserve_pct == 45
    assert cost == 3  # read-back, write, read-back


async def test_after_an_unconfirmed_command_the_next_reads_before_writing(
    driver: SunSpecDriver, home: SimHome, device: SunSpecDevice
) -> None:
    await driver.read()
    device.faults.ignore_writes = True
    with pytest.raises(NotConfirmed):
        await driver.apply(Setpoints(reserve_pct=70, grid_charging=False))
    device.faults.ignore_writes = False
    cost = await transactions(device, driver.apply(Setpoints(reserve_pct=70, grid_charging=False)))
    assert home.truth().reserve_pct == 70
    assert cost == 3  # the state was unknown: read, write, read-back
