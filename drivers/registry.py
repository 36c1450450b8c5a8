"""The driver registry: device type name -> driver class (no entry points, no side effects)."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from drivers.base import Driver
from drivers.mqtt_battery.driver import MqttBatteryDriver
from drivers.profile.driver import ProfileDriver
from drivers.sunspec.driver import SunSpecDriver
from drivers.transport import Transports
from drivers.victron_gx.driver import VictronGxDriver

__all__ = ["DRIVERS", "DriverClass"]


class DriverClass(Protocol):
    """A driver class: validated options in, a ``Driver`` out, sharing the process transports."""

    @property
    def options_model(self) -> type[BaseModel]:
        """The pydantic model (extra="forbid") of the driver's configuration keys."""
        ...

    def __call__(self, name: str, options: Any, transports: Transports, /) -> Driver: ...


DRIVERS: dict[str, DriverClass] = {
    "sunspec": SunSpecDriver,
    "victron_gx": VictronGxDriver,
    "mqtt_battery": MqttBatteryDriver,
    "profile": ProfileDriver,
}
