"""The simulated home (PV, load, battery, grid) and its hybrid inverter's firmware, sans-IO."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Protocol

from simulator.config import HomeConfig

#: Longest simulated interval integrated in one go; longer steps are subdivided so that a clock
#: running at 3600x (360 s per 0.1 s tick) stays as stable as real time.
SUBSTEP_MAX_S = 5.0

#: Energy counters start here rather than at 0, because SunSpec reads an accumulator of 0 as
#: "not implemented".
COUNTER_START_WH = 1000.0

_NOISE_BUCKET_S = 300  # house-load noise changes smoothly over 5-minute knots
_EPS = 1e-9


def solar_elevation_deg(latitude: float, longitude: float, when: datetime) -> float:
    """Sun elevation above the horizon in degrees (NOAA approximation, good to ~0.5 degree).

    Args:
        latitude: Degrees north.
        longitude: Degrees east.
        when: Timezone-aware instant.
    """
    utc = when.astimezone(UTC)
    hour = utc.hour + utc.minute / 60 + (utc.second + utc.microsecond / 1e6) / 3600
    gamma = 2 * math.pi / 365 * (utc.timetuple().tm_yday - 1 + (hour - 12) / 24)
    eqtime_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    true_solar_min = hour * 60 + eqtime_min + 4 * longitude
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(
        hour_angle
    )
    return 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def clear_sky_fraction(latitude: float, longitude: float, when: datetime) -> float:
    """Clear-sky PV output as a fraction (0..1) of peak power: 0 at night, highest near solar noon.

    Uses the Haurwitz global-horizontal irradiance model, normalised to 1000 W/m2.
    """
    sin_elev = math.sin(math.radians(solar_elevation_deg(latitude, longitude, when)))
    if sin_elev <= 0:
        return 0.0
    ghi = 1098.0 * sin_elev * math.exp(-0.057 / sin_elev)
    return min(1.0, ghi / 1000.0)


def _gauss(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _knot(seed: int, bucket: int) -> float:
    # Simulation noise, not cryptography: a reproducible value per (seed, bucket).
    return random.Random(seed * 1_000_003 + bucket).uniform(-1.0, 1.0)  # noqa: S311


def load_noise(seed: int, when: datetime) -> float:
    """Smooth reproducible noise in -1..1 for instant `when` (linear between 5-minute knots)."""
    t = when.timestamp()
    bucket = math.floor(t / _NOISE_BUCKET_S)
    frac = t / _NOISE_BUCKET_S - bucket
    return (1 - frac) * _knot(seed, bucket) + frac * _knot(seed, bucket + 1)


def house_load_w(base_load_w: float, local: datetime, seed: int) -> float:
    """Household demand in W at a local wall-clock time, before any load scale.

    Base load plus a morning peak (~07:30) and a larger evening peak (~19:00), with +/-15 % seeded
    noise.
    """
    hour = local.hour + local.minute / 60 + local.second / 3600
    shape = 1 + 3.0 * _gauss(hour, 7.5, 1.0) + 5.0 * _gauss(hour, 19.0, 1.5)
    return max(0.0, base_load_w * shape * (1 + 0.15 * load_noise(seed, local)))


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareSettings:
    """Settings the hybrid inverter's firmware holds (source SunSpec points in brackets).

    Attributes:
        max_charge_w: Charge power setpoint in W (124 WChaMax), <= the battery's max charge power.
        reserve_pct: Backup reserve %, floor for discharging while the grid is up (124 MinRsvPct).
        grid_charging: Battery may charge from the grid (124 ChaGriSet = GRID).
        export_limit_enabled: Grid export limit active (123 WMaxLim_Ena).
        export_limit_pct: Export limit in % of the inverter rating (123 WMaxLimPct).
        storage_mode: Bit 0 forced charge, bit 1 forced discharge, 0 = self-consumption
            (124 StorCtl_Mod).
        charge_rate_pct: Forced charge rate in % of max_charge_w (124 InWRte).
        discharge_rate_pct: Forced discharge rate in % of max discharge power (124 OutWRte).
        revert_s: Simulated seconds after which storage_mode reverts to 0; 0 = never
            (124 InOutWRte_RvrtTms).
    """

    max_charge_w: float
    reserve_pct: float = 20.0
    grid_charging: bool = False
    export_limit_enabled: bool = False
    export_limit_pct: float = 100.0
    storage_mode: int = 0
    charge_rate_pct: float = 100.0
    discharge_rate_pct: float = 100.0
    revert_s: float = 0.0


def with_export_limit_w(
    firmware: FirmwareSettings, limit_w: float | None, inverter_max_w: float
) -> FirmwareSettings:
    """Firmware settings with a grid export cap given in W rather than in % of the rating.

    Faces that speak watts (Victron MaxFeedInPower, the MQTT battery's export_limit) share this so
    a cap set on one face reads back identically on the others. The percentage is not clamped to
    100: a cap above the rating simply never binds.

    Args:
        firmware: Settings to start from.
        limit_w: Export cap in W (>= 0; 0 = no export); None = unlimited.
        inverter_max_w: The inverter's AC rating in W (> 0).
    """
    if limit_w is None:
        return replace(firmware, export_limit_enabled=False)
    if limit_w < 0:
        raise ValueError("limit_w must be >= 0 or None")
    return replace(
        firmware, export_limit_enabled=True, export_limit_pct=100 * limit_w / inverter_max_w
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeTruth:
    """The physical truth of a home at one instant.

    Signs: battery_w + discharging / - charging; grid_w + importing / - exporting;
    load_w = solar_w + battery_w + grid_w always. Energies in Wh (counters never start at 0).
    """

    at: datetime
    solar_w: float
    battery_w: float
    grid_w: float
    load_w: float
    soc_pct: float
    capacity_wh: float
    grid_up: bool
    storm_alert: bool
    curtailed_w: float
    reserve_pct: float
    grid_charging: bool
    export_limit_w: float | None
    battery_command_w: float | None
    grid_import_wh: float
    grid_export_wh: float
    solar_wh: float
    battery_charge_wh: float
    battery_discharge_wh: float


class ExtraLoad(Protocol):
    """A load beside the house (an EV charger): its power now, and time passing for it."""

    @property
    def power_w(self) -> float:
        """What it draws now, in W (>= 0)."""
        ...

    def advance(self, dt_s: float) -> None:
        """``dt_s`` simulated seconds passed at ``power_w``."""
        ...


@dataclass(frozen=True, slots=True)
class _Flows:
    solar_w: float
    battery_w: float
    grid_w: float
    load_w: float
    curtailed_w: float


class HomePhysics:
    """A home stepped explicitly by its caller: no clock, no I/O.

    Args:
        config: The home's configuration (ratings, location, seed).
        start: Simulated time of the initial state (timezone-aware).
        tz: The home's time zone (drives the house-load profile); None = a fixed offset derived
            from the longitude until `set_time_zone` is called.
        firmware: Initial firmware settings; None = defaults (reserve 20 %, self-consumption).
    """

    def __init__(
        self,
        config: HomeConfig,
        start: datetime,
        tz: tzinfo | None = None,
        firmware: FirmwareSettings | None = None,
    ) -> None:
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self.config = config
        self._tz: tzinfo = tz or timezone(timedelta(hours=round(config.longitude / 15)))
        self._at = start
        self._eta = math.sqrt(config.round_trip_efficiency)  # per direction
        self._energy_wh = config.battery_capacity_wh * config.initial_soc_pct / 100
        self._firmware = firmware or FirmwareSettings(max_charge_w=config.battery_max_charge_w)
        self._revert_left_s: float | None = None
        self._restart_revert()
        self._cloud = 0.0
        self._load_scale = 1.0
        self._grid_up = True
        self._storm = False
        self.extra_loads: list[ExtraLoad] = []  # EV chargers, added by their devices
        self._import_wh = self._export_wh = self._solar_wh = COUNTER_START_WH
        self._charge_wh = self._discharge_wh = COUNTER_START_WH
        self._flows = self._compute(start, 1.0)

    # --- inputs -------------------------------------------------------------------------------

    @property
    def at(self) -> datetime:
        """Simulated time of the current state."""
        return self._at

    @property
    def firmware(self) -> FirmwareSettings:
        """The firmware settings now in force."""
        return self._firmware

    def set_time_zone(self, tz: tzinfo) -> None:
        """Use this time zone for the house-load profile."""
        self._tz = tz

    def set_cloud_factor(self, factor: float) -> None:
        """Cloudiness 0 (clear) .. 1 (overcast, ~15 % of clear-sky PV)."""
        if not 0 <= factor <= 1:
            raise ValueError("cloud factor must be within 0..1")
        self._cloud = float(factor)
        self._refresh()

    def set_load_scale(self, scale: float) -> None:
        """Multiply the house load by `scale` (>= 0)."""
        if not 0 <= scale <= 100:
            raise ValueError("load scale must be within 0..100")
        self._load_scale = float(scale)
        self._refresh()

    def set_grid_up(self, up: bool) -> None:
        """Connect (True) or lose (False) the grid; without it the home islands."""
        self._grid_up = bool(up)
        self._refresh()

    def set_storm_alert(self, active: bool) -> None:
        """Raise or clear a storm watch alert (reported by the devices, no physical effect)."""
        self._storm = bool(active)

    def apply_firmware(self, firmware: FirmwareSettings, *, restart_revert: bool = False) -> None:
        """Install new firmware settings.

        Args:
            firmware: The settings to use from now on.
            restart_revert: A rate command was (re)written: restart its revert timer.
        """
        if not 0 <= firmware.reserve_pct <= 100:
            raise ValueError("reserve_pct must be within 0..100")
        if not 0 <= firmware.storage_mode <= 3:
            raise ValueError("storage_mode must be within 0..3")
        self._firmware = replace(
            firmware, max_charge_w=min(firmware.max_charge_w, self.config.battery_max_charge_w)
        )
        if restart_revert:
            self._restart_revert()
        self._refresh()

    # --- derived settings ---------------------------------------------------------------------

    @property
    def battery_command_w(self) -> float | None:
        """Active forced battery power (+ discharge, - charge) in W; None = self-consumption."""
        fw = self._firmware
        if fw.storage_mode == 0:
            return None
        power = 0.0
        if fw.storage_mode & 1:
            power -= fw.charge_rate_pct / 100 * fw.max_charge_w
        if fw.storage_mode & 2:
            power += fw.discharge_rate_pct / 100 * self.config.battery_max_discharge_w
        return power

    @property
    def export_limit_w(self) -> float | None:
        """Grid export cap in W (0 = no export at all); None = unlimited."""
        fw = self._firmware
        if not fw.export_limit_enabled:
            return None
        return fw.export_limit_pct / 100 * self.config.inverter_max_w

    def solar_available_w(self, when: datetime) -> float:
        """PV power the array could deliver at `when` under the current cloud factor, in W."""
        cfg = self.config
        fraction = clear_sky_fraction(cfg.latitude, cfg.longitude, when)
        return cfg.pv_peak_w * fraction * (1 - 0.85 * self._cloud)

    def demand_w(self, when: datetime) -> float:
        """House demand at `when` under the current load scale, in W."""
        local = when.astimezone(self._tz)
        house = house_load_w(self.config.base_load_w, local, self.config.seed) * self._load_scale
        return house + sum(load.power_w for load in self.extra_loads)

    # --- outputs ------------------------------------------------------------------------------

    @property
    def soc_pct(self) -> float:
        """State of charge in % of capacity."""
        return 100 * self._energy_wh / self.config.battery_capacity_wh

    def truth(self) -> HomeTruth:
        """Snapshot of the current physical state."""
        f = self._flows
        fw = self._firmware
        return HomeTruth(
            at=self._at,
            solar_w=f.solar_w,
            battery_w=f.battery_w,
            grid_w=f.grid_w,
            load_w=f.load_w,
            soc_pct=self.soc_pct,
            capacity_wh=self.config.battery_capacity_wh,
            grid_up=self._grid_up,
            storm_alert=self._storm,
            curtailed_w=f.curtailed_w,
            reserve_pct=fw.reserve_pct,
            grid_charging=fw.grid_charging,
            export_limit_w=self.export_limit_w,
            battery_command_w=self.battery_command_w,
            grid_import_wh=self._import_wh,
            grid_export_wh=self._export_wh,
            solar_wh=self._solar_wh,
            battery_charge_wh=self._charge_wh,
            battery_discharge_wh=self._discharge_wh,
        )

    # --- stepping -----------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance by dt_s simulated seconds, in sub-steps of at most SUBSTEP_MAX_S."""
        if dt_s < 0:
            raise ValueError("dt_s must be >= 0")
        remaining = float(dt_s)
        while remaining > _EPS:
            h = min(remaining, SUBSTEP_MAX_S)
            if self._revert_left_s is not None:
                # End a sub-step exactly when a rate command reverts.
                h = min(h, self._revert_left_s)
            self._substep(h)
            remaining -= h

    def _restart_revert(self) -> None:
        fw = self._firmware
        self._revert_left_s = fw.revert_s if fw.storage_mode and fw.revert_s > 0 else None

    def _substep(self, dt_s: float) -> None:
        flows = self._compute(self._at + timedelta(seconds=dt_s / 2), dt_s)
        hours = dt_s / 3600
        cap = self.config.battery_capacity_wh
        if flows.battery_w < 0:
            self._energy_wh += -flows.battery_w * hours * self._eta
            self._charge_wh += -flows.battery_w * hours
        else:
            self._energy_wh -= flows.battery_w * hours / self._eta
            self._discharge_wh += flows.battery_w * hours
        self._energy_wh = min(cap, max(0.0, self._energy_wh))
        self._import_wh += max(flows.grid_w, 0.0) * hours
        self._export_wh += max(-flows.grid_w, 0.0) * hours
        self._solar_wh += flows.solar_w * hours
        self._at += timedelta(seconds=dt_s)
        self._flows = flows
        for load in self.extra_loads:
            load.advance(dt_s)
        if self._revert_left_s is not None:
            self._revert_left_s -= dt_s
            if self._revert_left_s <= _EPS:
                self._revert_left_s = None
                self._firmware = replace(self._firmware, storage_mode=0)
                self._refresh()

    def loads_changed(self) -> None:
        """An extra load changed its power: show it in the truth at once."""
        self._refresh()

    def _refresh(self) -> None:
        # Settings changes show in the truth at once, without integrating any energy.
        self._flows = self._compute(self._at, 1.0)

    def _compute(self, when: datetime, dt_s: float) -> _Flows:
        """Power flows for an interval of dt_s simulated seconds around `when`."""
        cfg = self.config
        fw = self._firmware
        hours = dt_s / 3600
        cap = cfg.battery_capacity_wh
        energy = self._energy_wh
        solar_avail = self.solar_available_w(when)
        demand = self.demand_w(when)
        surplus = solar_avail - demand
        floor_wh = cap * fw.reserve_pct / 100 if self._grid_up else 0.0
        # Battery-terminal power limits that keep SoC within [floor, 100 %] over this interval.
        charge_room = max(0.0, (cap - energy) / hours / self._eta)
        discharge_room = max(0.0, (energy - floor_wh) * self._eta / hours)
        charge_lim = min(cfg.battery_max_charge_w, fw.max_charge_w, charge_room)
        discharge_lim = min(cfg.battery_max_discharge_w, discharge_room)

        if not self._grid_up:
            # Islanded: the battery balances the home; surplus PV beyond what it takes is curtailed,
            # and a deficit it cannot cover is load that goes unserved.
            if surplus >= 0:
                battery = -min(surplus, charge_lim)
                solar = demand - battery
                load = demand
            else:
                battery = min(-surplus, discharge_lim)
                solar = solar_avail
                load = solar + battery
            return _Flows(solar, battery, 0.0, load, solar_avail - solar)

        command = self.battery_command_w
        if command is None:
            battery = -min(surplus, charge_lim) if surplus > 0 else min(-surplus, discharge_lim)
            reserve_wh = cap * fw.reserve_pct / 100
            if fw.grid_charging and energy < reserve_wh:
                to_reserve = (reserve_wh - energy) / hours / self._eta
                battery = min(battery, -min(charge_lim, to_reserve))
        elif command < 0:
            want = min(-command, charge_lim)
            battery = -want if fw.grid_charging else -min(want, max(surplus, 0.0))
        else:
            battery = min(command, discharge_lim)

        solar = solar_avail
        # AC output of the hybrid inverter (solar + battery) is capped at its rating.
        over = solar + battery - cfg.inverter_max_w
        if over > 0:
            cut = min(over, max(battery, 0.0))
            battery -= cut
            solar -= min(over - cut, solar)
        grid = demand - solar - battery
        limit = self.export_limit_w
        if limit is not None and grid < -limit:
            excess = -limit - grid
            cut = min(excess, solar)
            solar -= cut
            excess -= cut
            if excess > 0 and battery > 0:
                battery -= min(excess, battery)
            grid = demand - solar - battery
        return _Flows(solar, battery, grid, demand, solar_avail - solar)
