"""Every registered driver against its simulated twin: the driver contract end to end, failures by type."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.base import (
    SETPOINT_CAPABILITIES,
    WATT_TOLERANCE_W,
    Capability,
    DeviceInfo,
    DeviceTelemetry,
    Driver,
    Setpoints,
    holds,
)
from drivers.errors import DeviceUnreachable
from drivers.profile.catalog import PROFILES
from drivers.registry import DRIVERS
from drivers.transport import ModbusPool, MqttPool, Transports
from simulator import (
    DeviceConfig,
    Endpoint,
    HomeConfig,
    HuaweiSun2000Config,
    MqttBatteryConfig,
    SimDeviceConfig,
    Simulator,
    SimulatorConfig,
    SungrowShConfig,
    VictronGxConfig,
)
from simulator.physics import HomeTruth
from tests.integration.brokers import mqtt_broker

HOME = "home-1"


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
            "grid_charging": {"state_topic": state, "value_path": "grid_charging",
                              "command_topic": "{base}/set/grid_charging"},
            "export_limit_w": {"state_topic": state, "value_path": "export_limit",
                               "command_topic": "{base}/set/export_limit"},
        },
    }  # fmt: skip


def _profile_options(profile: str, **extra: Any) -> Callable[[Endpoint], dict[str, Any]]:
    return lambda ep: {"profile": profile, "host": ep.host, "port": ep.port, "unit_id": ep.unit_id,
                       **extra}


#: The twin of every driver, keyed by case: the driver's type, and for the profile driver
#: ``profile:<family>`` (one case per bundled profile).
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
    "profile:sungrow_sh_rt": Twin(
        device=lambda _: SungrowShConfig(id="device", kind="sungrow_sh", answer_delay_s=0),
        options=_profile_options("sungrow_sh_rt"),
    ),
    "profile:huawei_sun2000": Twin(
        device=lambda _: HuaweiSun2000Config(
            id="device", kind="huawei_sun2000", settle_s=0.05, answer_delay_s=0.002
        ),
        options=_profile_options("huawei_sun2000", settle_s=0.05),
    ),
}


def driver_type(case: str) -> str:
    """The registry type of a twin case (``profile:<family>`` -> ``profile``)."""
    return case.split(":", 1)[0]


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


@contextlib.asynccontextmanager
async def twin_of(case: str, transports: Transports) -> AsyncIterator[tuple[Simulator, Driver]]:
    """The simulated twin of ``case`` (physics frozen) and a driver pointed at it, closed after."""
    twin = TWINS[case]
    kind = driver_type(case)
    async with contextlib.AsyncExitStack() as stack:
        broker_port = (await stack.enter_async_context(mqtt_broker())).port if twin.needs_broker else 0
        config = SimulatorConfig(
            start=datetime(2026, 6, 21, 12, 0, tzinfo=UTC),
            tick_s=0,
            homes=[HomeConfig(id=HOME, devices=[twin.device(broker_port)])],
        )
        sim = await stack.enter_async_context(Simulator(config))
        cls = DRIVERS[kind]
        options = cls.options_model.model_validate(twin.options(sim.endpoint(f"{HOME}/device")))
        driver = cls(kind, options, transports)
        assert isinstance(driver, Driver)
        try:
            yield sim, driver
        finally:
            await driver.close()


def different_setpoints(held: Setpoints, capabilities: frozenset[Capability]) -> Setpoints:
    """Setpoints that differ from ``held`` in everything a device with ``capabilities`` honours
    (and equal it elsewhere), so that applying them must change the device."""
    wanted = held
    if Capability.BACKUP_RESERVE in capabilities:
        wanted = replace(wanted, reserve_pct=55 if held.reserve_pct != 55 else 35)
    if Capability.GRID_CHARGING in capabilities:
        wanted = replace(wanted, grid_charging=not held.grid_charging)
    if Capability.EXPORT_LIMIT in capabilities:
        wanted = replace(wanted, export_limit_w=1000 if held.export_limit_w is None else None)
    if Capability.BATTERY_POWER in capabilities:
        command = -1000 if held.battery_w is None else None  # charge at 1 kW, or back to automatic
        wanted = replace(wanted, battery_w=command, revert_s=0 if command is None else 300)
    return wanted


def _near_w(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= WATT_TOLERANCE_W  # devices hold powers at their own resolution


def truth_misses(truth: HomeTruth, wanted: Setpoints, capabilities: frozenset[Capability]) -> set[str]:
    """The setpoints within ``capabilities`` that the twin's firmware does not hold as ``wanted``."""
    held = {
        Capability.BACKUP_RESERVE: round(truth.reserve_pct) == wanted.reserve_pct,
        Capability.GRID_CHARGING: truth.grid_charging is wanted.grid_charging,
        Capability.EXPORT_LIMIT: _near_w(truth.export_limit_w, wanted.export_limit_w),
        Capability.BATTERY_POWER: _near_w(truth.battery_command_w, wanted.battery_w),
    }
    return {c.value for c, ok in held.items() if c in capabilities and not ok}


def test_every_driver_and_profile_has_a_twin() -> None:
    assert {driver_type(case) for case in TWINS} == set(DRIVERS)
    assert {case.split(":", 1)[1] for case in TWINS if driver_type(case) == "profile"} == set(PROFILES)


@pytest.mark.parametrize("kind", sorted(TWINS))
async def test_every_driver_has_a_simulated_twin(kind: str, transports: Transports) -> None:
    # The contract the gateway relies on, end to end: connect -> read -> apply -> read_back ->
    # holds, with setpoints derived from what the driver says it honours; the twin's truth (its
    # firmware, not the driver's echo) must move to them.
    async with twin_of(kind, transports) as (sim, driver):
        await driver.connect()
        await driver.read()
        caps = driver.capabilities
        wanted = different_setpoints(await driver.read_back(), caps)
        missed_before = truth_misses(sim.homes[HOME].truth(), wanted, caps)
        await driver.apply(wanted)
        back = await driver.read_back()
        missed_after = truth_misses(sim.homes[HOME].truth(), wanted, caps)
    assert missed_before == {c.value for c in caps & SETPOINT_CAPABILITIES}  # apply had to change each
    assert holds(back, wanted, caps), (back, wanted)
    assert missed_after == set()


@pytest.mark.parametrize("kind", sorted(TWINS))
async def test_driver_reads_its_twin(kind: str, transports: Transports) -> None:
    async with twin_of(kind, transports) as (_, driver):
        info = await driver.connect()
        telemetry = await driver.read()
    assert isinstance(info, DeviceInfo)
    assert isinstance(telemetry, DeviceTelemetry)
    assert driver.capabilities
    assert telemetry.taken_at.tzinfo is not None
    measured = {
        Capability.SOLAR: telemetry.solar_w,
        Capability.BATTERY: telemetry.soc_pct,
        Capability.GRID_METER: telemetry.grid_w,
        Capability.GRID_STATUS: telemetry.grid_up,
        Capability.STORM_WATCH: telemetry.storm_alert,
    }
    for capability, value in measured.items():
        if capability in driver.capabilities:
            assert value is not None, capability


@pytest.mark.parametrize("kind", sorted(TWINS))
async def test_driver_without_its_device_is_unreachable(kind: str, transports: Transports) -> None:
    cls = DRIVERS[driver_type(kind)]
    ep = Endpoint(host="127.0.0.1", port=free_port(), unit_id=1, kind=kind)
    driver = cls(kind, cls.options_model.model_validate(TWINS[kind].options(ep)), transports)
    try:
        with pytest.raises(DeviceUnreachable):
            await driver.connect()
    finally:
        await driver.close()
