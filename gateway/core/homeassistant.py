"""Home Assistant MQTT discovery (pure): topics, device discovery payloads, state and command parsing."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from drivers.base import Capability
from gateway.core.errors import InvalidInput, clip, echo
from gateway.core.history.flows import FlowEnergy
from gateway.core.reading import SiteReading
from gateway.core.settings import EXPORT_RULES, OPERATION_MODES, SiteSettings

ONLINE: Final = "online"
OFFLINE: Final = "offline"
ON: Final = "ON"
OFF: Final = "OFF"
MAX_COMMAND_BYTES: Final = 64  # the longest valid command payload is a select option
MAX_REGISTRY_BYTES: Final = 64 * 1024
MAX_REGISTRY_SITES: Final = 4096
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Topics:
    """Where one gateway publishes on the broker.

    ``<base>/status`` is the gateway's availability (its last will says ``offline``);
    ``<base>/sites`` the retained list of the sites it published (how a site that left the
    config is found and removed after a restart); per site ``<base>/<id>/state`` (one JSON
    object), ``<base>/<id>/availability`` and ``<base>/<id>/set/<control>`` (commands).
    """

    discovery_prefix: str
    base: str

    @property
    def status(self) -> str:
        """The gateway's availability: ``online`` / ``offline`` (retained; the last will)."""
        return f"{self.base}/status"

    @property
    def registry(self) -> str:
        """Retained JSON list of the site ids this gateway published."""
        return f"{self.base}/sites"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last will (``online`` means: republish state)."""
        return f"{self.discovery_prefix}/status"

    @property
    def commands(self) -> str:
        """The filter matching every site's command topics."""
        return f"{self.base}/+/set/+"

    def device_id(self, site_id: int) -> str:
        """The HA device's id (the discovery topic's object id and ``dev.identifiers``)."""
        return f"{_SLUG.sub('_', self.base.lower()).strip('_') or 'energy_gateway'}_{site_id}"

    def discovery(self, site_id: int) -> str:
        """The retained device discovery topic of a site."""
        return f"{self.discovery_prefix}/device/{self.device_id(site_id)}/config"

    def state(self, site_id: int) -> str:
        """A site's state topic (retained JSON)."""
        return f"{self.base}/{site_id}/state"

    def availability(self, site_id: int) -> str:
        """A site's availability: ``online`` while every device answers."""
        return f"{self.base}/{site_id}/availability"

    def command(self, site_id: int, control: str) -> str:
        """Where Home Assistant sends a control's new value."""
        return f"{self.base}/{site_id}/set/{control}"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(site id text, control) of a command topic, None for any other topic."""
        parts = topic.split("/")
        base = self.base.split("/")
        if len(parts) != len(base) + 3 or parts[: len(base)] != base or parts[-2] != "set":
            return None
        return parts[-3], parts[-1]


@dataclass(frozen=True, slots=True)
class SiteShape:
    """What discovery needs to know of a site: its id, name, devices and capabilities."""

    site_id: int
    name: str
    devices: tuple[str, ...]
    capabilities: frozenset[Capability]

    @property
    def has_battery(self) -> bool:
        """Whether a device measures a battery (its sensors and controls are listed)."""
        return Capability.BATTERY in self.capabilities


# --------------------------------------------------------------------------- discovery

_POWER = {"device_class": "power", "state_class": "measurement", "unit_of_measurement": "W"}
_ENERGY = {"device_class": "energy", "state_class": "total_increasing",
           "unit_of_measurement": "kWh", "suggested_display_precision": 2}


def _sensor(name: str, key: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"p": "sensor", "name": name, "value_template": f"{{{{ value_json.{key} }}}}", **extra}


def _components(shape: SiteShape, topics: Topics) -> dict[str, dict[str, Any]]:
    """Each entity of the site by its component key (docs/home-assistant.md lists them)."""
    sid = shape.site_id
    battery = shape.has_battery
    bridge_only = {"availability": [{"topic": topics.status}]}
    cmps: dict[str, dict[str, Any]] = {
        "solar_power": _sensor("Solar power", "solar_w", _POWER),
        "grid_power": _sensor("Grid power", "grid_w", _POWER),
        "load_power": _sensor("Home power", "load_w", _POWER),
        "grid_status": {"p": "binary_sensor", "name": "Grid", "device_class": "power",
                        "value_template": "{{ value_json.grid }}"},
        "storm_mode_active": {"p": "binary_sensor", "name": "Storm mode active",
                              "icon": "mdi:weather-lightning",
                              "value_template": "{{ value_json.storm_mode_active }}"},
        # Energy counters come from the gateway's history: valid while a device is offline.
        "grid_import_energy": _sensor("Grid import", "grid_import_kwh", {**_ENERGY, **bridge_only}),
        "grid_export_energy": _sensor("Grid export", "grid_export_kwh", {**_ENERGY, **bridge_only}),
        "solar_energy": _sensor("Solar production", "solar_kwh", {**_ENERGY, **bridge_only}),
        "export_rule": {"p": "select", "name": "Export rule", "icon": "mdi:transmission-tower-export",
                        "options": list(EXPORT_RULES), "command_topic": topics.command(sid, "export_rule"),
                        "value_template": "{{ value_json.export_rule }}"},
    }
    if battery:
        cmps.update({
            "battery_power": _sensor("Battery power", "battery_w", _POWER),
            "battery_soc": _sensor("Battery", "soc_pct", {
                "device_class": "battery", "state_class": "measurement",
                "unit_of_measurement": "%", "suggested_display_precision": 0}),
            "battery_charged_energy": _sensor("Battery charged", "battery_charged_kwh",
                                              {**_ENERGY, **bridge_only}),
            "battery_discharged_energy": _sensor("Battery discharged", "battery_discharged_kwh",
                                                 {**_ENERGY, **bridge_only}),
            "backup_reserve": {"p": "number", "name": "Backup reserve", "icon": "mdi:battery-lock",
                               "min": 0, "max": 100, "step": 1, "mode": "slider",
                               "unit_of_measurement": "%",
                               "command_topic": topics.command(sid, "backup_reserve"),
                               "value_template": "{{ value_json.backup_reserve_pct }}"},
            "operation_mode": {"p": "select", "name": "Operation mode", "icon": "mdi:home-battery",
                               "options": list(OPERATION_MODES),
                               "command_topic": topics.command(sid, "operation_mode"),
                               "value_template": "{{ value_json.operation_mode }}"},
            "storm_mode": {"p": "switch", "name": "Storm mode", "icon": "mdi:weather-lightning-rainy",
                           "command_topic": topics.command(sid, "storm_mode"),
                           "value_template": "{{ value_json.storm_mode }}"},
            "grid_charging": {"p": "switch", "name": "Grid charging", "icon": "mdi:transmission-tower-import",
                              "command_topic": topics.command(sid, "grid_charging"),
                              "value_template": "{{ value_json.grid_charging }}"},
        })
    for index, (key, name) in enumerate(device_keys(shape.devices)):
        cmps[key] = {"p": "binary_sensor", "name": f"{name} connection",
                     "device_class": "connectivity", "entity_category": "diagnostic",
                     "value_template": f"{{{{ value_json.devices[{index}] }}}}", **bridge_only}
    for key, component in cmps.items():
        component["unique_id"] = f"{topics.device_id(sid)}_{key}"
    return cmps


def device_keys(devices: Sequence[str]) -> list[tuple[str, str]]:
    """(component key, device name) of each device's connectivity sensor, in config order."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, name in enumerate(devices):
        key = f"device_{_SLUG.sub('_', name.lower()).strip('_') or index}_connectivity"
        if key in seen:  # two names with the same slug: keep both apart
            key = f"device_{index}_connectivity"
        seen.add(key)
        out.append((key, name))
    return out


def discovery_payload(shape: SiteShape, topics: Topics, *, version: str) -> dict[str, Any]:
    """The device-based discovery payload of one site (retained at ``topics.discovery``).

    One Home Assistant device per site, its entities in ``cmps``; ``dev`` and ``o`` (origin)
    as Home Assistant requires; the state topic and availability shared by every entity (the
    energy counters and connectivity sensors depend on the gateway's availability only).
    """
    sid = shape.site_id
    return {
        "dev": {"identifiers": [topics.device_id(sid)], "name": shape.name,
                "manufacturer": "energy-gateway", "model": "Energy site",
                "serial_number": str(sid), "sw_version": version},
        "o": {"name": "energy-gateway", "sw_version": version},
        "cmps": _components(shape, topics),
        "state_topic": topics.state(sid),
        "availability": [{"topic": topics.status}, {"topic": topics.availability(sid)}],
        "availability_mode": "all",
        "qos": 1,
    }


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """A site's lifetime energy from its history, in kWh (each only ever grows)."""

    grid_import_kwh: float
    grid_export_kwh: float
    solar_kwh: float
    battery_charged_kwh: float
    battery_discharged_kwh: float

    @classmethod
    def from_flows(cls, energy: FlowEnergy) -> EnergyTotals:
        """Sum the seven flows (Wh) into the five Energy-dashboard counters (kWh)."""
        e = energy
        return cls(
            grid_import_kwh=(e.grid_to_home + e.grid_to_battery) / 1000,
            grid_export_kwh=(e.solar_to_grid + e.battery_to_grid) / 1000,
            solar_kwh=(e.solar_to_home + e.solar_to_battery + e.solar_to_grid) / 1000,
            battery_charged_kwh=(e.solar_to_battery + e.grid_to_battery) / 1000,
            battery_discharged_kwh=(e.battery_to_home + e.battery_to_grid) / 1000,
        )

    def at_least(self, floor: EnergyTotals | None) -> EnergyTotals:
        """Each counter no lower than ``floor``'s (total_increasing: a dip reads as a meter reset)."""
        if floor is None:
            return self
        return EnergyTotals(*(max(a, b) for a, b in zip(_totals(self), _totals(floor), strict=True)))


def _totals(t: EnergyTotals) -> tuple[float, ...]:
    return (t.grid_import_kwh, t.grid_export_kwh, t.solar_kwh, t.battery_charged_kwh,
            t.battery_discharged_kwh)


def _on_off(value: bool | None) -> str | None:
    return None if value is None else (ON if value else OFF)


def state_payload(
    reading: SiteReading | None, *, storm_mode_active: bool | None, settings: SiteSettings,
    devices_online: Sequence[bool], energy: EnergyTotals | None,
) -> dict[str, Any]:
    """One site's state object (``topics.state``): what every entity's template reads.

    Powers are rounded as live_status rounds them (``load_w`` = the sum of the rounded three);
    ``settings`` are the ones the devices confirmed. Unknown values are null (HA: unknown).
    """
    state: dict[str, Any] = {
        "solar_w": None, "battery_w": None, "grid_w": None, "load_w": None, "soc_pct": None,
        "grid": None, "storm_mode_active": _on_off(storm_mode_active), "timestamp": None,
    }
    if reading is not None:
        solar, battery, grid = round(reading.solar_w), round(reading.battery_w), round(reading.grid_w)
        state.update(
            solar_w=solar, battery_w=battery, grid_w=grid, load_w=solar + battery + grid,
            soc_pct=None if reading.soc_pct is None else round(reading.soc_pct, 2),
            grid=_on_off(reading.grid_up), timestamp=reading.taken_at.isoformat(),
        )
    state.update(
        backup_reserve_pct=settings.backup_reserve_pct,
        operation_mode=settings.operation_mode,
        storm_mode=_on_off(settings.storm_mode_enabled),
        grid_charging=_on_off(settings.grid_charging_allowed),
        export_rule=settings.export_rule,
        devices=[_on_off(up) for up in devices_online],
    )
    for name, value in zip(("grid_import_kwh", "grid_export_kwh", "solar_kwh",
                            "battery_charged_kwh", "battery_discharged_kwh"),
                           _totals(energy) if energy is not None else (None,) * 5, strict=True):
        state[name] = None if value is None else round(value, 3)
    return state


# --------------------------------------------------------------------------- commands

# control (the command topic's last level) -> the Fleet command it is, for the journal
CONTROLS: Final[dict[str, str]] = {
    "backup_reserve": "backup",
    "operation_mode": "operation",
    "storm_mode": "storm_mode",
    "grid_charging": "grid_import_export",
    "export_rule": "grid_import_export",
}


def _switch(control: str, text: str) -> bool:
    if text == ON:
        return True
    if text == OFF:
        return False
    raise InvalidInput(control, f"expected ON or OFF, got {echo(text)}")


def _choice(control: str, text: str, options: Sequence[str]) -> str:
    if text not in options:
        raise InvalidInput(control, f"expected one of {', '.join(options)}, got {echo(text)}")
    return text


def _percent(control: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(control, f"expected a whole number 0..100, got {echo(text)}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise InvalidInput(control, f"expected a whole number 0..100 (step 1), got {echo(text)}")
    if not 0 <= value <= 100:
        raise InvalidInput(control, f"{int(value)} is out of range 0..100")
    return int(value)


def parse_command(control: str, payload: bytes) -> dict[str, Any]:
    """The settings a Home Assistant command asks for (``SiteSettings`` field -> value).

    Raises:
        InvalidInput: an unknown control, or a payload of the wrong type or out of range
            (``field`` is the control); nothing may be written then.
    """
    if control not in CONTROLS:
        raise InvalidInput(clip(control), f"unknown control; known: {', '.join(CONTROLS)}")
    if len(payload) > MAX_COMMAND_BYTES:
        raise InvalidInput(control, f"payload of {len(payload)} bytes is too long")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(control, "payload is not UTF-8 text") from None
    if control == "backup_reserve":
        return {"backup_reserve_pct": _percent(control, text)}
    if control == "operation_mode":
        return {"operation_mode": _choice(control, text, OPERATION_MODES)}
    if control == "storm_mode":
        return {"storm_mode_enabled": _switch(control, text)}
    if control == "grid_charging":
        return {"grid_charging_allowed": _switch(control, text)}
    return {"export_rule": _choice(control, text, EXPORT_RULES)}


# --------------------------------------------------------------------------- registry


def registry_payload(site_ids: Sequence[int]) -> bytes:
    """The retained list of published sites."""
    return orjson.dumps(sorted(site_ids))


def parse_registry(payload: bytes) -> list[int]:
    """The site ids a registry message lists; bounded, and [] for anything malformed or empty."""
    if not payload or len(payload) > MAX_REGISTRY_BYTES:
        return []
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, list):
        return []
    return [i for i in data[:MAX_REGISTRY_SITES]
            if isinstance(i, int) and not isinstance(i, bool) and 1 <= i < 2**53]
