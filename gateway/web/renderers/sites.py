"""The bodies of products, live_status and site_info, derived from a site's state and capabilities."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from drivers.base import Capability
from gateway.core.errors import SiteOffline
from gateway.core.settings import SiteSettings
from gateway.runtime.site import Site
from gateway.web.errors import dumps

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
    except SiteOffline:  # products lists every site; live fields only while online
        return entry
    if reading.soc_pct is not None:
        entry["percentage_charged"] = reading.soc_pct
        if reading.capacity_wh:
            entry["energy_left"] = reading.soc_pct / 100 * reading.capacity_wh
            entry["total_pack_energy"] = reading.capacity_wh
    entry["battery_power"] = reading.battery_w
    return entry


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



class BodyCache:
    """Serialised live_status bodies, one per site, rebuilt only when what they show changed.

    Clients poll live_status far more often than devices report: the body is serialised once per
    new reading, settings change or alert change, and served as bytes in between. Held by the
    app, not by the site: the site knows nothing of HTTP bodies.
    """

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, SiteSettings, bool, bytes]] = {}

    def live_status(self, site: Site) -> bytes:
        """The whole ``{"response": ...}`` body of the site's live_status (site online)."""
        cached = self._live.get(site.id)
        if (cached is not None and cached[0] == site.telemetry_version
                and cached[1] is site.settings and cached[2] == site.admin_storm_alert):
            return cached[3]
        body = dumps({"response": live_status_body(site)})
        self._live[site.id] = (site.telemetry_version, site.settings, site.admin_storm_alert, body)
        return body
