"""The site reading: one view of a site's power balance, combined from its devices' telemetry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from drivers.base import DeviceTelemetry


@dataclass(frozen=True, slots=True)
class SiteReading:
    """Site-level sums over the devices' latest telemetry, with the newest timestamp.

    Signs as everywhere (docs/architecture.md, "Vocabulary"): ``battery_w`` + discharging,
    ``grid_w`` + importing; ``load_w = solar_w + battery_w + grid_w`` always holds.
    """

    taken_at: datetime
    solar_w: float
    battery_w: float
    grid_w: float
    load_w: float
    soc_pct: float | None
    capacity_wh: float | None
    grid_up: bool | None
    storm_alert: bool


def combine(readings: Sequence[DeviceTelemetry]) -> SiteReading:
    """Sum device readings into the site view; load is derived so the balance always holds.

    SoC is the capacity-weighted mean of the devices that report one (a plain mean when no
    capacity is known); the grid is up only when every device that knows says so.
    """
    solar = sum(r.solar_w or 0.0 for r in readings)
    battery = sum(r.battery_w or 0.0 for r in readings)
    grid = sum(r.grid_w or 0.0 for r in readings)
    with_soc = [r for r in readings if r.soc_pct is not None]
    capacity = sum(r.capacity_wh or 0.0 for r in with_soc)
    if capacity > 0:
        soc: float | None = sum((r.soc_pct or 0.0) * (r.capacity_wh or 0.0)
                                for r in with_soc) / capacity
    elif with_soc:
        soc = sum(r.soc_pct or 0.0 for r in with_soc) / len(with_soc)
    else:
        soc = None
    grid_flags = [r.grid_up for r in readings if r.grid_up is not None]
    return SiteReading(
        taken_at=max(r.taken_at for r in readings),
        solar_w=solar, battery_w=battery, grid_w=grid, load_w=solar + battery + grid,
        soc_pct=soc, capacity_wh=capacity or None,
        grid_up=all(grid_flags) if grid_flags else None,
        storm_alert=any(r.storm_alert for r in readings),
    )
