"""The profile driver against the brand twins over real sockets: the quirks it must live with."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient

from drivers.base import Setpoints
from drivers.errors import DeviceUnreachable
from drivers.profile.driver import ProfileDriver
from drivers.profile.options import ProfileOptions
from drivers.transport import ModbusPool, MqttPool, Transports
from simulator import HomeConfig, HuaweiSun2000Config, Simulator, SimulatorConfig, SungrowShConfig
from simulator.config import DeviceConfig
from tests.helpers import eventually


@contextlib.asynccontextmanager
async def twin(device: DeviceConfig) -> AsyncIterator[Simulator]:
    config = SimulatorConfig(start=datetime(2026, 6, 21, 12, tzinfo=UTC), tick_s=0.02, clock_speed=1,
                             homes=[HomeConfig(id="h", devices=[device])])  # fmt: skip
    async with Simulator(config) as sim:
        yield sim


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[Transports]:
    t = Transports(modbus=ModbusPool(timeout_s=0.5, backoff_max_s=0.2), mqtt=MqttPool())
    yield t
    await t.close()


def driver(sim: Simulator, profile: str, transports: Transports, **extra: Any) -> ProfileDriver:
    ep = sim.endpoint("h/d")
    options = ProfileOptions.model_validate(
        {"profile": profile, "host": ep.host, "port": ep.port, "timeout_s": 0.5, **extra})
    return ProfileDriver("d", options, transports)


HUAWEI = HuaweiSun2000Config(id="d", kind="huawei_sun2000", settle_s=0.3, answer_delay_s=0.002)


async def test_huawei_ignores_a_client_that_does_not_wait_after_connecting(transports: Transports) -> None:
    async with twin(HUAWEI) as sim:
        dev = sim.homes["h"].register_twin("d")
        impatient = driver(sim, "huawei_sun2000", transports, settle_s=0)
        with pytest.raises(DeviceUnreachable):
            await impatient.connect()
        await impatient.close()
        assert dev.ignored >= 1  # the twin read the request and never answered it
        patient = driver(sim, "huawei_sun2000", transports, settle_s=0.3)
        try:
            info = await patient.connect()
        finally:
            await patient.close()
    assert info.model == "SUN2000-10KTL-M1"


async def test_huawei_serves_one_client_and_the_driver_keeps_its_connection(transports: Transports) -> None:
    async with twin(HUAWEI) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, "huawei_sun2000", transports, settle_s=0.3)
        try:
            await d.connect()
            other = AsyncModbusTcpClient("127.0.0.1", port=dev.port, timeout=0.5, retries=0,
                                         reconnect_delay=0)  # fmt: skip
            await other.connect()
            await eventually(lambda: dev.stats.refused >= 1, timeout=2)
            other.close()
            telemetry = await d.read()  # the gateway's connection was never disturbed
        finally:
            await d.close()
    assert telemetry.soc_pct is not None
    assert dev.stats.accepted == 1


@pytest.mark.parametrize(("device", "profile"), [
    (SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0), "sungrow_sh_rt"),
    (HuaweiSun2000Config(id="d", kind="huawei_sun2000", settle_s=0.02, answer_delay_s=0.002),
     "huawei_sun2000"),
])  # fmt: skip
async def test_a_reserve_command_is_two_transactions_on_the_device(
    device: DeviceConfig, profile: str, transports: Transports
) -> None:
    async with twin(device) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, profile, transports, settle_s=0.02)
        try:
            await d.connect()
            held = (await d.read()).held
            assert held is not None
            before = dev.stats.requests
            await d.apply(Setpoints(reserve_pct=47, grid_charging=held.grid_charging,
                                    export_limit_w=held.export_limit_w))  # fmt: skip
            used = dev.stats.requests - before
        finally:
            await d.close()
        assert sim.homes["h"].truth().reserve_pct == 47
    assert used == 2  # the write and one read-back, counted by the device


async def test_sungrow_forced_mode_is_released_by_the_driver_after_revert_s(transports: Transports) -> None:
    async with twin(SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0)) as sim:
        d = driver(sim, "sungrow_sh_rt", transports)
        try:
            await d.connect()
            await d.apply(Setpoints(reserve_pct=20, grid_charging=False, battery_w=-1500, revert_s=1))
            assert sim.homes["h"].truth().battery_command_w == -1500
            await eventually(lambda: sim.homes["h"].truth().battery_command_w is None, timeout=5)
            await eventually(lambda: not d.timer_running, timeout=2)  # it ends after the answer
        finally:
            await d.close()


async def test_after_a_reboot_the_driver_reads_the_factory_settings(transports: Transports) -> None:
    async with twin(SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0)) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, "sungrow_sh_rt", transports)
        try:
            await d.connect()
            await d.apply(Setpoints(reserve_pct=66, grid_charging=False))
            await dev.apply_faults(reboot_s=0.1)
            await dev.reboot(wait=True)

            async def reserve() -> int | None:
                try:
                    return (await d.read_back()).reserve_pct
                except DeviceUnreachable:
                    return None

            assert await eventually(reserve, lambda r: r is not None, timeout=5) == 20
        finally:
            await d.close()


async def test_a_write_the_device_ignores_is_not_confirmed(transports: Transports) -> None:
    from drivers.errors import NotConfirmed

    async with twin(SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0)) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, "sungrow_sh_rt", transports, confirm_timeout_s=0.3)
        try:
            await d.connect()
            await dev.apply_faults(ignore_writes=True)
            with pytest.raises(NotConfirmed):
                await d.apply(Setpoints(reserve_pct=77, grid_charging=False))
        finally:
            await d.close()
        assert sim.homes["h"].truth().reserve_pct == 20


async def test_a_watchdog_command_is_refreshed_until_its_revert_time(
    transports: Transports, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A family whose device drops a battery command unless re-sent (SMA-style): the Sungrow
    # map with a 0.2 s watchdog declared; the driver must re-send the command's registers.
    from drivers.profile.catalog import PROFILES

    base = PROFILES["sungrow_sh_rt"]
    assert base.controls.battery_power is not None
    battery = base.controls.battery_power.model_copy(update={"watchdog_s": 0.2})
    watched = base.model_copy(update={
        "family": "watchdog_test", "controls": base.controls.model_copy(update={"battery_power": battery}),
    })  # fmt: skip
    monkeypatch.setitem(PROFILES, "watchdog_test", watched)
    async with twin(SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0)) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, "watchdog_test", transports)
        try:
            await d.connect()
            await d.apply(Setpoints(reserve_pct=20, grid_charging=False, battery_w=-1000, revert_s=1))
            after_command = dev.stats.requests
            await eventually(lambda: dev.stats.requests >= after_command + 4, timeout=2)  # refreshes
            assert d.timer_running
            await eventually(lambda: not d.timer_running, timeout=3)  # revert_s over: no more
            assert sim.homes["h"].truth().battery_command_w == -1000  # (this twin has no watchdog)
        finally:
            await d.close()


async def test_a_reading_outside_its_documented_range_is_logged_once_and_unavailable(
    transports: Transports, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The twin's SoC (60 %) against a family documenting 0..10 %: a device answering nonsense.
    from structlog.testing import capture_logs

    from drivers.profile.catalog import PROFILES

    base = PROFILES["sungrow_sh_rt"]
    points = dict(base.points)
    points["battery_level"] = points["battery_level"].model_copy(update={"range": (0.0, 10.0)})
    monkeypatch.setitem(PROFILES, "narrow_test", base.model_copy(
        update={"family": "narrow_test", "points": points}))
    async with twin(SungrowShConfig(id="d", kind="sungrow_sh", answer_delay_s=0)) as sim:
        d = driver(sim, "narrow_test", transports)
        try:
            with capture_logs() as logs:
                await d.connect()
                readings = [await d.read() for _ in range(3)]
        finally:
            await d.close()
    assert all(r.soc_pct is None for r in readings)  # never passed on as telemetry
    events = [e for e in logs if e["event"] == "profile.out_of_range"]
    assert len(events) == 1  # logged when it went out of range, not on every poll
    assert events[0]["point"] == "battery_level"
    assert events[0]["range"] == [0.0, 10.0]


async def test_the_control_api_plays_faults_and_reboots_on_a_brand_twin() -> None:
    import aiohttp

    async with twin(HUAWEI) as sim, aiohttp.ClientSession(base_url=sim.control_url) as http:
        async with http.post("/homes/h/devices/d/faults", json={"delay_s": 0.01}) as resp:
            plan = await resp.json()
        assert plan["single_client"] is True  # the Huawei twin's own default
        assert plan["delay_s"] == 0.01
        async with http.post("/homes/h/devices/d/reboot", json={"wait": True}) as resp:
            assert (await resp.json()) == {"reboots": 1, "listening": True}
        async with http.get("/homes/h/devices/d/stats") as resp:
            assert (await resp.json())["reboots"] == 1


async def test_a_re_sent_battery_command_rewrites_its_period_to_keep_it_alive(
    transports: Transports,
) -> None:
    device = HuaweiSun2000Config(id="d", kind="huawei_sun2000", settle_s=0.02, answer_delay_s=0.002)
    async with twin(device) as sim:
        dev = sim.homes["h"].register_twin("d")
        d = driver(sim, "huawei_sun2000", transports, settle_s=0.02)
        command = Setpoints(reserve_pct=20, grid_charging=True, battery_w=-1000, revert_s=300)
        try:
            await d.connect()
            await d.apply(command)
            before = dev.stats.requests
            await d.apply(command)  # the gateway's periodic re-send
            used = dev.stats.requests - before
        finally:
            await d.close()
        assert sim.homes["h"].truth().battery_command_w == -1000
    assert used == 2  # the period (restarting the inverter's timer) and its read-back
