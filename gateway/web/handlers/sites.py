"""Read endpoints: products, live_status, site_info."""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

from aiohttp import web

from drivers.base import Capability, Quality
from gateway.runtime.poller import DeviceHandle
from gateway.runtime.site import Site
from gateway.web.auth import READ_SCOPE
from gateway.web.errors import JSON, FleetError, dumps, ok
from gateway.web.keys import SITES, principal, site_for

routes = web.RouteTableDef()

try:
    VERSION = importlib.metadata.version("energy-gateway")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
    VERSION = "0.0.0"


def _site_string_id(site: Site) -> str:
    return f"EGW-{site.id}"


def _battery_type(site: Site) -> str:
    hybrid = any({Capability.SOLAR, Capability.BATTERY} <= d.capabilities for d in site.devices)
    return "solar_powerwall" if hybrid else "ac_powerwall"


def _components(site: Site) -> dict[str, Any]:
    caps = site.capabilities()
    has_battery = Capability.BATTERY in caps
    has_solar = Capability.SOLAR in caps
    comps: dict[str, Any] = {
        "battery": has_battery,
        "solar": has_solar,
        "grid": bool(caps & {Capability.GRID_METER, Capability.GRID_STATUS}),
        "load_meter": Capability.GRID_METER in caps,
        "market_type": "residential",
    }
    if has_solar:
        comps["solar_type"] = "pv_panel"
    if has_battery:
        comps["battery_type"] = _battery_type(site)
    return comps


def products_entry(site: Site) -> dict[str, Any]:
    """One energy entry of GET /api/1/products (fleet-api.md §3.1).

    Its shape comes from what the devices are (learned at their first discovery and kept in
    SQLite), so it holds while they are offline; live fields only while they are online.
    """
    caps = site.capabilities()
    entry: dict[str, Any] = {
        "energy_site_id": site.id,
        "device_type": "energy",
        "resource_type": "battery" if Capability.BATTERY in caps else "solar",
        "site_name": site.config.name,
        "id": _site_string_id(site),
        "gateway_id": f"energy-gateway-{site.id}",
        "asset_site_id": "",
        "warp_site_number": _site_string_id(site),
        "backup_capable": Capability.BATTERY in caps,
        "storm_mode_enabled": site.settings.storm_mode_enabled,
        "components": _components(site),
        "features": {"rate_plan_manager_no_pricing_constraint": True},
    }
    try:
        reading = site.reading()
    except FleetError:  # products lists every site; live fields only while online
        return entry
    if reading.soc_pct is not None:
        entry["percentage_charged"] = reading.soc_pct
        if reading.capacity_wh:
            entry["energy_left"] = reading.soc_pct / 100 * reading.capacity_wh
            entry["total_pack_energy"] = reading.capacity_wh
    entry["battery_power"] = reading.battery_w
    return entry


@routes.get("/api/1/products")
async def products(request: web.Request) -> web.Response:
    """Every energy site the token can reach."""
    who = principal(request)
    who.require(READ_SCOPE)
    entries = [products_entry(s) for s in request.app[SITES].values() if who.can_reach(s.id)]
    return ok(entries, count=len(entries))


def live_status_body(site: Site) -> dict[str, Any]:
    """The superset live_status of fleet-api.md §3.2 from the site's latest telemetry."""
    reading = site.reading()
    grid_up = reading.grid_up
    body: dict[str, Any] = {
        "solar_power": round(reading.solar_w),
        "battery_power": round(reading.battery_w),
        "grid_power": round(reading.grid_w),
        "load_power": round(reading.load_w),
        "generator_power": 0,
        "grid_services_power": 0,
        "grid_services_active": False,
        "backup_capable": Capability.BATTERY in site.capabilities(),
        "grid_status": "Unknown" if grid_up is None else ("Active" if grid_up else "Inactive"),
        "island_status": ("island_status_unknown" if grid_up is None
                          else "on_grid" if grid_up else "off_grid_unintentional"),
        "storm_mode_active": site.storm_mode_active(reading),
        "timestamp": reading.taken_at.astimezone(site.tz).isoformat(timespec="seconds"),
        "wall_connectors": [],
    }
    # load = solar + battery + grid must hold in what we serve, after rounding too
    body["load_power"] = body["solar_power"] + body["battery_power"] + body["grid_power"]
    if reading.soc_pct is not None:
        body["percentage_charged"] = reading.soc_pct
        if reading.capacity_wh:
            body["energy_left"] = reading.soc_pct / 100 * reading.capacity_wh
            body["total_pack_energy"] = reading.capacity_wh
    return body


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/live_status")
async def live_status(request: web.Request) -> web.Response:
    """Latest telemetry; 408 when a device is offline.

    The body changes only with new telemetry, settings or alerts, while clients ask far more
    often: it is serialised once per change.
    """
    site = site_for(request, READ_SCOPE)
    site.require_online()
    key = (site.telemetry_version, site.settings, site.admin_storm_alert)
    cached = site.live_status_cache
    if cached is not None and cached[0][0] == key[0] and cached[0][1] is key[1] \
            and cached[0][2] == key[2]:
        body = cached[1]
    else:
        body = dumps({"response": live_status_body(site)})
        site.live_status_cache = (key, body)
    return web.Response(body=body, content_type=JSON)


def site_info_body(site: Site) -> dict[str, Any]:
    """site_info (fleet-api.md §3.3): settings plus components derived from capabilities.

    Nameplates and capabilities are what discovery learned (kept across restarts), so this
    answers while devices are offline; only a device never reached since install makes it 408.
    """
    site.require_online([d for d in site.devices if d.identity is None])
    caps = site.capabilities()
    settings = site.settings
    comps = _components(site)
    has_battery = Capability.BATTERY in caps
    comps.update({
        "backup": has_battery and Capability.GRID_STATUS in caps,
        "gateway": "teg",
        "tou_capable": has_battery and bool(caps & {Capability.BATTERY_POWER,
                                                      Capability.GRID_CHARGING}),
        "storm_mode_capable": has_battery and Capability.BACKUP_RESERVE in caps,
        "off_grid_vehicle_charging_reserve_supported": has_battery,
        "configurable": True,
        "grid_services_enabled": False,
        "edit_setting_grid_charging": Capability.GRID_CHARGING in caps,
        "edit_setting_energy_exports": Capability.EXPORT_LIMIT in caps,
        "edit_setting_permission_to_export": Capability.EXPORT_LIMIT in caps,
        "customer_preferred_export_rule": settings.export_rule,
        "non_export_configured": settings.export_rule == "never",
        "disallow_charge_from_grid_with_solar_installed": not settings.grid_charging_allowed,
        "set_islanding_mode_enabled": False,
        "backup_time_remaining_enabled": False,
        "gateways": [{
            "device_id": f"energy-gateway-{site.id}",
            "din": f"energy-gateway-{site.id}",
            "serial_number": f"EGW{site.id}",
            "part_number": "energy-gateway",
            "part_type": 10,
            "part_name": "energy-gateway",
            "is_active": True,
            "site_id": _site_string_id(site),
            "firmware_version": VERSION,
        }],
        "batteries": [],
        "inverters": [],
        "wall_connectors": [],
    })
    nameplate_power = 0.0
    nameplate_energy = 0.0
    for d in site.devices:
        info = d.identity
        if info is None:
            continue
        din = f"{info.manufacturer}-{info.serial_number}"
        if Capability.BATTERY in d.capabilities:
            comps["batteries"].append({
                "device_id": f"{site.id}-{d.name}",
                "din": din,
                "serial_number": info.serial_number,
                "part_number": info.model,
                "part_type": 2,
                "part_name": f"{info.manufacturer} {info.model}",
                "nameplate_max_charge_power": info.max_charge_w or 0,
                "nameplate_max_discharge_power": info.max_discharge_w or 0,
                "nameplate_energy": info.battery_capacity_wh or 0,
                "is_active": True,
            })
            nameplate_power += info.max_discharge_w or 0.0
            nameplate_energy += info.battery_capacity_wh or 0.0
        if Capability.SOLAR in d.capabilities:
            comps["inverters"].append({
                "device_id": f"{site.id}-{d.name}",
                "din": din,
                "part_number": info.model,
                "part_type": 7,
                "part_name": f"{info.manufacturer} {info.model}",
                "is_active": True,
                "site_id": _site_string_id(site),
                "firmware_version": info.firmware_version,
            })
    body: dict[str, Any] = {
        "id": _site_string_id(site),
        "site_name": site.config.name,
        "backup_reserve_percent": settings.backup_reserve_pct,
        "default_real_mode": settings.operation_mode,
        "installation_date": site.config.installation_date or "2024-01-01T00:00:00+00:00",
        "installation_time_zone": site.config.time_zone,
        "user_settings": {
            "storm_mode_enabled": settings.storm_mode_enabled,
            "off_grid_vehicle_charging_enabled": settings.off_grid_ev_reserve_pct > 0,
            "go_off_grid_test_banner_enabled": None,
            "powerwall_onboarding_settings_set": True,
            "powerwall_tesla_electric_interested_in": None,
            "vpp_tour_enabled": None,
            "sync_grid_alert_enabled": False,
            "breaker_alert_enabled": False,
        },
        "components": comps,
        "version": VERSION,
        "battery_count": len(comps["batteries"]),
        "nameplate_power": nameplate_power,
        "nameplate_energy": nameplate_energy,
        "max_site_meter_power_ac": 1_000_000_000,
        "min_site_meter_power_ac": -1_000_000_000,
        "off_grid_vehicle_charging_reserve_percent": settings.off_grid_ev_reserve_pct,
        "vpp_backup_reserve_percent": 0,
        "app_settings": {"live_status_local_refresh_s": 1},
    }
    if settings.tariff is not None:
        body["tariff_content_v2"] = settings.tariff.wire()
    return body


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/site_info")
async def site_info(request: web.Request) -> web.Response:
    """Settings, components and nameplates of a site."""
    return ok(site_info_body(site_for(request, READ_SCOPE)))


def device_health(d: DeviceHandle, now_mono: float) -> dict[str, Any]:
    """One device's ``/health`` entry, its fields consistent by construction (docs/api.md, /health).

    ``connected``: the latest completed poll succeeded and its data is within the stale limit.
    ``quality``: by the age of the last good read (fresh within two poll intervals, offline beyond
    the stale limit), except that a device that is not connected is never ``fresh``.
    """
    by_age = d.quality(now_mono)
    connected = d.failures == 0 and by_age is not Quality.OFFLINE
    quality = Quality.STALE if by_age is Quality.FRESH and not connected else by_age
    age = d.age_s(now_mono)
    return {
        "type": d.config.type,
        "quality": quality.value,
        "connected": connected,
        "data_age_s": None if age is None else round(age, 3),
        "polls": d.polls,
        "failures": d.failures,
        "missed_polls": d.missed_polls,
        "last_error": d.last_error,
    }


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Per-site and per-device connectivity and data age; no auth, no secrets."""
    now = time.monotonic()
    sites: dict[str, Any] = {}
    degraded = False
    for site in request.app[SITES].values():
        devices = {d.name: device_health(d, now) for d in site.devices}
        degraded |= any(d["quality"] != Quality.FRESH.value for d in devices.values())
        sites[str(site.id)] = {"name": site.config.name, "devices": devices,
                               "drift_count": site.drift_count,
                               "reconciliations": site.reconciles}
    status = "degraded" if degraded else "ok"
    return web.json_response({"status": status, "sites": sites})


@routes.get("/status")
async def status(_: web.Request) -> web.Response:
    """Liveness for clients: the text ``ok``."""
    return web.Response(text="ok")
