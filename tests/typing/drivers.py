"""Compile-time proof (mypy) that every registered driver class satisfies the Driver protocol."""

from __future__ import annotations

from drivers.base import Driver
from drivers.mqtt_battery.driver import MqttBatteryDriver
from drivers.sunspec.driver import SunSpecDriver
from drivers.victron_gx.driver import VictronGxDriver


def _sunspec(driver: SunSpecDriver) -> Driver:
    return driver


def _victron(driver: VictronGxDriver) -> Driver:
    return driver


def _mqtt_battery(driver: MqttBatteryDriver) -> Driver:
    return driver
