"""Simulated home energy hardware: physics plus SunSpec Modbus devices and a control API."""

from __future__ import annotations

from simulator.clock import SimClock
from simulator.config import (
    ControlConfig,
    HomeConfig,
    SimDeviceConfig,
    SimulatorConfig,
    load_simulator_config,
)
from simulator.devices.sunspec import SunSpecDevice
from simulator.faults import FaultPlan
from simulator.home import SimHome
from simulator.physics import FirmwareSettings, HomePhysics, HomeTruth
from simulator.runtime import Endpoint, Simulator

__all__ = [
    "ControlConfig",
    "Endpoint",
    "FaultPlan",
    "FirmwareSettings",
    "HomeConfig",
    "HomePhysics",
    "HomeTruth",
    "SimClock",
    "SimDeviceConfig",
    "SimHome",
    "Simulator",
    "SimulatorConfig",
    "SunSpecDevice",
    "load_simulator_config",
]
