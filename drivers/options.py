"""Each device type's options model, importable without drivers or transports (config validation)."""

from __future__ import annotations

from pydantic import BaseModel

from drivers.mqtt_battery.options import MqttBatteryOptions
from drivers.profile.options import ProfileOptions
from drivers.sunspec.options import SunSpecOptions
from drivers.victron_gx.options import VictronGxOptions

__all__ = ["DRIVER_OPTIONS"]

#: The same keys as ``drivers.registry.DRIVERS``; each driver's ``options_model`` is its entry.
DRIVER_OPTIONS: dict[str, type[BaseModel]] = {
    "sunspec": SunSpecOptions,
    "victron_gx": VictronGxOptions,
    "mqtt_battery": MqttBatteryOptions,
    "profile": ProfileOptions,
}
