"""The gateway_status body: devices with their last poll, active alerts and the command journal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.core.errors import SiteOffline
from gateway.runtime.site import Site
from gateway.web.renderers.health import device_health
from gateway.web.renderers.models import (
    Alert,
    DeviceStatus,
    GatewayStatus,
    GatewayStatusResponse,
    JournalEntry,
    rfc3339,
)


def alerts(site: Site, now_mono: float) -> list[Alert]:
    """What an installer should look at now: storm, grid outage, devices offline or failing."""
    out: list[Alert] = []
    for d in site.devices:
        health = device_health(d, now_mono)
        if health.quality == "offline":
            out.append(Alert.model_construct(
                kind="device_offline",
                message=f"{d.name}: offline ({d.last_error or 'no data yet'})"))
        elif health.failures:
            out.append(Alert.model_construct(
                kind="device_failing",
                message=f"{d.name}: {health.failures} failed polls ({d.last_error})"))
    try:
        reading = site.reading() if any(d.telemetry for d in site.devices) else None
    except SiteOffline:
        reading = None
    if site.storm_alert(reading):
        out.append(Alert.model_construct(kind="storm", message="storm watch alert active"))
    if reading is not None and reading.grid_up is False:
        out.append(Alert.model_construct(kind="grid_outage", message="the grid is down"))
    return out


def gateway_status_body(
    site: Site, journal: list[dict[str, Any]], now: datetime, now_mono: float,
) -> GatewayStatusResponse:
    """The status page's view of one site (the page takes the flows from live_status)."""
    devices = []
    for d in site.devices:
        health = device_health(d, now_mono)
        age = d.age_s(now_mono)
        last = None if age is None else rfc3339(now - timedelta(seconds=age), site.tz,
                                                  timespec="seconds")
        devices.append(DeviceStatus.model_construct(
            name=d.name, type=health.type, quality=health.quality, connected=health.connected,
            last_poll=last, data_age_s=health.data_age_s, polls=health.polls,
            failures=health.failures, last_error=health.last_error))
    entries = [JournalEntry.model_construct(**e) for e in journal]
    return GatewayStatusResponse.model_construct(response=GatewayStatus.model_construct(
        name=site.config.name, devices=devices, alerts=alerts(site, now_mono), journal=entries,
        drift_count=site.drift_count))
