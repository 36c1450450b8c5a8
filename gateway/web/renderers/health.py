"""The /health body: per site and per device, connectivity and data age, fields that never disagree."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from drivers.base import Quality
from gateway.runtime.clock import ClockStatus
from gateway.runtime.devices import DeviceView
from gateway.runtime.site import Site
from gateway.web.renderers.models import (
    ChargerHealth,
    ClockHealth,
    DeviceHealth,
    Health,
    SiteHealth,
    rfc3339,
)
from gateway.web.renderers.storm import storm_health


def device_health(d: DeviceView, now_mono: float) -> DeviceHealth:
    """One device's ``/health`` entry, its fields consistent by construction (docs/api.md, /health).

    ``connected``: the latest completed poll succeeded and its data is within the stale limit.
    ``quality``: by the age of the last good read (fresh within two poll intervals, offline beyond
    the stale limit), except that a device that is not connected is never ``fresh``.
    """
    by_age = d.quality(now_mono)
    connected = d.failures == 0 and by_age is not Quality.OFFLINE
    quality = Quality.STALE if by_age is Quality.FRESH and not connected else by_age
    age = d.age_s(now_mono)
    return DeviceHealth.model_construct(
        type=d.config.type,
        quality=quality,
        connected=connected,
        data_age_s=None if age is None else round(age, 3),
        polls=d.polls,
        failures=d.failures,
        missed_polls=d.missed_polls,
        last_error=d.last_error,
    )


def clock_health(status: ClockStatus) -> ClockHealth:
    """Where the gateway's time comes from (docs/api.md, "Clock")."""
    return ClockHealth.model_construct(
        source=status.source, state=status.state,
        now=rfc3339(status.now, UTC, timespec="milliseconds"), speed=status.speed,
        url=status.url, last_sync_age_s=status.last_sync_age_s, offset_s=status.offset_s,
        error=status.error)


def health_body(sites: Iterable[Site], now_mono: float, clock: ClockStatus | None = None) -> Health:
    """``{"status": "ok" | "degraded", "sites": {...}, "clock": {...}}``: degraded unless every
    device is fresh, the clock source answers and every storm alert source answers."""
    out: dict[str, SiteHealth] = {}
    degraded = clock is not None and clock.state != "ok"
    for site in sites:
        devices = {d.name: device_health(d, now_mono) for d in site.devices}
        degraded |= any(d.quality is not Quality.FRESH for d in devices.values())
        # a charge point that is not connected leaves the status alone: chargers dial in when
        # they like (and a configured try-out id may never)
        chargers = {c.id: ChargerHealth.model_construct(
            connected=c.connected, wall_connector_state=c.state,
            last_seen=None if c.last_seen is None else rfc3339(c.last_seen, UTC,
                                                              timespec="seconds"))
            for c in site.chargers}
        storm = storm_health(site)
        degraded |= any(s.status == "failing" for s in storm.sources.values())
        out[str(site.id)] = SiteHealth.model_construct(
            name=site.config.name, devices=devices, drift_count=site.drift_count,
            reconciliations=site.reconciles, storm_watch=storm, chargers=chargers or None)
    return Health.model_construct(status="degraded" if degraded else "ok", sites=out,
                                  clock=None if clock is None else clock_health(clock))
