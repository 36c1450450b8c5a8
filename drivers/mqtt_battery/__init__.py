"""Generic MQTT devices configured per point: pure point helpers and the driver built on them."""

from __future__ import annotations

from drivers.mqtt_battery.driver import (
    MqttBatteryDriver,
    MqttBatteryOptions,
    MqttPoints,
    ReadPoint,
    WritePoint,
)

__all__ = ["MqttBatteryDriver", "MqttBatteryOptions", "MqttPoints", "ReadPoint", "WritePoint"]
