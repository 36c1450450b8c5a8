"""A simulated home at runtime: its physics on the shared clock, plus its protocol devices."""

from __future__ import annotations

from datetime import tzinfo
from typing import TypeVar

from simulator.alerts import SimAlert
from simulator.clock import SimClock
from simulator.config import (
    DeviceConfig,
    HomeConfig,
    HuaweiSun2000Config,
    MqttBatteryConfig,
    OcppChargerConfig,
    SungrowShConfig,
    VictronGxConfig,
)
from simulator.devices.huawei_sun2000 import HuaweiSun2000Device
from simulator.devices.mqtt_battery import MqttBatteryDevice
from simulator.devices.ocpp_charger import OcppChargerDevice
from simulator.devices.register_twin import RegisterTwin
from simulator.devices.sungrow_sh import SungrowShDevice
from simulator.devices.sunspec import SunSpecDevice
from simulator.devices.victron_gx import VictronGxDevice
from simulator.physics import HomePhysics, HomeTruth

#: Any simulated device (each has id, kind, host, port, unit_id and async start()/stop()).
SimDevice = (SunSpecDevice | VictronGxDevice | MqttBatteryDevice | OcppChargerDevice
             | SungrowShDevice | HuaweiSun2000Device)


def make_device(home: HomeConfig, config: DeviceConfig, physics: HomePhysics) -> SimDevice:
    """The device object for one device config, sharing the home's physics."""
    if isinstance(config, VictronGxConfig):
        return VictronGxDevice(home, config, physics)
    if isinstance(config, MqttBatteryConfig):
        return MqttBatteryDevice(home, config, physics)
    if isinstance(config, OcppChargerConfig):
        return OcppChargerDevice(home, config, physics)
    if isinstance(config, SungrowShConfig):
        return SungrowShDevice(home, config, physics)
    if isinstance(config, HuaweiSun2000Config):
        return HuaweiSun2000Device(home, config, physics)
    return SunSpecDevice(home, config, physics)


class SimHome:
    """One home: physics stepped to the simulator's clock and the devices that expose it.

    Args:
        config: The home's configuration.
        clock: The simulator's (shared) clock; the physics starts at its current time.
        tz: The home's time zone; None = a longitude-based offset until `set_time_zone`.
    """

    def __init__(self, config: HomeConfig, clock: SimClock, tz: tzinfo | None = None) -> None:
        self.id = config.id
        self.config = config
        self.clock = clock
        self.physics = HomePhysics(config, clock.now(), tz)
        self.devices: dict[str, SimDevice] = {
            d.id: make_device(config, d, self.physics) for d in config.devices
        }
        self.alerts: list[SimAlert] = []  # weather alerts raised for the home (simulator.alerts)

    @property
    def position(self) -> tuple[float, float]:
        """Where the home is: (latitude, longitude) in degrees."""
        return (self.config.latitude, self.config.longitude)

    def truth(self) -> HomeTruth:
        """The physical truth now (as of the last physics step)."""
        return self.physics.truth()

    def set_time_zone(self, tz: tzinfo) -> None:
        """Use this time zone for the house-load profile."""
        self.physics.set_time_zone(tz)

    def set_cloud_factor(self, f: float) -> None:
        """Cloudiness 0 (clear) .. 1 (overcast)."""
        self.physics.set_cloud_factor(f)

    def set_load_scale(self, s: float) -> None:
        """Multiply the house load by s (>= 0)."""
        self.physics.set_load_scale(s)

    def set_grid_up(self, up: bool) -> None:
        """Restore (True) or cut (False) the grid connection."""
        self.physics.set_grid_up(up)

    def set_storm_alert(self, active: bool) -> None:
        """Raise or clear a storm watch alert."""
        self.physics.set_storm_alert(active)

    def step(self, dt_s: float) -> None:
        """Advance the physics by dt_s simulated seconds and move the clock along with it."""
        self.physics.step(dt_s)
        self.clock.advance(dt_s)

    def sync_to_clock(self) -> None:
        """Step the physics up to the clock's current time (the background ticker's job)."""
        lag_s = (self.clock.now() - self.physics.at).total_seconds()
        if lag_s > 0:
            self.physics.step(lag_s)

    def device(self, device_id: str) -> SunSpecDevice:
        """The SunSpec device with this id (KeyError if none; TypeError if another kind)."""
        return _of_kind(self.devices[device_id], SunSpecDevice)

    def victron_gx(self, device_id: str) -> VictronGxDevice:
        """The Victron GX device with this id (KeyError if none; TypeError if another kind)."""
        return _of_kind(self.devices[device_id], VictronGxDevice)

    def register_twin(self, device_id: str) -> RegisterTwin:
        """The brand twin (Sungrow, Huawei) with this id (KeyError if none; TypeError if another kind)."""
        device = self.devices[device_id]
        if not isinstance(device, RegisterTwin):
            raise TypeError(f"device {device.id!r} is a {device.kind} device, not a brand twin")
        return device

    def mqtt_battery(self, device_id: str) -> MqttBatteryDevice:
        """The MQTT battery with this id (KeyError if none; TypeError if another kind)."""
        return _of_kind(self.devices[device_id], MqttBatteryDevice)


_D = TypeVar("_D", SunSpecDevice, VictronGxDevice, MqttBatteryDevice)


def _of_kind(device: SimDevice, cls: type[_D]) -> _D:
    if not isinstance(device, cls):
        raise TypeError(f"device {device.id!r} is a {device.kind} device, not {cls.kind}")
    return device
