"""Pure Victron GX map: physics truth -> dbus-flashmq topic values, writes, keepalive, Modbus registers.

Paths are "<service>/<instance>/<D-Bus path>" as in `N/<portal>/<service>/<instance>/<path>`; values
are what Venus OS carries on MQTT (SI units, % as 0..100, Victron's signs: battery power + charging,
grid power + importing). Settings the GX keeps beyond the shared firmware (BatteryLife state, the
three feed-in switches as written) live in `GxSettings`, reconciled with the firmware whenever
another face of the same home changed it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from simulator.physics import FirmwareSettings, HomeTruth, with_export_limit_w

JsonValue = int | float | str | bool | None

SYSTEM = "system/0"
SETTINGS = "settings/0"
PLATFORM = "platform/0"

SERIAL = f"{SYSTEM}/Serial"
VEBUS_INSTANCE = f"{SYSTEM}/VebusInstance"  # systemcalc: the VE.Bus unit in use
PV_POWER = f"{SYSTEM}/Dc/Pv/Power"
BATTERY_POWER = f"{SYSTEM}/Dc/Battery/Power"
BATTERY_SOC = f"{SYSTEM}/Dc/Battery/Soc"
GRID_POWER = tuple(f"{SYSTEM}/Ac/Grid/L{n}/Power" for n in (1, 2, 3))
CONSUMPTION_POWER = tuple(f"{SYSTEM}/Ac/Consumption/L{n}/Power" for n in (1, 2, 3))
ACTIVE_IN_SOURCE = f"{SYSTEM}/Ac/ActiveIn/Source"
MIN_SOC_LIMIT = f"{SETTINGS}/Settings/CGwacs/BatteryLife/MinimumSocLimit"
BATTERY_LIFE_STATE = f"{SETTINGS}/Settings/CGwacs/BatteryLife/State"
HUB4_MODE = f"{SETTINGS}/Settings/CGwacs/Hub4Mode"
MAX_FEED_IN_POWER = f"{SETTINGS}/Settings/CGwacs/MaxFeedInPower"
PREVENT_FEEDBACK = f"{SETTINGS}/Settings/CGwacs/PreventFeedback"
STORM_ALERT = f"{PLATFORM}/StormAlert"
FULL_PUBLISH_COMPLETED = "full_publish_completed"

SOURCE_GRID = 1
SOURCE_NOT_CONNECTED = 240
GRID_LOST_ALARM = 2
STATE_KEEP_CHARGED = 9
STATE_OPTIMIZED = 10  # optimized without BatteryLife
#: Largest MaxFeedInPower accepted on a write, in W (a three-phase 100 kW installation).
MAX_FEED_IN_LIMIT_W = 100_000
_EPS = 1e-6


def disable_charge_path(vebus_instance: int) -> str:
    """`vebus/<instance>/Hub4/DisableCharge` (1 = no charging from the grid)."""
    return f"vebus/{vebus_instance}/Hub4/DisableCharge"


def disable_feed_in_path(vebus_instance: int) -> str:
    """`vebus/<instance>/Hub4/DisableFeedIn` (1 = no export)."""
    return f"vebus/{vebus_instance}/Hub4/DisableFeedIn"


def grid_lost_path(vebus_instance: int) -> str:
    """`vebus/<instance>/Alarms/GridLost` (0 ok, 2 alarm)."""
    return f"vebus/{vebus_instance}/Alarms/GridLost"


# --- settings the GX holds ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GxSettings:
    """ESS settings as the GX stores them (what W/ wrote, what N/ echoes).

    Attributes:
        min_soc_limit_pct: MinimumSocLimit, % (the reserve unless state is 9).
        battery_life_state: BatteryLife/State; 9 = keep batteries charged (reserve held at 100 %),
            anything else = optimized (reserve = min_soc_limit_pct).
        hub4_mode: Hub4Mode (1/2 ESS with/without phase compensation, 3 external control); stored.
        max_feed_in_w: MaxFeedInPower in W; -1 = unlimited.
        prevent_feedback: PreventFeedback 0/1; 1 = no export (export cap 0).
        disable_charge: vebus Hub4/DisableCharge 0/1; 1 = no charging from the grid.
        disable_feed_in: vebus Hub4/DisableFeedIn 0/1; 1 = no export (export cap 0).
    """

    min_soc_limit_pct: float = 10.0
    battery_life_state: int = STATE_OPTIMIZED
    hub4_mode: int = 1
    max_feed_in_w: float = -1
    prevent_feedback: int = 0
    disable_charge: int = 1
    disable_feed_in: int = 0

    def export_limit_w(self) -> float | None:
        """The export cap these settings impose, in W; None = unlimited."""
        if self.prevent_feedback or self.disable_feed_in:
            return 0.0
        return None if self.max_feed_in_w < 0 else float(self.max_feed_in_w)


def firmware_from_gx(
    gx: GxSettings, firmware: FirmwareSettings, inverter_max_w: float
) -> FirmwareSettings:
    """The firmware settings the GX settings ask for, other fields taken from `firmware`."""
    reserve = 100.0 if gx.battery_life_state == STATE_KEEP_CHARGED else gx.min_soc_limit_pct
    fw = replace(firmware, reserve_pct=reserve, grid_charging=not gx.disable_charge)
    return with_export_limit_w(fw, gx.export_limit_w(), inverter_max_w)


def _export_differs(a: FirmwareSettings, b: FirmwareSettings) -> bool:
    if a.export_limit_enabled != b.export_limit_enabled:
        return True
    return a.export_limit_enabled and abs(a.export_limit_pct - b.export_limit_pct) > _EPS


def reconcile(gx: GxSettings, firmware: FirmwareSettings, inverter_max_w: float) -> GxSettings:
    """GX settings consistent with `firmware`: unchanged where they agree, re-derived where not.

    The firmware is the home's single source of truth; when another face (SunSpec, a control
    command) changed it, the GX shows the new reserve / grid charging / export cap the way a GX
    would hold them (optimized mode, plain MaxFeedInPower, switches off).
    """
    want = firmware_from_gx(gx, firmware, inverter_max_w)
    if abs(want.reserve_pct - firmware.reserve_pct) > _EPS:
        state = gx.battery_life_state
        gx = replace(
            gx,
            min_soc_limit_pct=firmware.reserve_pct,
            battery_life_state=STATE_OPTIMIZED if state == STATE_KEEP_CHARGED else state,
        )
    if want.grid_charging != firmware.grid_charging:
        gx = replace(gx, disable_charge=int(not firmware.grid_charging))
    if _export_differs(want, firmware):
        limit = (
            firmware.export_limit_pct / 100 * inverter_max_w
            if firmware.export_limit_enabled
            else -1.0
        )
        gx = replace(gx, max_feed_in_w=limit, prevent_feedback=0, disable_feed_in=0)
    return gx


def initial_settings(firmware: FirmwareSettings, inverter_max_w: float) -> GxSettings:
    """GX settings matching the firmware a home starts with."""
    return reconcile(GxSettings(), firmware, inverter_max_w)


# --- topic values ------------------------------------------------------------------------------


def _num(x: float) -> int | float:
    """A setting as Venus carries it: integral values as JSON integers."""
    return int(x) if float(x).is_integer() else float(x)


def split_phases(total_w: float) -> tuple[int, int, int]:
    """Split a power evenly over three phases in whole W; the parts sum to round(total_w)."""
    part = round(total_w / 3)
    return round(total_w) - 2 * part, part, part


def topic_values(
    truth: HomeTruth, gx: GxSettings, *, portal_id: str, vebus_instance: int
) -> dict[str, JsonValue]:
    """Every published path and its value for this truth and these settings.

    Powers in whole W; battery power + = charging (Victron); grid per phase + = importing.
    """
    grid = split_phases(truth.grid_w)
    load = split_phases(truth.load_w)
    values: dict[str, JsonValue] = {
        SERIAL: portal_id,
        VEBUS_INSTANCE: vebus_instance,
        PV_POWER: round(truth.solar_w),
        BATTERY_POWER: round(-truth.battery_w),
        BATTERY_SOC: round(truth.soc_pct, 1),
        ACTIVE_IN_SOURCE: SOURCE_GRID if truth.grid_up else SOURCE_NOT_CONNECTED,
        MIN_SOC_LIMIT: _num(gx.min_soc_limit_pct),
        BATTERY_LIFE_STATE: gx.battery_life_state,
        HUB4_MODE: gx.hub4_mode,
        MAX_FEED_IN_POWER: _num(round(gx.max_feed_in_w, 3)),
        PREVENT_FEEDBACK: gx.prevent_feedback,
        disable_charge_path(vebus_instance): gx.disable_charge,
        disable_feed_in_path(vebus_instance): gx.disable_feed_in,
        grid_lost_path(vebus_instance): 0 if truth.grid_up else GRID_LOST_ALARM,
        STORM_ALERT: int(truth.storm_alert),
    }
    for path, watts in zip(GRID_POWER, grid, strict=True):
        values[path] = watts
    for path, watts in zip(CONSUMPTION_POWER, load, strict=True):
        values[path] = watts
    return values


def changed_values(
    previous: Mapping[str, JsonValue], current: Mapping[str, JsonValue]
) -> dict[str, JsonValue]:
    """Paths whose value differs from what was last published (new paths included)."""
    return {p: v for p, v in current.items() if p not in previous or previous[p] != v}


def select_paths(values: Mapping[str, JsonValue], prefix: str) -> dict[str, JsonValue]:
    """The values an `R/<portal>/<prefix>` request re-publishes: the path itself or its sub-tree."""
    prefix = prefix.strip("/")
    return {p: v for p, v in values.items() if p == prefix or p.startswith(prefix + "/")}


def encode_value(value: JsonValue) -> bytes:
    """The N/ payload `{"value": x}`."""
    return json.dumps({"value": value}, separators=(",", ":")).encode()


# --- writes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteAccepted:
    """A valid write: the GX's new settings and the firmware they put in force."""

    gx: GxSettings
    firmware: FirmwareSettings


@dataclass(frozen=True, slots=True)
class WriteIgnored:
    """A write the GX ignores, and why."""

    reason: str


WriteResult = WriteAccepted | WriteIgnored


def decode_write_payload(payload: bytes) -> JsonValue | WriteIgnored:
    """The value of a W/ payload `{"value": x}`, or why it is unusable."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return WriteIgnored("payload is not JSON")
    if not isinstance(doc, dict) or "value" not in doc:
        return WriteIgnored('payload has no "value" key')
    value = doc["value"]
    if isinstance(value, (dict, list)):
        return WriteIgnored("value must be a scalar")
    return value  # type: ignore[no-any-return]


def _number(value: JsonValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: JsonValue, allowed: frozenset[int]) -> int | None:
    x = _number(value)
    if x is None or not x.is_integer() or int(x) not in allowed:
        return None
    return int(x)


_SWITCH = frozenset({0, 1})
_STATES = frozenset(range(1, 13))
_HUB4_MODES = frozenset({1, 2, 3})


def apply_write(
    gx: GxSettings,
    firmware: FirmwareSettings,
    path: str,
    value: JsonValue,
    *,
    vebus_instance: int,
    inverter_max_w: float,
) -> WriteResult:
    """Validate a W/ write of `value` to `path` ("<service>/<instance>/<D-Bus path>").

    Writable: MinimumSocLimit (0..100 %), BatteryLife/State (1..12), Hub4Mode (1..3),
    MaxFeedInPower (-1 or 0..MAX_FEED_IN_LIMIT_W), PreventFeedback, vebus DisableCharge and
    DisableFeedIn (0/1). Booleans are not numbers here, as on D-Bus.

    Args:
        gx: Current GX settings, already reconciled with `firmware`.
        firmware: The home's firmware settings now.
    """
    if path == MIN_SOC_LIMIT:
        x = _number(value)
        if x is None or not 0 <= x <= 100:
            return WriteIgnored(f"MinimumSocLimit {value!r} not a number within 0..100")
        new = replace(gx, min_soc_limit_pct=x)
    elif path == BATTERY_LIFE_STATE:
        state = _integer(value, _STATES)
        if state is None:
            return WriteIgnored(f"BatteryLife/State {value!r} not within 1..12")
        new = replace(gx, battery_life_state=state)
    elif path == HUB4_MODE:
        mode = _integer(value, _HUB4_MODES)
        if mode is None:
            return WriteIgnored(f"Hub4Mode {value!r} not 1, 2 or 3")
        new = replace(gx, hub4_mode=mode)
    elif path == MAX_FEED_IN_POWER:
        x = _number(value)
        if x is None or not (x == -1 or 0 <= x <= MAX_FEED_IN_LIMIT_W):
            return WriteIgnored(f"MaxFeedInPower {value!r} not -1 or 0..{MAX_FEED_IN_LIMIT_W}")
        new = replace(gx, max_feed_in_w=x)
    elif path in {PREVENT_FEEDBACK, disable_charge_path(vebus_instance),
                  disable_feed_in_path(vebus_instance)}:  # fmt: skip
        flag = _integer(value, _SWITCH)
        if flag is None:
            return WriteIgnored(f"{path} {value!r} not 0 or 1")
        if path == PREVENT_FEEDBACK:
            new = replace(gx, prevent_feedback=flag)
        elif path == disable_charge_path(vebus_instance):
            new = replace(gx, disable_charge=flag)
        else:
            new = replace(gx, disable_feed_in=flag)
    else:
        return WriteIgnored(f"{path} is not writable")
    return WriteAccepted(new, firmware_from_gx(new, firmware, inverter_max_w))


# --- keepalive ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Whether values flow: until when (monotonic seconds) the last keepalive holds; None = never."""

    alive_until: float | None = None

    def alive(self, now: float) -> bool:
        """True while values are published."""
        return self.alive_until is not None and now < self.alive_until


@dataclass(frozen=True, slots=True)
class KeepaliveRequest:
    """What one `R/<portal>/keepalive` asks for.

    Attributes:
        full_publish: Publish every path, then full_publish_completed.
        echo: Token to echo in full_publish_completed (Venus >= 3.50 option), or None.
    """

    full_publish: bool
    echo: str | None = None


def parse_keepalive(payload: bytes) -> KeepaliveRequest:
    """Read a keepalive payload: empty or unknown = full publish; suppress-republish = extend only."""
    if not payload.strip():
        return KeepaliveRequest(full_publish=True)
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return KeepaliveRequest(full_publish=True)
    options = doc.get("keepalive-options") if isinstance(doc, dict) else None
    if not isinstance(options, list):
        return KeepaliveRequest(full_publish=True)
    echo: str | None = None
    for opt in options:
        if isinstance(opt, dict) and isinstance(opt.get("full-publish-completed-echo"), str):
            echo = opt["full-publish-completed-echo"]
    return KeepaliveRequest(full_publish="suppress-republish" not in options, echo=echo)


def on_keepalive(
    state: Keepalive, payload: bytes, *, now: float, timeout_s: float
) -> tuple[Keepalive, KeepaliveRequest]:
    """A keepalive arrived at monotonic time `now`: extend publishing and say what to publish."""
    del state  # every keepalive restarts the full timeout, whatever came before
    return Keepalive(now + timeout_s), parse_keepalive(payload)


def full_publish_completed(unix_now: float, echo: str | None = None) -> bytes:
    """The `N/<portal>/full_publish_completed` payload (`now` in Unix seconds)."""
    doc: dict[str, JsonValue] = {"value": int(unix_now)}
    if echo is not None:
        doc["full-publish-completed-echo"] = echo
    return json.dumps(doc, separators=(",", ":")).encode()


# --- Modbus TCP face (dbus_modbustcp registers) ------------------------------------------------

UNIT_SYSTEM = 100


def _u16(x: float) -> int:
    return max(0, min(0xFFFF, round(x)))


def _s16(x: float) -> int:
    return max(-0x8000, min(0x7FFF, round(x))) & 0xFFFF


def _signed(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def system_registers(truth: HomeTruth, gx: GxSettings) -> dict[int, int]:
    """Unit 100 registers (raw uint16 words) served: live status and ESS settings.

    Scales per dbus_modbustcp: 2901 MinimumSocLimit x10; 2706 MaxFeedInPower x0.01 (100 W units),
    with -1 (0xFFFF) = unlimited kept as -1.
    """
    grid = split_phases(truth.grid_w)
    load = split_phases(truth.load_w)
    return {
        817: _u16(load[0]), 818: _u16(load[1]), 819: _u16(load[2]),
        820: _s16(grid[0]), 821: _s16(grid[1]), 822: _s16(grid[2]),
        826: SOURCE_GRID if truth.grid_up else SOURCE_NOT_CONNECTED,
        842: _s16(-truth.battery_w),
        843: _u16(truth.soc_pct),
        850: _u16(truth.solar_w),
        2706: 0xFFFF if gx.max_feed_in_w < 0 else _s16(gx.max_feed_in_w / 100),
        2708: gx.prevent_feedback,
        2900: gx.battery_life_state,
        2901: _u16(gx.min_soc_limit_pct * 10),
        2902: gx.hub4_mode,
    }  # fmt: skip


def vebus_registers(truth: HomeTruth, gx: GxSettings) -> dict[int, int]:
    """VE.Bus unit registers (raw words): 38 DisableCharge, 39 DisableFeedIn, 64 GridLost."""
    return {38: gx.disable_charge, 39: gx.disable_feed_in, 64: 0 if truth.grid_up else GRID_LOST_ALARM}


#: Writable holding registers of unit 100 and of the VE.Bus unit.
SYSTEM_WRITABLE = frozenset({2706, 2708, 2900, 2901, 2902})
VEBUS_WRITABLE = frozenset({38, 39})


def register_write(address: int, raw: int, *, vebus: bool, vebus_instance: int) -> tuple[str, JsonValue]:
    """The D-Bus path and value a Modbus register write means (raw = the uint16 word).

    Raises:
        KeyError: the register is not writable on that unit.
    """
    if vebus:
        if address not in VEBUS_WRITABLE:
            raise KeyError(address)
        path = disable_charge_path(vebus_instance) if address == 38 else disable_feed_in_path(vebus_instance)
        return path, raw
    match address:
        case 2706:
            value = _signed(raw)
            return MAX_FEED_IN_POWER, -1 if value == -1 else value * 100
        case 2708:
            return PREVENT_FEEDBACK, raw
        case 2900:
            return BATTERY_LIFE_STATE, raw
        case 2901:
            return MIN_SOC_LIMIT, _num(raw / 10)
        case 2902:
            return HUB4_MODE, raw
    raise KeyError(address)
