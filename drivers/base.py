"""The normalised device vocabulary and the small protocols every driver implements (docs/drivers.md)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class Capability(enum.StrEnum):
    """What a driver can measure or honour natively; site_info.components derives from these."""

    SOLAR = "solar"  # measures solar_w
    BATTERY = "battery"  # measures battery_w and soc_pct
    GRID_METER = "grid_meter"  # measures grid_w (a site meter)
    GRID_STATUS = "grid_status"  # knows whether the grid is up
    BACKUP_RESERVE = "backup_reserve"  # honours a reserve % while the grid is up
    GRID_CHARGING = "grid_charging"  # can allow/forbid charging the battery from the grid
    EXPORT_LIMIT = "export_limit"  # can cap grid export (0 W = no export)
    BATTERY_POWER = "battery_power"  # accepts a battery power command with a revert timeout
    STORM_WATCH = "storm_watch"  # reports a storm alert from the device side


class Quality(enum.StrEnum):
    """Freshness of a device's latest telemetry."""

    FRESH = "fresh"
    STALE = "stale"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """Monotonic energy counters in Wh, as the device reports them (None where it has none)."""

    grid_import_wh: float | None = None
    grid_export_wh: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceTelemetry:
    """One reading of a device in SI units.

    Signs: ``battery_w`` + discharging / - charging; ``grid_w`` + importing / - exporting.
    A ``None`` field means the device does not measure that quantity.
    """

    taken_at: datetime
    solar_w: float | None = None
    battery_w: float | None = None
    grid_w: float | None = None
    load_w: float | None = None
    soc_pct: float | None = None
    capacity_wh: float | None = None
    grid_up: bool | None = None
    storm_alert: bool | None = None
    counters: Counters = field(default_factory=Counters)
    # The setpoints the device held at this reading, for drivers that read them with their
    # telemetry at no extra cost; None = not read (the gateway then asks ``read_back``).
    held: Setpoints | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Setpoints:
    """What a device must do now, computed by the gateway's control policy.

    ``battery_w`` is an optional battery power command (+ discharge / - charge) that the device
    reverts to self-consumption after ``revert_s`` seconds unless re-sent; ``None`` means
    "self-consumption under the other limits". ``export_limit_w`` ``None`` means unlimited.
    """

    reserve_pct: int
    grid_charging: bool
    export_limit_w: int | None = None
    battery_w: int | None = None
    revert_s: int = 0


#: Capabilities that make a device take setpoints (a "sink" of the control policy).
SETPOINT_CAPABILITIES: frozenset[Capability] = frozenset({
    Capability.BACKUP_RESERVE, Capability.GRID_CHARGING, Capability.EXPORT_LIMIT,
    Capability.BATTERY_POWER,
})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """Nameplate and identity, read once on connect."""

    manufacturer: str
    model: str
    serial_number: str
    firmware_version: str
    nameplate_power_w: float | None = None
    battery_capacity_wh: float | None = None
    max_charge_w: float | None = None
    max_discharge_w: float | None = None


@runtime_checkable
class TelemetrySource(Protocol):
    """A device that can be read."""

    async def read(self) -> DeviceTelemetry:
        """Read the device once; raises a ``drivers.errors.DriverError`` on failure."""
        ...


@runtime_checkable
class SetpointSink(Protocol):
    """A device that takes setpoints and reports what it holds."""

    async def apply(self, setpoints: Setpoints) -> None:
        """Write the setpoints the device supports, then confirm them by read-back.

        Raises ``NotConfirmed`` when the device does not report the written values in time.
        """
        ...

    async def read_back(self) -> Setpoints:
        """Read the setpoints as the device holds them now."""
        ...


@runtime_checkable
class Driver(TelemetrySource, SetpointSink, Protocol):
    """Everything the gateway needs from one device."""

    name: str
    capabilities: frozenset[Capability]

    async def connect(self) -> DeviceInfo:
        """Open (or join) the device connection and identify the device."""
        ...

    async def close(self) -> None:
        """Release this driver's share of the connection."""
        ...


def supported(setpoints: Setpoints, capabilities: frozenset[Capability]) -> Mapping[str, Any]:
    """The subset of ``setpoints`` a device with ``capabilities`` can honour (for read-back diffs)."""
    out: dict[str, Any] = {}
    if Capability.BACKUP_RESERVE in capabilities:
        out["reserve_pct"] = setpoints.reserve_pct
    if Capability.GRID_CHARGING in capabilities:
        out["grid_charging"] = setpoints.grid_charging
    if Capability.EXPORT_LIMIT in capabilities:
        out["export_limit_w"] = setpoints.export_limit_w
    if Capability.BATTERY_POWER in capabilities:
        out["battery_w"] = setpoints.battery_w
    return out


#: Devices hold powers at their own resolution (SunSpec: whole % of a rating, e.g. 50 W steps of
#: 5 kW): a read-back within this many W of what was written is the same setpoint.
WATT_TOLERANCE_W = 100.0


def holds(
    held: Setpoints, wanted: Setpoints, capabilities: frozenset[Capability],
    *, watt_tolerance_w: float = WATT_TOLERANCE_W,
) -> bool:
    """Whether a device holding ``held`` honours ``wanted``, as far as it can (reconciliation)."""
    have, want = supported(held, capabilities), supported(wanted, capabilities)
    for key, target in want.items():
        value = have.get(key)
        if key.endswith("_w") and value is not None and target is not None:
            if abs(value - target) > watt_tolerance_w:
                return False
        elif value != target:
            return False
    return True
