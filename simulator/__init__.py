"""Simulated home energy hardware: physics plus SunSpec, Victron GX and MQTT devices and a control API."""

from __future__ import annotations

from simulator.clock import SimClock
from simulator.config import (
    ControlConfig,
    DeviceConfig,
    HomeConfig,
    HuaweiSun2000Config,
    MqttBatteryConfig,
    SimDeviceConfig,
    SimulatorConfig,
    SungrowShConfig,
    VictronGxConfig,
    load_simulator_config,
)
from simulator.devices.huawei_sun2000 import HuaweiSun2000Device
from simulator.devices.mqtt_battery import MqttBatteryDevice
from simulator.devices.register_twin import RegisterTwin
from simulator.devices.sungrow_sh import SungrowShDevice
from simulator.devices.sunspec import SunSpecDevice
from simulator.devices.victron_gx import VictronGxDevice
from simulator.faults import DeviceStats, FaultPlan, FaultPlanError
from simulator.home import SimHome
from simulator.physics import FirmwareSettings, HomePhysics, HomeTruth
from simulator.runtime import Endpoint, Simulator

__all__ = [
    "ControlConfig",
    "DeviceConfig",
    "DeviceStats",
    "Endpoint",
    "FaultPlan",
    "FaultPlanError",
    "FirmwareSettings",
    "HomeConfig",
    "HomePhysics",
    "HomeTruth",
    "HuaweiSun2000Config",
    "HuaweiSun2000Device",
    "MqttBatteryConfig",
    "MqttBatteryDevice",
    "RegisterTwin",
    "SimClock",
    "SimDeviceConfig",
    "SimHome",
    "Simulator",
    "SimulatorConfig",
    "SunSpecDevice",
    "SungrowShConfig",
    "SungrowShDevice",
    "VictronGxConfig",
    "VictronGxDevice",
    "load_simulator_config",
]
