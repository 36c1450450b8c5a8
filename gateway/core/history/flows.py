"""The seven power flows of a home: split from a site reading (W) and integrated into energy (Wh)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Final, Self

from drivers.base import DeviceTelemetry

MAX_GAP: Final = timedelta(minutes=5)
"""The longest interval between two samples that is still integrated (longer: data was missing)."""


@dataclass(frozen=True, slots=True)
class _SevenFlows:
    """The one definition of the seven flows of a home (source_to_sink), each >= 0.

    ``Flows`` reads them in W, ``FlowEnergy`` in Wh; both keep this order (``FLOW_NAMES``).
    """

    solar_to_home: float = 0.0
    solar_to_battery: float = 0.0
    solar_to_grid: float = 0.0
    battery_to_home: float = 0.0
    battery_to_grid: float = 0.0
    grid_to_home: float = 0.0
    grid_to_battery: float = 0.0

    def values(self) -> tuple[float, ...]:
        """The seven flows in declaration order (the order of ``FLOW_NAMES``)."""
        values: tuple[float, ...] = _flow_values(self)
        return values


@dataclass(frozen=True, slots=True)
class Flows(_SevenFlows):
    """The seven power flows of a home in W, each >= 0 (source_to_sink)."""


@dataclass(frozen=True, slots=True)
class FlowEnergy(_SevenFlows):
    """The seven energy flows of a home in Wh, each >= 0 (same names as ``Flows``)."""

    def __add__(self, other: FlowEnergy) -> FlowEnergy:
        return FlowEnergy(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def scaled(self, factor: float) -> FlowEnergy:
        """This energy multiplied by ``factor`` (used to split an interval across buckets)."""
        return FlowEnergy(*(v * factor for v in self.values()))

    @classmethod
    def from_flows(cls, flows: Flows, hours: float) -> Self:
        """Energy of ``flows`` (W) held constant for ``hours`` (h)."""
        return cls(*(v * hours for v in flows.values()))

    def is_zero(self) -> bool:
        """True when every flow is 0 Wh."""
        return not any(self.values())


FLOW_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(_SevenFlows))
_flow_values: Final = attrgetter(*FLOW_NAMES)  # C-speed: energy is summed per bucket per poll


def split_flows(solar_w: float, battery_w: float, grid_w: float, load_w: float) -> Flows:
    """Split a site's power balance into the seven flows a home battery system has.

    Priorities: solar serves the home first; battery discharge serves the home before it exports;
    grid import serves the home before it charges the battery; solar left after the home charges
    the battery (after any grid charging) and exports the rest.

    Args:
        solar_w: PV production, W (negative readings, e.g. inverter standby draw, count as 0).
        battery_w: battery power, W, + discharging / - charging.
        grid_w: grid power, W, + importing / - exporting.
        load_w: home consumption, W; ``load_w = solar_w + battery_w + grid_w`` is expected.

    Returns:
        The flows in W, all >= 0. No flow exceeds its source or its sink, so an unbalanced
        reading leaves the mismatch unattributed instead of inventing energy.
    """
    solar = max(solar_w, 0.0)
    discharge = max(battery_w, 0.0)
    charge = max(-battery_w, 0.0)
    grid_import = max(grid_w, 0.0)
    grid_export = max(-grid_w, 0.0)
    home = max(load_w, 0.0)

    solar_to_home = min(solar, home)
    home -= solar_to_home
    battery_to_home = min(discharge, home)
    home -= battery_to_home
    grid_to_home = min(grid_import, home)

    grid_to_battery = min(grid_import - grid_to_home, charge)
    solar_left = solar - solar_to_home
    solar_to_battery = min(solar_left, charge - grid_to_battery)
    battery_to_grid = min(discharge - battery_to_home, grid_export)
    solar_to_grid = min(solar_left - solar_to_battery, grid_export - battery_to_grid)
    return Flows(
        solar_to_home=solar_to_home,
        solar_to_battery=solar_to_battery,
        solar_to_grid=solar_to_grid,
        battery_to_home=battery_to_home,
        battery_to_grid=battery_to_grid,
        grid_to_home=grid_to_home,
        grid_to_battery=grid_to_battery,
    )


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One site power reading at ``taken_at`` (tz-aware), in W.

    Signs as everywhere in the gateway: ``battery_w`` + discharging / - charging, ``grid_w``
    + importing / - exporting; ``load_w`` None when not measured.
    """

    taken_at: datetime
    solar_w: float = 0.0
    battery_w: float = 0.0
    grid_w: float = 0.0
    load_w: float | None = None

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None:
            raise ValueError("PowerSample.taken_at must be timezone-aware")

    @classmethod
    def from_telemetry(cls, telemetry: DeviceTelemetry) -> PowerSample:
        """A sample from site telemetry; unmeasured quantities count as 0 W."""
        return cls(
            taken_at=telemetry.taken_at,
            solar_w=telemetry.solar_w or 0.0,
            battery_w=telemetry.battery_w or 0.0,
            grid_w=telemetry.grid_w or 0.0,
            load_w=telemetry.load_w,
        )

    @property
    def flows(self) -> Flows:
        """This reading split into flows (load from the balance when not measured)."""
        load = self.load_w
        if load is None:
            load = max(self.solar_w, 0.0) + self.battery_w + self.grid_w
        return split_flows(self.solar_w, self.battery_w, self.grid_w, load)


def integrate(
    prev_sample: PowerSample, sample: PowerSample, *, max_gap: timedelta = MAX_GAP
) -> FlowEnergy:
    """Energy (Wh) that flowed between two consecutive samples.

    Left-rectangle rule (zero-order hold): a polled reading stands for the power until the next
    reading. That is what the device told us, and it makes splitting an interval across bucket
    boundaries exact (energy is proportional to time inside the interval).

    Returns zero energy when the interval is longer than ``max_gap`` (data was missing; we do not
    guess what flowed) or not positive (a repeated or out-of-order sample).
    """
    dt = sample.taken_at - prev_sample.taken_at
    if dt <= timedelta(0) or dt > max_gap:
        return FlowEnergy()
    return FlowEnergy.from_flows(prev_sample.flows, dt / timedelta(hours=1))
