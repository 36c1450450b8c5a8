"""Sun position and clear-sky PV potential from latitude, longitude and time (no pvlib)."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime


def solar_elevation_deg(latitude: float, longitude: float, when: datetime) -> float:
    """Sun elevation above the horizon in degrees (NOAA's approximation, ~0.5 degree).

    Args:
        latitude: degrees north.
        longitude: degrees east.
        when: aware instant.
    """
    utc = when.astimezone(UTC)
    hour = utc.hour + utc.minute / 60 + utc.second / 3600
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
    hour_angle = math.radians((hour * 60 + eqtime_min + 4 * longitude) / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def clear_sky_fraction(latitude: float, longitude: float, when: datetime) -> float:
    """Clear-sky output as a share (0..1) of the array's peak: Haurwitz GHI over 1000 W/m2."""
    sin_elev = math.sin(math.radians(solar_elevation_deg(latitude, longitude, when)))
    if sin_elev <= 0:
        return 0.0
    return min(1.0, 1.098 * sin_elev * math.exp(-0.057 / sin_elev))


@functools.lru_cache(maxsize=4096)  # consecutive horizons share all but one step
def mean_clear_sky_fraction(latitude: float, longitude: float, start: datetime, step_s: int) -> float:
    """Mean clear-sky share over ``[start, start + step_s)``, sampled at 5 points (midpoints)."""
    samples = 5
    total = 0.0
    for k in range(samples):
        offset = (k + 0.5) * step_s / samples
        total += clear_sky_fraction(latitude, longitude, start.fromtimestamp(start.timestamp() + offset, UTC))
    return total / samples
