"""Pure register map of a SolarEdge StorEdge inverter: SunSpec readings and the 0xE000 storage block.

Written from SolarEdge's documents, not from any driver profile:

- "SunSpec Implementation Technical Note" (SolarEdge, version 2.x): base 40000, "SunS", common
  model 1 with L = 65 (no pad register, unlike the SunSpec JSON's 66), inverter model 103 at
  40069, meter common model at 40121 and meter model 203 at 40188 (data from 40190), end marker
  at 40295. Inverter power and meter power carry scale factors read in the same block; the
  inverter's ``W_SF``/``DCW_SF`` change with the value (as on the real inverter, so a reader must
  take value and factor from one read). The meter's power is positive when exporting.
- "Power Control Open Protocol for SolarEdge Inverters" / "StorEdge Remote Control" technical
  note: the export-control and storage-control block at 0xE000-0xE011 and battery 1 at 0xE100.
  32-bit values there (F32, U32, U64) are sent low word first.

Behaviour (docs/simulator.md, "SolarEdge StorEdge"): storage commands act only while the
storage control mode (0xE004) is 4 (remote control); a remote command reverts to the default
mode (0xE00A) when its timeout (0xE00B) lapses in simulated time; writes outside the documented
values answer exception 3, writes to anything but the 0xE000 block or half of a 32-bit value
answer exception 2.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from simulator.devices.sunspec_map import (
    NOMINAL_AC_V,
    NOMINAL_BATTERY_V,
    NOMINAL_HZ,
    NOMINAL_LL_V,
    Layout,
    ModelLayout,
    build_layout,
)
from simulator.physics import FirmwareSettings, HomeTruth, with_export_limit_w

SUNSPEC_BASE = 40000
COMMON_ADDRESS = 40002  # model 1 ID register
INVERTER_ADDRESS = 40069  # model 103 ID register
METER_COMMON_ADDRESS = 40121
METER_ADDRESS = 40188  # model 203 ID register
END_ADDRESS = 40295
COMMON_LENGTH = 65  # SolarEdge's model 1 has no pad register

STORAGE_BASE = 0xE000
BATTERY_BASE = 0xE100
BATTERY_LENGTH = 0x88  # through 0xE187 (status)

NOT_IMPLEMENTED_F32 = 0x7FC00000  # a quiet NaN


class Exc(enum.IntEnum):
    """Modbus exception codes the inverter answers with."""

    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3


class ControlMode(enum.IntEnum):
    """0xE004 storage control mode."""

    DISABLED = 0
    MAX_SELF_CONSUMPTION = 1
    TIME_OF_USE = 2
    BACKUP_ONLY = 3
    REMOTE = 4


class ChargeMode(enum.IntEnum):
    """0xE00A default / 0xE00D remote command charge-discharge mode."""

    OFF = 0
    CHARGE_EXCESS_PV = 1
    CHARGE_PV_FIRST = 2
    CHARGE_PV_AND_AC = 3
    MAX_EXPORT = 4
    DISCHARGE_TO_LOAD = 5
    MAX_SELF_CONSUMPTION = 7


_EXPORT_MODES = frozenset({0, 1, 2, 4})  # disabled, direct, indirect, production limitation
_AC_CHARGE_POLICIES = frozenset({0, 1, 2, 3})  # disabled, always, fixed energy, % of production
MAX_TIMEOUT_S = 86400


@dataclass(frozen=True, slots=True)
class StorEdgeSettings:
    """What the 0xE000 block holds (factory values as defaults)."""

    export_mode: int = 0  # 0xE000
    export_limit_mode: int = 0  # 0xE001: 0 total, 1 per phase
    export_site_limit_w: float = 0.0  # 0xE002 F32
    control_mode: int = ControlMode.MAX_SELF_CONSUMPTION  # 0xE004
    ac_charge_policy: int = 0  # 0xE005
    ac_charge_limit: float = 0.0  # 0xE006 F32 (kWh or %)
    backup_reserve_pct: float = 20.0  # 0xE008 F32
    default_mode: int = ChargeMode.MAX_SELF_CONSUMPTION  # 0xE00A
    command_timeout_s: int = 3600  # 0xE00B U32
    command_mode: int = ChargeMode.MAX_SELF_CONSUMPTION  # 0xE00D
    charge_limit_w: float = 0.0  # 0xE00E F32
    discharge_limit_w: float = 0.0  # 0xE010 F32


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    offset: int
    kind: str  # "u16", "u32", "f32"

    @property
    def size(self) -> int:
        return 1 if self.kind == "u16" else 2


#: The 0xE000 block, in register order (offsets from 0xE000).
STORAGE_FIELDS: tuple[_Field, ...] = (
    _Field("export_mode", 0x0, "u16"),
    _Field("export_limit_mode", 0x1, "u16"),
    _Field("export_site_limit_w", 0x2, "f32"),
    _Field("control_mode", 0x4, "u16"),
    _Field("ac_charge_policy", 0x5, "u16"),
    _Field("ac_charge_limit", 0x6, "f32"),
    _Field("backup_reserve_pct", 0x8, "f32"),
    _Field("default_mode", 0xA, "u16"),
    _Field("command_timeout_s", 0xB, "u32"),
    _Field("command_mode", 0xD, "u16"),
    _Field("charge_limit_w", 0xE, "f32"),
    _Field("discharge_limit_w", 0x10, "f32"),
)
STORAGE_LENGTH = 0x12
_FIELD_AT: Mapping[int, _Field] = {STORAGE_BASE + f.offset: f for f in STORAGE_FIELDS}
#: Writing one of these (re)starts the remote command's timeout.
COMMAND_FIELDS = frozenset({
    "control_mode", "command_timeout_s", "command_mode", "charge_limit_w", "discharge_limit_w",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class StorEdgePlate:
    """Identity and ratings of the simulated inverter and its battery."""

    manufacturer: str
    model: str
    serial_number: str
    firmware: str
    battery_model: str
    battery_serial: str
    inverter_max_w: float
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float


# --- word encodings (SolarEdge's proprietary blocks: low word first) ----------------------------


def f32_words(value: float) -> list[int]:
    """A float32 as two registers, low word first."""
    (raw,) = struct.unpack(">I", struct.pack(">f", value))
    return [raw & 0xFFFF, raw >> 16]


def words_f32(words: list[int]) -> float:
    """The float32 of two registers sent low word first."""
    raw = (words[1] << 16) | words[0]
    return float(struct.unpack(">f", struct.pack(">I", raw))[0])


def uint_words(value: int, size: int) -> list[int]:
    """An unsigned integer as ``size`` registers, low word first."""
    return [(value >> (16 * i)) & 0xFFFF for i in range(size)]


def _words_uint(words: list[int]) -> int:
    return sum(w << (16 * i) for i, w in enumerate(words))


def _text(value: str, size: int) -> list[int]:
    blob = value.encode()[: 2 * size].ljust(2 * size, b"\0")
    return list(struct.unpack(f">{size}H", blob))


# --- the SunSpec part ---------------------------------------------------------------------------


def _placed(model_id: int, id_address: int) -> Layout:
    return build_layout((model_id,), base=id_address - 2)


_INVERTER = _placed(103, INVERTER_ADDRESS).model(103)
_METER = _placed(203, METER_ADDRESS).model(203)
assert _INVERTER.address + _INVERTER.length + 2 == METER_COMMON_ADDRESS  # noqa: S101 - layout check
assert _METER.address + _METER.length + 2 == END_ADDRESS  # noqa: S101 - layout check


def _power_sf(value: float) -> int:
    """The scale factor SolarEdge picks for a power: the finest that fits an int16."""
    for sf in (-2, -1, 0, 1, 2):
        if abs(value) / 10**sf <= 32767:
            return sf
    return 3


def _int_words(value: float, sf: int, size: int, *, signed: bool) -> list[int]:
    raw = round(value / 10**sf)
    bits = 16 * size
    if signed:
        raw = max(-(1 << (bits - 1)) + 1, min((1 << (bits - 1)) - 1, raw))
    else:
        raw = max(0, min((1 << bits) - 2, raw))
    raw &= (1 << bits) - 1
    return [(raw >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def _not_implemented(ptype: str, size: int) -> int:
    if ptype.startswith("acc"):
        return 0
    if ptype.startswith("int"):
        return 1 << (16 * size - 1)
    return (1 << (16 * size)) - 1


def _model_registers(
    model: ModelLayout, values: Mapping[str, float | int | None], sfs: Mapping[str, int]
) -> list[int]:
    regs: list[int] = []
    for p in model.points.values():
        if p.name == "ID":
            regs.append(p.model_id)
        elif p.name == "L":
            regs.append(model.length)
        elif p.type == "sunssf":
            sf = sfs.get(p.name)
            regs.append(0x8000 if sf is None else sf & 0xFFFF)
        elif (value := values.get(p.name)) is None:
            raw = _not_implemented(p.type, p.size)
            regs.extend((raw >> (16 * (p.size - 1 - i))) & 0xFFFF for i in range(p.size))
        else:
            sf = sfs.get(p.sf, 0) if isinstance(p.sf, str) else 0
            regs.extend(_int_words(float(value), sf, p.size, signed=p.type.startswith("int")))
    return regs


def sunspec_image(plate: StorEdgePlate, truth: HomeTruth) -> list[int]:
    """Registers 40000 .. 40296: "SunS", common, inverter 103, meter common, meter 203, end."""
    ac_w = truth.solar_w + truth.battery_w
    dc_w = ac_w  # the battery sits on the DC bus: the DC/AC stage sees PV plus battery
    ac_a = abs(ac_w) / NOMINAL_AC_V
    w_sf, dcw_sf = _power_sf(ac_w), _power_sf(dc_w)
    status = 4 if truth.solar_w > 0 or abs(truth.battery_w) > 1 else 2  # MPPT / SLEEPING
    inverter = _model_registers(_INVERTER, {
        "A": ac_a, "AphA": ac_a / 3, "AphB": ac_a / 3, "AphC": ac_a / 3,
        "PPVphAB": NOMINAL_LL_V, "PPVphBC": NOMINAL_LL_V, "PPVphCA": NOMINAL_LL_V,
        "PhVphA": NOMINAL_AC_V, "PhVphB": NOMINAL_AC_V, "PhVphC": NOMINAL_AC_V,
        "W": ac_w, "Hz": NOMINAL_HZ, "WH": truth.solar_wh, "DCW": dc_w,
        "DCV": NOMINAL_BATTERY_V, "DCA": dc_w / NOMINAL_BATTERY_V,
        "TmpSnk": 30.0 + 10.0 * abs(ac_w) / plate.inverter_max_w,
        "St": status, "StVnd": 0, "Evt1": 0 if truth.grid_up else 1 << 4,
        "Evt2": 0, "EvtVnd1": 0, "EvtVnd2": 0, "EvtVnd3": 0, "EvtVnd4": 0,
    }, {"A_SF": -2, "V_SF": -1, "W_SF": w_sf, "Hz_SF": -2, "WH_SF": 0, "DCA_SF": -2,
        "DCV_SF": -1, "DCW_SF": dcw_sf, "Tmp_SF": -2})
    grid_v = NOMINAL_AC_V if truth.grid_up else 0.0
    export_w = -truth.grid_w  # SolarEdge meters count export as positive
    meter = _model_registers(_METER, {
        "A": truth.grid_w / NOMINAL_AC_V, "PhV": grid_v, "PhVphA": grid_v, "PhVphB": grid_v,
        "PhVphC": grid_v, "Hz": NOMINAL_HZ if truth.grid_up else 0.0,
        "W": export_w, "WphA": export_w / 3, "WphB": export_w / 3, "WphC": export_w / 3,
        "TotWhExp": truth.grid_export_wh, "TotWhImp": truth.grid_import_wh,
        "Evt": 0 if truth.grid_up else 1 << 2,
    }, {"A_SF": -2, "V_SF": -1, "Hz_SF": -2, "W_SF": 0, "TotWh_SF": 0})

    def common(model: str, serial: str, version: str) -> list[int]:
        return [1, COMMON_LENGTH, *_text("SolarEdge", 16), *_text(model, 16), *_text("", 8),
                *_text(version, 8), *_text(serial, 16), 1]

    image = [0x5375, 0x6E53]
    image += common(plate.model, plate.serial_number, plate.firmware)
    image += inverter
    image += common("SE-MTR-3Y-400V-A", f"{plate.serial_number}-M", "0001")
    image += meter
    image += [0xFFFF, 0]
    return image


# --- the storage block and battery 1 -------------------------------------------------------------


def storage_image(settings: StorEdgeSettings) -> list[int]:
    """Registers 0xE000 .. 0xE011."""
    regs: list[int] = []
    for f in STORAGE_FIELDS:
        value = getattr(settings, f.name)
        if f.kind == "u16":
            regs.append(int(value))
        elif f.kind == "u32":
            regs += uint_words(int(value), 2)
        else:
            regs += f32_words(float(value))
    return regs


def battery_image(plate: StorEdgePlate, truth: HomeTruth) -> list[int]:
    """Registers 0xE100 .. 0xE187 of battery 1 (instantaneous power positive while charging)."""
    charge_w = -truth.battery_w
    status = 3 if charge_w > 1 else 4 if charge_w < -1 else 6  # charge / discharge / idle
    regs = [*_text("SolarEdge", 16), *_text(plate.battery_model, 16), *_text("DCDC 1.0", 16),
            *_text(plate.battery_serial, 16), 1, 0]
    regs += f32_words(plate.capacity_wh)  # 0xE142 rated energy
    regs += f32_words(plate.max_charge_w) + f32_words(plate.max_discharge_w)  # continuous
    regs += f32_words(plate.max_charge_w) + f32_words(plate.max_discharge_w)  # peak
    regs += [0] * (0x6C - len(regs))  # reserved 0xE14C .. 0xE16B
    regs += f32_words(25.0) + f32_words(27.0)  # 0xE16C average, max temperature
    regs += f32_words(NOMINAL_BATTERY_V) + f32_words(charge_w / NOMINAL_BATTERY_V)
    regs += f32_words(charge_w)  # 0xE174
    regs += uint_words(round(truth.battery_discharge_wh), 4)  # 0xE176 lifetime export
    regs += uint_words(round(truth.battery_charge_wh), 4)  # 0xE17A lifetime import
    regs += f32_words(plate.capacity_wh) + f32_words(truth.soc_pct / 100 * plate.capacity_wh)
    regs += f32_words(100.0) + f32_words(truth.soc_pct)  # 0xE182 SoH, 0xE184 SoE
    regs += uint_words(status, 2)  # 0xE186
    assert len(regs) == BATTERY_LENGTH  # noqa: S101 - layout check
    return regs


def read_registers(
    plate: StorEdgePlate, settings: StorEdgeSettings, truth: HomeTruth, address: int, count: int
) -> list[int] | Exc:
    """FC3 from ``address``: within one of the three blocks, or ILLEGAL_ADDRESS."""
    end = address + count
    if address >= SUNSPEC_BASE and end <= END_ADDRESS + 2:
        return sunspec_image(plate, truth)[address - SUNSPEC_BASE : end - SUNSPEC_BASE]
    if address >= STORAGE_BASE and end <= STORAGE_BASE + STORAGE_LENGTH:
        return storage_image(settings)[address - STORAGE_BASE : end - STORAGE_BASE]
    if address >= BATTERY_BASE and end <= BATTERY_BASE + BATTERY_LENGTH:
        return battery_image(plate, truth)[address - BATTERY_BASE : end - BATTERY_BASE]
    return Exc.ILLEGAL_ADDRESS


# --- writes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Accepted writes: the new block and whether a remote command was (re)sent."""

    settings: StorEdgeSettings
    command_sent: bool


def _check(name: str, value: float, plate: StorEdgePlate) -> bool:
    if not math.isfinite(value):
        return False
    match name:
        case "export_mode":
            return int(value) in _EXPORT_MODES
        case "export_limit_mode":
            return int(value) in {0, 1}
        case "control_mode":
            return int(value) in set(ControlMode)
        case "ac_charge_policy":
            return int(value) in _AC_CHARGE_POLICIES
        case "default_mode" | "command_mode":
            return int(value) in set(ChargeMode)
        case "backup_reserve_pct":
            return 0 <= value <= 100
        case "command_timeout_s":
            return 0 <= value <= MAX_TIMEOUT_S
        case "charge_limit_w":
            return 0 <= value <= plate.max_charge_w
        case "discharge_limit_w":
            return 0 <= value <= plate.max_discharge_w
        case "export_site_limit_w" | "ac_charge_limit":
            return value >= 0
    return False


def write_registers(
    plate: StorEdgePlate, settings: StorEdgeSettings, address: int, values: list[int]
) -> WriteResult | Exc:
    """FC6/FC16 at ``address``: whole fields of the 0xE000 block only; all or nothing."""
    changes: dict[str, Any] = {}
    i = 0
    while i < len(values):
        f = _FIELD_AT.get(address + i)
        if f is None or i + f.size > len(values):
            return Exc.ILLEGAL_ADDRESS  # read-only, outside the block, or half a 32-bit value
        words = values[i : i + f.size]
        value = float(words[0]) if f.kind == "u16" else (
            float(_words_uint(words)) if f.kind == "u32" else words_f32(words))
        if not _check(f.name, value, plate):
            return Exc.ILLEGAL_VALUE
        changes[f.name] = value if f.kind == "f32" else int(value)
        i += f.size
    return WriteResult(replace(settings, **changes), bool(COMMAND_FIELDS & changes.keys()))


# --- what the firmware does with it --------------------------------------------------------------


def effective_mode(settings: StorEdgeSettings) -> int | None:
    """The charge/discharge mode in force: the remote command in remote control, else None."""
    if settings.control_mode != ControlMode.REMOTE:
        return None
    return settings.command_mode


def firmware_for(
    settings: StorEdgeSettings, plate: StorEdgePlate, *, timed: bool
) -> FirmwareSettings:
    """The physics' firmware settings for what the block holds.

    Remote commands 3 (charge from PV and AC; from PV only unless the AC charge policy allows
    AC) and 4 (maximise export) are forced powers; 0 (off) holds the battery; 1 and 2 charge
    from PV only and never discharge. ``timed``: the command mode was sent and runs until its
    timeout, so the physics reverts forced powers at that instant.
    """
    fw = FirmwareSettings(max_charge_w=plate.max_charge_w, reserve_pct=settings.backup_reserve_pct)
    if settings.export_mode & 1:  # direct export limitation at the site meter
        fw = with_export_limit_w(fw, settings.export_site_limit_w, plate.inverter_max_w)
    control = settings.control_mode
    if control == ControlMode.BACKUP_ONLY:
        return replace(fw, reserve_pct=100.0, grid_charging=settings.ac_charge_policy == 1)
    mode = effective_mode(settings)
    revert = float(settings.command_timeout_s) if timed else 0.0
    if mode == ChargeMode.OFF:
        return replace(fw, storage_mode=3, charge_rate_pct=0.0, discharge_rate_pct=0.0,
                       revert_s=revert)
    if mode == ChargeMode.CHARGE_PV_AND_AC and settings.ac_charge_policy == 1:
        pct = min(100.0, 100 * settings.charge_limit_w / plate.max_charge_w)
        return replace(fw, storage_mode=1, charge_rate_pct=pct, revert_s=revert)
    if mode in {ChargeMode.CHARGE_EXCESS_PV, ChargeMode.CHARGE_PV_FIRST, ChargeMode.CHARGE_PV_AND_AC}:
        return replace(fw, reserve_pct=100.0)
    if mode == ChargeMode.MAX_EXPORT:
        pct = min(100.0, 100 * settings.discharge_limit_w / plate.max_discharge_w)
        return replace(fw, storage_mode=2, discharge_rate_pct=pct, revert_s=revert)
    return fw  # self-consumption: disabled, MSC, time of use (not simulated), 5, 7


def command_deadline(settings: StorEdgeSettings, now: datetime) -> datetime | None:
    """When a remote command sent ``now`` reverts (None: no timeout)."""
    if settings.command_timeout_s <= 0:
        return None
    return now + timedelta(seconds=settings.command_timeout_s)
