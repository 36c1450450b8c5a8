"""Pure Victron GX (dbus-flashmq) codec: topics, {"value": x} payloads, paths <-> telemetry/setpoints."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime

from drivers.base import Capability, DeviceTelemetry, Setpoints

__all__ = [
    "ACTIVE_IN_SOURCE",
    "BATTERY_LIFE_STATE",
    "BATTERY_POWER",
    "BATTERY_SOC",
    "CONSUMPTION_POWER",
    "FIRMWARE_VERSION",
    "FULL_PUBLISH_COMPLETED",
    "GONE",
    "GRID_POWER",
    "KEEPALIVE_FULL",
    "KEEPALIVE_SUPPRESS",
    "MAX_FEED_IN_POWER",
    "MIN_SOC_LIMIT",
    "PREVENT_FEEDBACK",
    "PROBE_PATH",
    "PV_ON_GRID_POWER",
    "PV_ON_OUTPUT_POWER",
    "PV_POWER",
    "SERIAL",
    "SERIAL_DISCOVERY_FILTER",
    "SOURCE_NOT_CONNECTED",
    "STATE_KEEP_CHARGED",
    "STATE_OPTIMIZED",
    "VEBUS_INSTANCE",
    "Gone",
    "JsonValue",
    "capabilities_from",
    "decode_value",
    "encode_write",
    "keepalive_topic",
    "liveness_fault",
    "n_filter",
    "n_topic",
    "outstanding_probe",
    "parse_n_topic",
    "portal_of_serial_topic",
    "r_topic",
    "same_value",
    "setpoint_writes",
    "setpoints_from",
    "telemetry_from",
    "vebus_instance_of",
    "w_topic",
]

JsonValue = int | float | str | bool | None

SERIAL = "system/0/Serial"
VEBUS_INSTANCE = "system/0/VebusInstance"  # device instance of the VE.Bus inverter/charger in use
PV_POWER = "system/0/Dc/Pv/Power"  # W, DC-coupled PV
BATTERY_POWER = "system/0/Dc/Battery/Power"  # W, + charging (Victron convention)
BATTERY_SOC = "system/0/Dc/Battery/Soc"  # %
GRID_POWER = tuple(f"system/0/Ac/Grid/L{n}/Power" for n in (1, 2, 3))  # W, + importing
CONSUMPTION_POWER = tuple(f"system/0/Ac/Consumption/L{n}/Power" for n in (1, 2, 3))  # W
PV_ON_GRID_POWER = tuple(f"system/0/Ac/PvOnGrid/L{n}/Power" for n in (1, 2, 3))  # W, AC-coupled PV
PV_ON_OUTPUT_POWER = tuple(f"system/0/Ac/PvOnOutput/L{n}/Power" for n in (1, 2, 3))  # W
ACTIVE_IN_SOURCE = "system/0/Ac/ActiveIn/Source"  # 1 grid, 240 not connected
MIN_SOC_LIMIT = "settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit"  # %, plain
BATTERY_LIFE_STATE = "settings/0/Settings/CGwacs/BatteryLife/State"  # 9 keep charged, 10 optimized
MAX_FEED_IN_POWER = "settings/0/Settings/CGwacs/MaxFeedInPower"  # W, -1 unlimited
PREVENT_FEEDBACK = "settings/0/Settings/CGwacs/PreventFeedback"  # 0/1
FIRMWARE_VERSION = "platform/0/Firmware/Installed/Version"
FULL_PUBLISH_COMPLETED = "full_publish_completed"

SOURCE_NOT_CONNECTED = 240
GRID_LOST_ALARM = 2
STATE_KEEP_CHARGED = 9
STATE_OPTIMIZED = 10  # optimized without BatteryLife
UNLIMITED_FEED_IN = -1

SERIAL_DISCOVERY_FILTER = f"N/+/{SERIAL}"
KEEPALIVE_FULL = b""  # empty payload: publish every path, then full_publish_completed
KEEPALIVE_SUPPRESS = b'{"keepalive-options": ["suppress-republish"]}'
# Read back (R/) on every keepalive cycle: the GX answers a read whether or not the value changed,
# so the answer proves it alive on a night when nothing changes. Not system/0/Serial: reading
# that is the legacy keepalive and costs a full publish.
PROBE_PATH = BATTERY_SOC


def _vebus_paths(instance: int | None) -> tuple[str, str, str]:
    """The VE.Bus unit's ``Hub4/DisableCharge`` (1 = no charging from the grid),
    ``Hub4/DisableFeedIn`` (1 = no export) and ``Alarms/GridLost`` (0 ok, 2 alarm) under
    ``vebus/<instance>/``; without a unit, paths no GX publishes."""
    if instance is None:
        return ("", "", "")
    vebus = f"vebus/{instance}"
    return f"{vebus}/Hub4/DisableCharge", f"{vebus}/Hub4/DisableFeedIn", f"{vebus}/Alarms/GridLost"


def vebus_instance_of(values: Mapping[str, JsonValue | Gone]) -> int | None:
    """The device instance of the VE.Bus unit the GX uses (``system/0/VebusInstance``), None if none.

    The instance differs between GX models and ports, so the driver learns it from the GX
    rather than assume one.
    """
    instance = _number(values.get(VEBUS_INSTANCE))
    return None if instance is None or not instance.is_integer() or instance < 0 else int(instance)


# --------------------------------------------------------------------------- topics


def n_topic(portal: str, path: str) -> str:
    """``N/<portal>/<path>``: a value the GX publishes."""
    return f"N/{portal}/{path}"


def w_topic(portal: str, path: str) -> str:
    """``W/<portal>/<path>``: a write request (never retained)."""
    return f"W/{portal}/{path}"


def r_topic(portal: str, path: str) -> str:
    """``R/<portal>/<path>``: ask the GX to republish a path or sub-tree."""
    return f"R/{portal}/{path}"


def keepalive_topic(portal: str) -> str:
    """``R/<portal>/keepalive``: keeps values flowing for 60 s."""
    return f"R/{portal}/keepalive"


def outstanding_probe(since: float | None, last_message_at: float | None, now: float) -> float:
    """When the oldest unanswered probe went out, after sending one more at ``now`` (monotonic s).

    ``since`` is the previous oldest unanswered probe (None: none yet); any message received at or
    after it answered it, and the new probe becomes the oldest.
    """
    if since is None or (last_message_at is not None and last_message_at >= since):
        return now
    return since


def liveness_fault(
    now: float,
    *,
    last_message_at: float | None,
    probe_since: float | None,
    keepalive_s: float,
    reply_timeout_s: float,
) -> str | None:
    """Why the GX counts as gone at ``now`` (monotonic s), or None while it keeps up its keepalive cycle.

    Venus publishes only changes, so silence proves nothing on a quiet night; what a live GX always
    does is answer: the driver sends a probe (keepalive + one R/ read) every ``keepalive_s`` and any
    message arriving after it is the answer. The GX is gone when the oldest unanswered probe
    (``probe_since``) has waited longer than ``reply_timeout_s``, or, when no probe is waiting for
    its answer, when nothing arrived for a whole cycle plus ``reply_timeout_s`` (the keepalive
    loop itself stalled).
    """
    if last_message_at is None:
        return "nothing received yet"
    if probe_since is not None and last_message_at < probe_since:
        # A probe is out: only its answer (or its timeout) decides. The keepalive loop may have
        # sent it late (a busy machine), which is no fault of the GX.
        if now - probe_since > reply_timeout_s:
            return f"no answer to the keepalive probe sent {now - probe_since:.1f} s ago"
        return None
    silent_s = now - last_message_at
    if silent_s > keepalive_s + reply_timeout_s:
        return f"nothing received for {silent_s:.1f} s"
    return None


def n_filter(portal: str) -> str:
    """``N/<portal>/#``: everything the GX publishes."""
    return f"N/{portal}/#"


def parse_n_topic(topic: str, portal: str) -> str | None:
    """The path of ``N/<portal>/<path>``, None for any other topic."""
    prefix = f"N/{portal}/"
    if not topic.startswith(prefix) or len(topic) == len(prefix):
        return None
    return topic[len(prefix) :]


def portal_of_serial_topic(topic: str) -> str | None:
    """The portal id in ``N/<portal>/system/0/Serial``, None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "N" or not parts[1] or "/".join(parts[2:]) != SERIAL:
        return None
    return parts[1]


# --------------------------------------------------------------------------- payloads


class Gone:
    """Marker for an empty N/ payload: the device or path vanished."""

    def __repr__(self) -> str:
        return "GONE"


GONE = Gone()


def decode_value(payload: bytes) -> JsonValue | Gone:
    """The value of an N/ payload ``{"value": x}`` (extra keys such as min/max ignored).

    An empty payload (device vanished) gives ``GONE``; ``{"value": null}`` (invalid) gives None.

    Raises:
        ValueError: not JSON, no ``value`` key, or a non-scalar value.
    """
    if not payload.strip():
        return GONE
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {payload[:60]!r}") from exc
    if not isinstance(doc, dict) or "value" not in doc:
        raise ValueError(f'no "value" key: {payload[:60]!r}')
    value = doc["value"]
    if isinstance(value, dict | list):
        raise ValueError(f"value is not a scalar: {payload[:60]!r}")  # noqa: TRY004 - bad payload
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value  # type: ignore[no-any-return]


def encode_write(value: JsonValue) -> bytes:
    """The W/ payload ``{"value": x}``; whole floats go as integers (the D-Bus type follows JSON)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps({"value": value}, separators=(",", ":")).encode()


def _number(value: JsonValue | Gone) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def same_value(expected: JsonValue, actual: JsonValue | Gone) -> bool:
    """True when an echoed value shows ``expected`` (numbers compared as numbers, 20 == 20.0)."""
    a, b = _number(expected), _number(actual)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    if a is not None or b is not None:
        return False  # a number against null, a string or a bool (True == 1 in Python)
    return type(expected) is type(actual) and expected == actual


# --------------------------------------------------------------------------- mapping


def _sum(values: Mapping[str, JsonValue | Gone], paths: tuple[str, ...]) -> float | None:
    found = [n for p in paths if (n := _number(values.get(p))) is not None]
    return sum(found) if found else None


def _published(values: Mapping[str, JsonValue | Gone], *paths: str) -> bool:
    """Whether any of ``paths`` carries a number: Venus publishes a path it has no data for as
    null (Dc/Battery/Soc without a battery monitor) and a vanished one as an empty payload."""
    return any(_number(values.get(p)) is not None for p in paths)


def _flag(value: JsonValue | Gone) -> bool | None:
    """A 0/1 or true/false reading; None when unknown (null, vanished, not a number)."""
    if isinstance(value, bool):
        return value
    number = _number(value)
    return None if number is None else number != 0


def capabilities_from(
    values: Mapping[str, JsonValue | Gone],
    *,
    vebus_instance: int | None = 227,
    storm_path: str | None = None,
) -> frozenset[Capability]:
    """What a GX publishing ``values`` (path -> value, after a full publish) measures and honours.

    A measurement counts when its path carries a number; a setpoint when the setting the driver
    writes for it does (``setpoint_writes`` writes nothing else): MinimumSocLimit for the reserve,
    the VE.Bus DisableCharge for grid charging, MaxFeedInPower for the export cap. ``storm_watch``
    only for a configured ``storm_path`` the GX publishes. ``vebus_instance`` None: no VE.Bus unit.
    """
    disable_charge, _, grid_lost = _vebus_paths(vebus_instance)
    has = {
        Capability.BATTERY: _published(values, BATTERY_SOC) and _published(values, BATTERY_POWER),
        Capability.SOLAR: _published(values, PV_POWER, *PV_ON_GRID_POWER, *PV_ON_OUTPUT_POWER),
        Capability.GRID_METER: _published(values, *GRID_POWER),
        Capability.GRID_STATUS: _published(values, ACTIVE_IN_SOURCE, grid_lost),
        Capability.BACKUP_RESERVE: _published(values, MIN_SOC_LIMIT),
        Capability.GRID_CHARGING: _published(values, disable_charge),
        Capability.EXPORT_LIMIT: _published(values, MAX_FEED_IN_POWER),
        Capability.STORM_WATCH: (
            storm_path is not None and _flag(values.get(storm_path, GONE)) is not None
        ),
    }
    return frozenset(c for c, present in has.items() if present)


def telemetry_from(
    values: Mapping[str, JsonValue | Gone],
    *,
    now: datetime,
    vebus_instance: int | None = 227,
    capacity_wh: float | None = None,
    storm_path: str | None = None,
) -> DeviceTelemetry:
    """Normalise the GX's latest N/ values (keyed by path) into telemetry.

    ``battery_w`` = -Dc/Battery/Power (Victron + charging -> gateway + discharging);
    ``grid_w`` = sum of Ac/Grid/L1..L3 (+ importing); ``solar_w`` = Dc/Pv/Power plus any AC-coupled
    PV (PvOnGrid/PvOnOutput); ``load_w`` = sum of Ac/Consumption/L1..L3; ``grid_up`` from
    Ac/ActiveIn/Source (240 = not connected), else from the VE.Bus GridLost alarm;
    ``storm_alert`` from the configured ``storm_path`` only (None without one).
    """
    battery = _number(values.get(BATTERY_POWER))
    solar_parts = [
        _number(values.get(PV_POWER)),
        _sum(values, PV_ON_GRID_POWER),
        _sum(values, PV_ON_OUTPUT_POWER),
    ]
    present = [p for p in solar_parts if p is not None]
    solar = max(0.0, sum(present)) if present else None
    source = _number(values.get(ACTIVE_IN_SOURCE))
    grid_lost = _number(values.get(_vebus_paths(vebus_instance)[2]))
    if source is not None:
        grid_up: bool | None = int(source) != SOURCE_NOT_CONNECTED
    elif grid_lost is not None:
        grid_up = int(grid_lost) != GRID_LOST_ALARM
    else:
        grid_up = None
    return DeviceTelemetry(
        taken_at=now,
        solar_w=solar,
        battery_w=None if battery is None else -battery,
        grid_w=_sum(values, GRID_POWER),
        load_w=_sum(values, CONSUMPTION_POWER),
        soc_pct=_number(values.get(BATTERY_SOC)),
        capacity_wh=capacity_wh,
        grid_up=grid_up,
        storm_alert=None if storm_path is None else _flag(values.get(storm_path, GONE)),
    )


def setpoints_from(
    values: Mapping[str, JsonValue | Gone], *, vebus_instance: int | None = 227
) -> Setpoints:
    """The setpoints the GX holds: reserve (100 while "keep batteries charged"), grid charging, export cap.

    The export cap is 0 W while PreventFeedback or DisableFeedIn is set, else MaxFeedInPower
    (None when -1 / unlimited). Settings the GX does not publish read as their neutral value.
    """
    disable_charge_path, disable_feed_in, _ = _vebus_paths(vebus_instance)
    state = _number(values.get(BATTERY_LIFE_STATE))
    if state is not None and int(state) == STATE_KEEP_CHARGED:
        reserve = 100.0
    else:
        reserve = _number(values.get(MIN_SOC_LIMIT)) or 0.0
    disable_charge = _number(values.get(disable_charge_path))
    feed_in = _number(values.get(MAX_FEED_IN_POWER))
    if _number(values.get(PREVENT_FEEDBACK)) or _number(values.get(disable_feed_in)):
        export: int | None = 0
    elif feed_in is None or feed_in < 0:
        export = None
    else:
        export = round(feed_in)
    return Setpoints(
        reserve_pct=round(reserve),
        grid_charging=disable_charge is not None and not disable_charge,
        export_limit_w=export,
    )


def setpoint_writes(
    setpoints: Setpoints, current: Mapping[str, JsonValue | Gone], *, vebus_instance: int | None = 227
) -> dict[str, JsonValue]:
    """The W/ writes (path -> value, in write order) that make the GX hold ``setpoints``.

    Only settings the GX publishes are written (``capabilities_from`` derives the setpoint
    capabilities from the same paths), and only where ``current`` differs. MaxFeedInPower goes
    before the feed-in switches, so a change never passes through "unlimited". "Keep batteries
    charged" (State 9) would hold the reserve at 100 %, so it is switched to optimized (10)
    first. The switches PreventFeedback and DisableFeedIn go along when the GX publishes them.
    """
    disable_charge, disable_feed_in, _ = _vebus_paths(vebus_instance)
    limit = setpoints.export_limit_w
    no_export = 1 if limit is not None and limit <= 0 else 0
    targets: dict[str, JsonValue] = {}
    if _published(current, MIN_SOC_LIMIT):
        state = _number(current.get(BATTERY_LIFE_STATE))
        if state is not None and int(state) == STATE_KEEP_CHARGED:
            targets[BATTERY_LIFE_STATE] = STATE_OPTIMIZED
        targets[MIN_SOC_LIMIT] = setpoints.reserve_pct
    if _published(current, disable_charge):
        targets[disable_charge] = 0 if setpoints.grid_charging else 1
    if _published(current, MAX_FEED_IN_POWER):
        targets[MAX_FEED_IN_POWER] = UNLIMITED_FEED_IN if limit is None else max(0, limit)
        for switch in (PREVENT_FEEDBACK, disable_feed_in):
            if _published(current, switch):
                targets[switch] = no_export
    return {p: v for p, v in targets.items() if p not in current or not same_value(v, current[p])}
