"""A simulated home at runtime: its physics on the shared clock, plus its protocol devices."""

from __future__ import annotations

from datetime import tzinfo

from simulator.clock import SimClock
from simulator.config import HomeConfig
from simulator.devices.sunspec import SunSpecDevice
from simulator.physics import HomePhysics, HomeTruth


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
        self.devices: dict[str, SunSpecDevice] = {
            d.id: SunSpecDevice(config, d, self.physics) for d in config.devices
        }

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
        """The device with this id (KeyError if the home has none)."""
        return self.devices[device_id]
