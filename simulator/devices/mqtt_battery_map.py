"""Pure map of the generic MQTT battery: truth -> JSON state, and set/* commands -> firmware settings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from simulator.physics import FirmwareSettings, HomeTruth, with_export_limit_w

AVAILABLE = b"online"
NOT_AVAILABLE = b"offline"
#: Commands under `<base>/set/`.
COMMANDS = ("reserve", "grid_charging", "export_limit")
#: Largest export limit accepted, in W.
MAX_EXPORT_LIMIT_W = 100_000


def availability_topic(base: str) -> str:
    """`<base>/availability` (retained "online" / "offline", the latter as the will)."""
    return f"{base}/availability"


def state_topic(base: str) -> str:
    """`<base>/state` (JSON, not retained)."""
    return f"{base}/state"


def command_filter(base: str) -> str:
    """`<base>/set/+`, the filter the battery subscribes to."""
    return f"{base}/set/+"


def state_document(truth: HomeTruth) -> dict[str, float | bool | None]:
    """The state JSON for this truth.

    Keys: soc (%), power (W, + discharging = the home's battery_w), reserve (%), grid_charging,
    export_limit (W or null = unlimited).
    """
    limit = truth.export_limit_w
    return {
        "soc": round(truth.soc_pct, 1),
        "power": round(truth.battery_w, 1),
        "reserve": round(truth.reserve_pct, 1),
        "grid_charging": truth.grid_charging,
        "export_limit": None if limit is None else round(limit, 1),
    }


def encode_state(truth: HomeTruth) -> bytes:
    """The `<base>/state` payload."""
    return json.dumps(state_document(truth), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class CommandIgnored:
    """A command the battery ignores, and why."""

    reason: str


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def apply_command(
    firmware: FirmwareSettings, command: str, payload: bytes, *, inverter_max_w: float
) -> FirmwareSettings | CommandIgnored:
    """Validate a `<base>/set/<command>` payload and return the firmware it puts in force.

    Commands: reserve (JSON number 0..100), grid_charging (JSON true/false), export_limit
    (JSON number 0..MAX_EXPORT_LIMIT_W in W, or null = unlimited).
    """
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return CommandIgnored(f"set/{command}: payload is not JSON")
    if command == "reserve":
        x = _number(value)
        if x is None or not 0 <= x <= 100:
            return CommandIgnored(f"set/reserve: {value!r} not a number within 0..100")
        return replace(firmware, reserve_pct=x)
    if command == "grid_charging":
        if not isinstance(value, bool):
            return CommandIgnored(f"set/grid_charging: {value!r} not true/false")
        return replace(firmware, grid_charging=value)
    if command == "export_limit":
        if value is None:
            return with_export_limit_w(firmware, None, inverter_max_w)
        x = _number(value)
        if x is None or not 0 <= x <= MAX_EXPORT_LIMIT_W:
            return CommandIgnored(
                f"set/export_limit: {value!r} not null or a number within 0..{MAX_EXPORT_LIMIT_W}"
            )
        return with_export_limit_w(firmware, x, inverter_max_w)
    return CommandIgnored(f"unknown command set/{command}")
