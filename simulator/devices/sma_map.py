"""Pure register map of an SMA Sunny Boy Storage (SBS 3.7/5.0/6.0) battery inverter.

Written from SMA's documents, not from any driver profile: "SMA Modbus Interface" technical
information (SMA_Modbus-TI-en, the SMA Modbus profile) and the register list of the SBS
("MODBUS-HTML_SBS3.7-6.0"), as cited by evcc's ``sma-sbs-modbus`` template:

- unit id 3 (the SMA Modbus profile's first device), registers read with FC3 or FC4 alike;
- 30231 the device's maximum active power: for a battery inverter, its battery power;
- every value is 32 or 64 bits, high word first: U32, S32, U64, ENUM (U32);
- "not available" is a sentinel, never a number: U32 and ENUM 0xFFFFFFFF, S32 0x80000000,
  U64 0xFFFFFFFFFFFFFFFF; the AC power reads NaN while the battery inverter stands by
  (as an SMA PV inverter does at night), the grid powers read NaN without an energy meter;
- addresses the list does not define answer exception 2, also inside a longer read (a reader
  must not read across gaps); values are written whole with FC16: half of a 32-bit value, a
  read-only address or an FC6 answer exception 2, a value outside the documented range 3;
- battery control through the BMS operating mode 40236 (2424 default, 2289 charge, 2290
  discharge) and the power limits 40793-40799 and grid setpoint 40801.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from simulator.physics import FirmwareSettings, HomeTruth

UNIT_ID = 3

NAN_U32 = 0xFFFFFFFF
NAN_S32 = 0x80000000
NAN_U64 = 0xFFFFFFFFFFFFFFFF


class Exc(enum.IntEnum):
    """Modbus exception codes the device answers with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3


class OpMode(enum.IntEnum):
    """40236 CmpBMS.OpMod: operating mode of the battery management."""

    DEFAULT = 2424  # Dft: self-consumption within the power limits
    CHARGE = 2289  # BatChaMod: charge with at least BatChaMinW, at most BatChaMaxW
    DISCHARGE = 2290  # BatDschMod: discharge with at least BatDschMinW, at most BatDschMaxW


DEVICE_CLASS_BATTERY_INVERTER = 8007
HEALTH_OK = 307
GRID_RELAY_CLOSED = 51
GRID_RELAY_OPEN = 311


@dataclass(frozen=True, slots=True)
class Register:
    """One documented register: address, SMA data type, writable or not."""

    address: int
    name: str
    kind: str  # "U32", "S32", "U64", "ENUM"
    writable: bool = False

    @property
    def size(self) -> int:
        return 4 if self.kind == "U64" else 2


REGISTERS: tuple[Register, ...] = (
    Register(30051, "device_class", "ENUM"),
    Register(30053, "device_type", "ENUM"),
    Register(30057, "serial_number", "U32"),
    Register(30059, "software_package", "U32"),
    Register(30201, "health", "ENUM"),
    Register(30231, "max_power_w", "U32"),  # maximum active power of the device
    Register(30217, "grid_relay", "ENUM"),
    Register(30513, "total_yield_wh", "U64"),  # Metering.TotWhOut: energy out of the battery
    Register(30581, "grid_import_wh", "U32"),  # Metering.GridMs.TotWhIn
    Register(30583, "grid_export_wh", "U32"),  # Metering.GridMs.TotWhOut
    Register(30595, "charged_wh", "U32"),
    Register(30597, "discharged_wh", "U32"),
    Register(30775, "ac_power_w", "S32"),  # + discharging, - charging
    Register(30845, "soc_pct", "U32"),
    Register(30849, "battery_temp_dc", "S32"),  # 0.1 degC
    Register(30851, "battery_v_cv", "U32"),  # 0.01 V
    Register(30865, "grid_draw_w", "U32"),  # Metering.GridMs.TotWIn
    Register(30867, "grid_feed_w", "U32"),  # Metering.GridMs.TotWOut
    Register(31393, "charge_w", "U32"),
    Register(31395, "discharge_w", "U32"),
    Register(40236, "op_mode", "ENUM", writable=True),
    Register(40793, "charge_min_w", "U32", writable=True),
    Register(40795, "charge_max_w", "U32", writable=True),
    Register(40797, "discharge_min_w", "U32", writable=True),
    Register(40799, "discharge_max_w", "U32", writable=True),
    Register(40801, "grid_setpoint_w", "S32", writable=True),
)
_AT: Mapping[int, tuple[Register, int]] = {
    r.address + i: (r, i) for r in REGISTERS for i in range(r.size)
}
_NAN: Mapping[str, int] = {"U32": NAN_U32, "ENUM": NAN_U32, "S32": NAN_S32, "U64": NAN_U64}


@dataclass(frozen=True, slots=True, kw_only=True)
class SmaPlate:
    """Identity and ratings of the simulated Sunny Boy Storage."""

    device_type: int
    serial_number: int
    firmware: str  # "major.minor.build"
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    energy_meter: bool  # an SMA Energy Meter at the grid point (else grid readings are NaN)


@dataclass(frozen=True, slots=True)
class BmsSettings:
    """The writable BMS registers (40236, 40793-40801); factory values need the plate."""

    op_mode: int
    charge_min_w: int
    charge_max_w: int
    discharge_min_w: int
    discharge_max_w: int
    grid_setpoint_w: int = 0


def factory_settings(plate: SmaPlate) -> BmsSettings:
    """Default operation within the full power ratings."""
    return BmsSettings(OpMode.DEFAULT, 0, round(plate.max_charge_w), 0, round(plate.max_discharge_w))


def software_package(version: str) -> int:
    """SMA's software package word: major, minor, build bytes and the release type (4 = R)."""
    parts = [int(p) for p in [*version.split("."), "0", "0"][:3]]
    major, minor, build = (max(0, min(255, p)) for p in parts)
    return (major << 24) | (minor << 16) | (build << 8) | 4


# Below this the battery inverter stands by and reports no AC power (NaN).
STANDBY_W = 1.0


def values(plate: SmaPlate, settings: BmsSettings, truth: HomeTruth) -> dict[str, int | None]:
    """Raw register values by name; None = not available (served as the type's NaN)."""
    battery_w = truth.battery_w
    meter = plate.energy_meter
    return {
        "device_class": DEVICE_CLASS_BATTERY_INVERTER,
        "device_type": plate.device_type,
        "serial_number": plate.serial_number,
        "software_package": software_package(plate.firmware),
        "health": HEALTH_OK,
        "max_power_w": round(max(plate.max_charge_w, plate.max_discharge_w)),
        "grid_relay": GRID_RELAY_CLOSED if truth.grid_up else GRID_RELAY_OPEN,
        "total_yield_wh": round(truth.battery_discharge_wh),
        "grid_import_wh": round(truth.grid_import_wh) if meter else None,
        "grid_export_wh": round(truth.grid_export_wh) if meter else None,
        "charged_wh": round(truth.battery_charge_wh),
        "discharged_wh": round(truth.battery_discharge_wh),
        "ac_power_w": round(battery_w) if abs(battery_w) >= STANDBY_W else None,
        "soc_pct": round(truth.soc_pct),
        "battery_temp_dc": 250,
        "battery_v_cv": 40000,
        "grid_draw_w": round(max(0.0, truth.grid_w)) if meter else None,
        "grid_feed_w": round(max(0.0, -truth.grid_w)) if meter else None,
        "charge_w": round(max(0.0, -battery_w)),
        "discharge_w": round(max(0.0, battery_w)),
        "op_mode": settings.op_mode,
        "charge_min_w": settings.charge_min_w,
        "charge_max_w": settings.charge_max_w,
        "discharge_min_w": settings.discharge_min_w,
        "discharge_max_w": settings.discharge_max_w,
        "grid_setpoint_w": settings.grid_setpoint_w,
    }


def _words(reg: Register, raw: int | None) -> list[int]:
    value = _NAN[reg.kind] if raw is None else raw & ((1 << (16 * reg.size)) - 1)
    return [(value >> (16 * (reg.size - 1 - i))) & 0xFFFF for i in range(reg.size)]


def read_registers(
    plate: SmaPlate, settings: BmsSettings, truth: HomeTruth, address: int, count: int
) -> list[int] | Exc:
    """FC3/FC4 from ``address``: every register must be documented (no gaps), else exception 2."""
    if any(a not in _AT for a in range(address, address + count)):
        return Exc.ILLEGAL_ADDRESS
    raw = values(plate, settings, truth)
    out: list[int] = []
    for a in range(address, address + count):
        reg, i = _AT[a]
        out.append(_words(reg, raw[reg.name])[i])
    return out


def _range(name: str, plate: SmaPlate) -> tuple[int, int]:
    if name in {"charge_min_w", "charge_max_w"}:
        return 0, round(plate.max_charge_w)
    if name in {"discharge_min_w", "discharge_max_w"}:
        return 0, round(plate.max_discharge_w)
    limit = round(max(plate.max_charge_w, plate.max_discharge_w))  # grid_setpoint_w
    return -limit, limit


def write_registers(
    plate: SmaPlate, settings: BmsSettings, address: int, registers: list[int]
) -> BmsSettings | Exc:
    """An FC16 write: whole writable registers only, every value in range; all or nothing."""
    changes: dict[str, int] = {}
    i = 0
    while i < len(registers):
        hit = _AT.get(address + i)
        if hit is None or not hit[0].writable or hit[1] != 0 or i + hit[0].size > len(registers):
            return Exc.ILLEGAL_ADDRESS
        reg = hit[0]
        raw = (registers[i] << 16) | registers[i + 1]
        if raw == _NAN[reg.kind]:
            return Exc.ILLEGAL_VALUE
        if reg.kind == "S32" and raw >= 1 << 31:
            raw -= 1 << 32
        if reg.name == "op_mode":
            if raw not in set(OpMode):
                return Exc.ILLEGAL_VALUE
        else:
            lo, hi = _range(reg.name, plate)
            if not lo <= raw <= hi:
                return Exc.ILLEGAL_VALUE
        changes[reg.name] = raw
        i += reg.size
    return replace(settings, **changes)


def firmware_for(settings: BmsSettings, plate: SmaPlate, reserve_pct: float) -> FirmwareSettings:
    """The physics' firmware settings for what the BMS registers hold.

    Default: self-consumption with charging capped at BatChaMaxW; BatDschMaxW 0 holds the
    battery (no discharge while the grid is up). Charge / discharge: a forced power, the
    maximum of the mode's limits (the BMS runs between minimum and maximum; with the grid
    available it takes the maximum). No revert timeout: the setting stays until rewritten.
    """
    fw = FirmwareSettings(max_charge_w=plate.max_charge_w, reserve_pct=reserve_pct)
    match settings.op_mode:
        case OpMode.CHARGE:
            pct = 100 * settings.charge_max_w / plate.max_charge_w
            return replace(fw, storage_mode=1, charge_rate_pct=pct, grid_charging=True)
        case OpMode.DISCHARGE:
            pct = 100 * settings.discharge_max_w / plate.max_discharge_w
            return replace(fw, storage_mode=2, discharge_rate_pct=pct)
    fw = replace(fw, max_charge_w=float(settings.charge_max_w))
    if settings.discharge_max_w == 0:
        return replace(fw, reserve_pct=100.0)
    return fw
