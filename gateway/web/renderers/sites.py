"""The bodies of products, live_status and site_info, derived from a site's state and capabilities."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Hashable
from datetime import datetime
from typing import Literal

from drivers.base import Capability
from gateway.core.errors import SiteOffline
from gateway.core.reading import SiteReading
from gateway.core.settings import SiteSettings
from gateway.runtime.site import Site
from gateway.web.errors import to_json
from gateway.web.renderers.chargers import (
    wall_connector_components,
    wall_connectors_key,
    wall_connectors_live,
)
from gateway.web.renderers.models import (
    AppSettings,
    BatteryComponent,
    Features,
    GatewayComponent,
    InverterComponent,
    LiveStatus,
    LiveStatusResponse,
    ProductComponents,
    ProductEntry,
    SiteComponents,
    SiteInfo,
    UserSettings,
    rfc3339,
)

try:
    VERSION = importlib.metadata.version("energy-gateway")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
    VERSION = "0.0.0"


# Constant parts, shared: the models are frozen (and a model default would be deep-copied per body).
FEATURES = Features()
APP_SETTINGS = AppSettings()


def _site_string_id(site: Site) -> str:
    return f"EGW-{site.id}"


def _battery_type(site: Site) -> Literal["ac_powerwall", "solar_powerwall"]:
    hybrid = any({Capability.SOLAR, Capability.BATTERY} <= d.capabilities for d in site.devices)
    return "solar_powerwall" if hybrid else "ac_powerwall"


def _kinds(caps: frozenset[Capability], site: Site) -> ProductComponents:
    """What the site is: the ``components`` of products (site_info's start with the same keys)."""
    has_battery = Capability.BATTERY in caps
    has_solar = Capability.SOLAR in caps
    return ProductComponents.model_construct(
        battery=has_battery,
        solar=has_solar,
        grid=bool(caps & {Capability.GRID_METER, Capability.GRID_STATUS}),
        load_meter=Capability.GRID_METER in caps,
        solar_type="pv_panel" if has_solar else None,
        battery_type=_battery_type(site) if has_battery else None,
    )


def _stored_energy(reading: SiteReading | None) -> tuple[float | None, float | None, float | None]:
    """``percentage_charged``, ``energy_left`` and ``total_pack_energy``; None where unknown."""
    if reading is None or reading.soc_pct is None:
        return None, None, None
    if not reading.capacity_wh:
        return reading.soc_pct, None, None
    return reading.soc_pct, reading.soc_pct / 100 * reading.capacity_wh, reading.capacity_wh


def products_entry(site: Site) -> ProductEntry:
    """One energy entry of GET /api/1/products (docs/api.md "products").

    Its shape comes from what the devices are (learned at their first discovery and kept in
    SQLite), so it holds while they are offline; live fields only while they are online.
    """
    caps = site.capabilities()
    has_battery = Capability.BATTERY in caps
    try:
        reading = site.reading()
    except SiteOffline:  # products lists every site; live fields only while online
        reading = None
    percentage_charged, energy_left, total_pack_energy = _stored_energy(reading)
    return ProductEntry.model_construct(
        energy_site_id=site.id,
        resource_type="battery" if has_battery else "solar",
        site_name=site.config.name,
        id=_site_string_id(site),
        gateway_id=f"energy-gateway-{site.id}",
        warp_site_number=_site_string_id(site),
        backup_capable=has_battery,
        storm_mode_enabled=site.settings.storm_mode_enabled,
        components=_kinds(caps, site),
        features=FEATURES,
        percentage_charged=percentage_charged,
        energy_left=energy_left,
        total_pack_energy=total_pack_energy,
        battery_power=None if reading is None else reading.battery_w,
    )


def live_status_body(site: Site) -> LiveStatus:
    """live_status (docs/api.md "live_status") from the site's latest telemetry."""
    reading = site.reading()
    grid_up = reading.grid_up
    solar, battery, grid = round(reading.solar_w), round(reading.battery_w), round(reading.grid_w)
    percentage_charged, energy_left, total_pack_energy = _stored_energy(reading)
    return LiveStatus.model_construct(
        solar_power=solar,
        battery_power=battery,
        grid_power=grid,
        # load = solar + battery + grid must hold in what we serve, after rounding too
        load_power=solar + battery + grid,
        backup_capable=Capability.BATTERY in site.capabilities(),
        grid_status="Unknown" if grid_up is None else ("Active" if grid_up else "Inactive"),
        island_status=("island_status_unknown" if grid_up is None
                       else "on_grid" if grid_up else "off_grid_unintentional"),
        storm_mode_active=site.storm_mode_active(reading),
        timestamp=rfc3339(reading.taken_at, site.tz, timespec="seconds"),
        wall_connectors=wall_connectors_live(site.chargers),
        percentage_charged=percentage_charged,
        energy_left=energy_left,
        total_pack_energy=total_pack_energy,
    )


def installation_date(site: Site, installed_at: datetime | None) -> str | None:
    """site_info's ``installation_date``: the site's configured one, else ``installed_at`` (the
    gateway's first start) in the site's zone, else none (docs/api.md "site_info")."""
    if site.config.installation_date:
        return site.config.installation_date
    if installed_at is None:
        return None
    return rfc3339(installed_at, site.tz, timespec="seconds")


def site_info_body(site: Site, installed_at: datetime | None = None) -> SiteInfo:
    """site_info (docs/api.md "site_info"): settings plus components derived from capabilities.

    Nameplates and capabilities are what discovery learned (kept across restarts), so this
    answers while devices are offline; only a device never reached since install makes it 408.

    Args:
        site: the site.
        installed_at: when the gateway first started, the ``installation_date`` of a site that
            configures none.
    """
    site.require_online([d for d in site.devices if d.identity is None])
    caps = site.capabilities()
    settings = site.settings
    has_battery = Capability.BATTERY in caps
    batteries: list[BatteryComponent] = []
    inverters: list[InverterComponent] = []
    nameplate_power = 0.0
    nameplate_energy = 0.0
    for d in site.devices:
        info = d.identity
        if info is None:
            continue
        din = f"{info.manufacturer}-{info.serial_number}"
        part_name = f"{info.manufacturer} {info.model}"
        if Capability.BATTERY in d.capabilities:
            batteries.append(BatteryComponent.model_construct(
                device_id=f"{site.id}-{d.name}",
                din=din,
                serial_number=info.serial_number,
                part_number=info.model,
                part_name=part_name,
                nameplate_max_charge_power=info.max_charge_w or 0,
                nameplate_max_discharge_power=info.max_discharge_w or 0,
                nameplate_energy=info.battery_capacity_wh or 0,
            ))
            nameplate_power += info.max_discharge_w or 0.0
            nameplate_energy += info.battery_capacity_wh or 0.0
        if Capability.SOLAR in d.capabilities:
            inverters.append(InverterComponent.model_construct(
                device_id=f"{site.id}-{d.name}",
                din=din,
                part_number=info.model,
                part_name=part_name,
                site_id=_site_string_id(site),
                firmware_version=info.firmware_version,
            ))
    kinds = _kinds(caps, site)
    components = SiteComponents.model_construct(
        battery=kinds.battery,
        solar=kinds.solar,
        grid=kinds.grid,
        load_meter=kinds.load_meter,
        solar_type=kinds.solar_type,
        battery_type=kinds.battery_type,
        backup=has_battery and Capability.GRID_STATUS in caps,
        tou_capable=has_battery and bool(caps & {Capability.BATTERY_POWER,
                                                   Capability.GRID_CHARGING}),
        storm_mode_capable=has_battery and Capability.BACKUP_RESERVE in caps,
        off_grid_vehicle_charging_reserve_supported=has_battery,
        edit_setting_grid_charging=Capability.GRID_CHARGING in caps,
        edit_setting_energy_exports=Capability.EXPORT_LIMIT in caps,
        edit_setting_permission_to_export=Capability.EXPORT_LIMIT in caps,
        customer_preferred_export_rule=settings.export_rule,
        non_export_configured=settings.export_rule == "never",
        disallow_charge_from_grid_with_solar_installed=not settings.grid_charging_allowed,
        gateways=[GatewayComponent.model_construct(
            device_id=f"energy-gateway-{site.id}",
            din=f"energy-gateway-{site.id}",
            serial_number=f"EGW{site.id}",
            part_number="energy-gateway",
            part_name="energy-gateway",
            site_id=_site_string_id(site),
            firmware_version=VERSION,
        )],
        batteries=batteries,
        inverters=inverters,
        wall_connectors=wall_connector_components(site.id, site.chargers),
    )
    return SiteInfo.model_construct(
        id=_site_string_id(site),
        site_name=site.config.name,
        backup_reserve_percent=settings.backup_reserve_pct,
        default_real_mode=settings.operation_mode,
        installation_date=installation_date(site, installed_at),
        installation_time_zone=site.config.time_zone,
        user_settings=UserSettings.model_construct(
            storm_mode_enabled=settings.storm_mode_enabled,
            off_grid_vehicle_charging_enabled=settings.off_grid_ev_reserve_pct > 0,
        ),
        components=components,
        version=VERSION,
        battery_count=len(batteries),
        nameplate_power=nameplate_power,
        nameplate_energy=nameplate_energy,
        max_site_meter_power_ac=site.config.max_site_meter_power_w,
        min_site_meter_power_ac=site.config.min_site_meter_power_w,
        off_grid_vehicle_charging_reserve_percent=settings.off_grid_ev_reserve_pct,
        app_settings=APP_SETTINGS,
        tariff_content_v2=None if settings.tariff is None else settings.tariff.wire(),
    )


class BodyCache:
    """Serialised live_status bodies, one per site, rebuilt only when what they show changed.

    Clients poll live_status far more often than devices report: the body is serialised once per
    new reading, settings change or alert change, and served as bytes in between. Held by the
    app, not by the site: the site knows nothing of HTTP bodies.
    """

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, SiteSettings, int, Hashable, bytes]] = {}

    def live_status(self, site: Site) -> bytes:
        """The whole ``{"response": ...}`` body of the site's live_status (site online)."""
        cached = self._live.get(site.id)
        chargers = wall_connectors_key(site.chargers)
        if (cached is not None and cached[0] == site.telemetry_version
                and cached[1] is site.settings and cached[2] == site.storm.version
                and cached[3] == chargers):
            return cached[4]
        body = to_json(LiveStatusResponse.model_construct(response=live_status_body(site)))
        self._live[site.id] = (site.telemetry_version, site.settings, site.storm.version,
                               chargers, body)
        return body
