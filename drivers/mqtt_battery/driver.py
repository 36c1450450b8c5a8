"""The generic MQTT battery driver: per-point state/command topics, availability, staleness, echo confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import structlog

from drivers.base import Capability, DeviceInfo, DeviceTelemetry, Setpoints
from drivers.errors import DeviceUnreachable
from drivers.mqtt_battery.options import BOOLEAN_POINTS, MqttBatteryOptions, capabilities_of
from drivers.mqtt_battery.points import (
    Missing,
    PointValue,
    extract,
    from_gateway,
    render_payload,
    same_point_value,
    to_gateway,
)
from drivers.transport import MqttBroker, Subscription, Transports
from drivers.transport.mqtt import EchoedWrite, LatestValues, write_confirmed

if TYPE_CHECKING:
    from drivers.registry import DriverClass

__all__ = ["MqttBatteryDriver"]


class MqttBatteryDriver:
    """A device speaking plain MQTT (JSON or raw payloads), sharing its broker connection."""

    options_model: ClassVar[type[MqttBatteryOptions]] = MqttBatteryOptions

    def __init__(self, name: str, options: MqttBatteryOptions, transports: Transports) -> None:
        self.name = name
        self.options = options
        self.capabilities: frozenset[Capability] = capabilities_of(options.points)
        self.values: LatestValues[str, PointValue] = LatestValues()
        self.available: bool | None = None  # None until the availability topic reports
        self._points = options.points.configured()
        self._transports = transports
        self._broker: MqttBroker | None = None
        self._subs: list[Subscription] = []
        self._log = structlog.get_logger("drivers.mqtt_battery").bind(
            device=name, broker=f"{options.host}:{options.port}"
        )

    # ----------------------------------------------------------------------- lifecycle

    async def connect(self) -> DeviceInfo:
        """Join the broker, subscribe the state (and availability) topics, wait for every point.

        Raises:
            DeviceUnreachable: no broker, the device reports itself offline, or a point was not
                reported within ``connect_timeout_s``.
        """
        broker = self._joined()
        await broker.wait_connected(self.options.connect_timeout_s)
        if not self._subs:
            await self._subscribe(broker)
        await self.values.wait_until(self._all_reported, self.options.connect_timeout_s)
        self._check_available()
        missing = [n for n in self._points if self.values.get(n) is None]
        if missing:
            raise DeviceUnreachable(
                f"{self.name}: no value for {missing} within {self.options.connect_timeout_s} s"
            )
        o = self.options
        return DeviceInfo(
            manufacturer=o.manufacturer,
            model=o.model,
            serial_number=o.serial_number,
            firmware_version="",
            battery_capacity_wh=o.capacity_wh,
            max_charge_w=o.max_charge_w,
            max_discharge_w=o.max_discharge_w,
        )

    async def close(self) -> None:
        """Drop the subscriptions and give back the broker share."""
        broker, self._broker = self._broker, None
        subs, self._subs = self._subs, []
        if broker is not None:
            await self._transports.mqtt.release(broker, subs)

    # ----------------------------------------------------------------------- reading

    async def read(self) -> DeviceTelemetry:
        """The latest reported values; ``load_w`` = solar + battery + grid when a grid point exists.

        Raises:
            DeviceUnreachable: disconnected, offline, or a point older than ``stale_after_s``.
        """
        self._fresh()

        def num(name: str) -> float | None:
            value = self.values.value(name)
            return None if value is None or isinstance(value, bool) else value

        solar, battery, grid = num("solar_w"), num("battery_w"), num("grid_w")
        load = None if grid is None else (solar or 0.0) + (battery or 0.0) + grid
        return DeviceTelemetry(
            taken_at=datetime.now(UTC),
            solar_w=solar,
            battery_w=battery,
            grid_w=grid,
            load_w=load,
            soc_pct=num("soc_pct"),
            capacity_wh=self.options.capacity_wh,
        )

    async def read_back(self) -> Setpoints:
        """The settings as the device reports them (neutral values for settings it lacks).

        Raises:
            DeviceUnreachable: disconnected, offline, or a point older than ``stale_after_s``.
        """
        self._fresh()
        reserve = self.values.value("reserve_pct")
        limit = self.values.value("export_limit_w")
        return Setpoints(
            reserve_pct=round(reserve) if isinstance(reserve, float) else 0,
            grid_charging=self.values.value("grid_charging") is True,
            export_limit_w=round(limit) if isinstance(limit, float) else None,
        )

    # ----------------------------------------------------------------------- writing

    async def apply(self, setpoints: Setpoints) -> None:
        """Publish a command for each configured setting that differs, then wait for its echo.

        Raises:
            NotConfirmed: a state did not show the command within ``confirm_timeout_s``.
            DeviceUnreachable: disconnected, offline or stale.
        """
        self._fresh()
        broker = self._joined()
        wanted: dict[str, PointValue] = {
            "reserve_pct": float(setpoints.reserve_pct),
            "grid_charging": setpoints.grid_charging,
            "export_limit_w": None if setpoints.export_limit_w is None else float(setpoints.export_limit_w),
        }
        writes: dict[str, PointValue] = {}
        commands: list[EchoedWrite[str, PointValue]] = []
        for name, point in self.options.points.writable().items():
            value, current = wanted[name], self.values.get(name)
            if current is not None and same_point_value(value, current.value, tolerance=point.tolerance):
                continue
            writes[name] = value
            device_value = from_gateway(value, scale=point.scale, invert_sign=point.invert_sign)
            commands.append(EchoedWrite(
                name, value, self.options.topic(point.command_topic),
                render_payload(point.payload_template, device_value), qos=point.qos,
            ))  # fmt: skip
        if not commands:
            return
        await write_confirmed(
            broker, self.values, commands, shows=self._echo_shows,
            timeout_s=self.options.confirm_timeout_s, device=self.name,
        )  # fmt: skip
        self._log.info("mqtt_battery.written", writes=writes)

    def _echo_shows(self, name: str, written: PointValue, echoed: PointValue) -> bool:
        tolerance = self.options.points.writable()[name].tolerance
        return same_point_value(written, echoed, tolerance=tolerance)

    # ----------------------------------------------------------------------- internals

    def _joined(self) -> MqttBroker:
        if self._broker is None:
            self._broker = self._transports.mqtt.acquire(
                self.options.host, self.options.port, self.options.login())
        return self._broker

    def _all_reported(self) -> bool:
        if self.available is False:
            return True  # no point waiting: connect() reports the device offline
        return all(self.values.get(n) is not None for n in self._points)

    def _check_available(self) -> None:
        if self.available is False:
            raise DeviceUnreachable(f"{self.name}: device reports itself offline")

    def _fresh(self) -> None:
        broker = self._broker
        if broker is None or not self._subs:
            raise DeviceUnreachable(f"{self.name}: not connected")
        if not broker.connected:
            raise DeviceUnreachable(f"{self.name}: broker {broker.host}:{broker.port} disconnected")
        self._check_available()
        now = asyncio.get_running_loop().time()
        for name in self._points:
            sample = self.values.get(name)
            if sample is None or now - sample.at > self.options.stale_after_s:
                age = "never" if sample is None else f"{now - sample.at:.1f} s ago"
                raise DeviceUnreachable(f"{self.name}: {name} stale (last reported {age})")

    async def _subscribe(self, broker: MqttBroker) -> None:
        by_topic: dict[str, list[str]] = {}
        for name, point in self._points.items():
            by_topic.setdefault(self.options.topic(point.state_topic), []).append(name)
        if self.options.availability_topic is not None:
            topic = self.options.topic(self.options.availability_topic)
            self._subs.append(await broker.subscribe(topic, self._on_availability, qos=self.options.qos))
        for topic, names in by_topic.items():
            handler = self._state_handler(names)
            self._subs.append(await broker.subscribe(topic, handler, qos=self.options.qos))

    def _state_handler(self, names: list[str]) -> Callable[[str, bytes, bool], None]:
        def on_state(topic: str, payload: bytes, retained: bool) -> None:
            del topic, retained
            now = asyncio.get_running_loop().time()
            for name in names:
                point = self._points[name]
                raw = extract(payload, point.value_path)
                value = (
                    raw if isinstance(raw, Missing)
                    else to_gateway(raw, boolean=name in BOOLEAN_POINTS,
                                    scale=point.scale, invert_sign=point.invert_sign)
                )  # fmt: skip
                if not isinstance(value, Missing):
                    self.values.put(name, value, now)

        return on_state

    def _on_availability(self, topic: str, payload: bytes, retained: bool) -> None:
        del topic, retained
        text = payload.decode("utf-8", errors="replace").strip()
        if text == self.options.payload_available:
            self.available = True
        elif text == self.options.payload_not_available:
            self.available = False
            self._log.info("mqtt_battery.offline")
        self.values.touch(asyncio.get_running_loop().time())


if TYPE_CHECKING:  # mypy proves the class fits the registry's protocol; nothing runs
    _fits_registry: DriverClass = MqttBatteryDriver
