"""Pure SunSpec register map: physics snapshot + settings -> register image, and write decoding.

Model layouts (point offsets, types, sizes, access, scale-factor references, enum symbols) come from
the model JSON files that pysunspec2 ships; nothing here types an address by hand. Scale factors are
chosen per point below and stay constant for a device's lifetime.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sunspec2.device as ssdev

from simulator.config import DeviceConfig, HomeConfig, SimDeviceConfig
from simulator.physics import FirmwareSettings, HomeTruth

BASE_ADDRESS = 40000
#: Models served, in this order, after the "SunS" marker.
MODEL_IDS: tuple[int, ...] = (1, 103, 120, 123, 124, 802, 203)
#: A PV-only inverter with a grid meter (no storage models): the solar face of a mixed site.
PV_MODEL_IDS: tuple[int, ...] = (1, 103, 120, 123, 203)
SUNS_MARKER = (0x5375, 0x6E53)
END_MODEL = (0xFFFF, 0)

NOMINAL_AC_V = 230.0  # phase-to-neutral
NOMINAL_LL_V = 398.4  # line-to-line
NOMINAL_HZ = 50.0
NOMINAL_BATTERY_V = 400.0  # high-voltage stack; turns Wh and W into Ah and A

Key = tuple[int, str]  # (model id, point name as in the model JSON)
Value = float | int | str | None  # engineering value; None = not implemented


class ModbusError(enum.IntEnum):
    """Modbus exception codes a write can be answered with."""

    ILLEGAL_ADDRESS = 2  # read-only point, unimplemented point, or outside the map
    ILLEGAL_VALUE = 3  # out-of-range or undefined value


class WriteRejected(Exception):
    """A write the device refuses; nothing is stored.

    Attributes:
        code: The Modbus exception code to answer with.
    """

    def __init__(self, code: ModbusError, reason: str) -> None:
        super().__init__(reason)
        self.code = code


# --- layout from the model definitions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a model, placed in the register map.

    Attributes:
        address: PDU address of the point's first register.
        offset: Offset from the model's ID register.
        sf: Scale factor: name of a sunssf point of the same model, an integer, or None.
        symbols: Enum/bitfield symbol values (bit numbers for bitfields).
    """

    model_id: int
    name: str
    offset: int
    address: int
    type: str
    size: int
    access: str
    sf: str | int | None
    symbols: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """A model placed in the map: its ID register address, length L and points by name."""

    model_id: int
    address: int
    length: int
    points: Mapping[str, PointDef]


@dataclass(frozen=True)  # no slots: cached_property needs __dict__
class Layout:
    """The whole register map: "SunS", the models in order, the end marker."""

    base: int
    models: tuple[ModelLayout, ...]
    size: int  # registers from base through the end marker

    def model(self, model_id: int) -> ModelLayout:
        """The placed model with this id."""
        for m in self.models:
            if m.model_id == model_id:
                return m
        raise KeyError(model_id)

    def model_address(self, model_id: int) -> int:
        """PDU address of a model's ID register."""
        return self.model(model_id).address

    def point(self, model_id: int, name: str) -> PointDef:
        """A point by model id and JSON name."""
        return self.model(model_id).points[name]

    @functools.cached_property
    def _by_register(self) -> dict[int, PointDef]:
        return {
            p.address + i: p for m in self.models for p in m.points.values() for i in range(p.size)
        }

    def point_at(self, address: int) -> PointDef | None:
        """The point that covers register `address`, if any."""
        return self._by_register.get(address)


def build_layout(
    model_ids: Iterable[int] = MODEL_IDS,
    base: int = BASE_ADDRESS,
    model_defs: Mapping[int, Mapping[str, Any]] | None = None,
) -> Layout:
    """Place models one after another from `base` using their JSON definitions.

    Args:
        model_ids: Models to serve, in order.
        base: Address of the "SunS" marker.
        model_defs: Definitions by id; None = load pysunspec2's packaged JSON (blocking file I/O).
    """
    address = base + 2
    models: list[ModelLayout] = []
    for model_id in model_ids:
        mdef = model_defs[model_id] if model_defs is not None else ssdev.get_model_def(model_id)
        group = mdef["group"]
        if group.get("groups"):
            raise ValueError(f"model {model_id}: repeating groups are not supported")
        points: dict[str, PointDef] = {}
        offset = 0
        for p in group["points"]:
            size = int(p["size"])
            points[p["name"]] = PointDef(
                model_id=model_id,
                name=p["name"],
                offset=offset,
                address=address + offset,
                type=p["type"],
                size=size,
                access=p.get("access", "R"),
                sf=p.get("sf"),
                symbols=tuple(int(s["value"]) for s in p.get("symbols", ())),
            )
            offset += size
        models.append(ModelLayout(model_id, address, offset - 2, points))
        address += offset
    return Layout(base=base, models=tuple(models), size=address + 2 - base)


@functools.cache
def default_layout() -> Layout:
    """The layout of MODEL_IDS at BASE_ADDRESS from pysunspec2's JSON (cached)."""
    return build_layout()


@functools.cache
def pv_layout() -> Layout:
    """The layout of PV_MODEL_IDS at BASE_ADDRESS (cached)."""
    return build_layout(PV_MODEL_IDS)


# Load the JSON now, at import time: later calls happen on the event loop, where file I/O blocks.
default_layout()
pv_layout()


# --- scale factors and value conversion ---------------------------------------------------------

#: Scale factor values served; sunssf points not listed are "not implemented" (their points too).
SCALE_FACTORS: Mapping[Key, int] = {
    (103, "A_SF"): -2, (103, "V_SF"): -1, (103, "W_SF"): 0, (103, "Hz_SF"): -2,
    (103, "WH_SF"): 0, (103, "DCW_SF"): 0, (103, "Tmp_SF"): -1,
    (120, "WRtg_SF"): 0, (120, "VARtg_SF"): 0, (120, "VArRtg_SF"): 0, (120, "ARtg_SF"): -1,
    (120, "PFRtg_SF"): -2, (120, "WHRtg_SF"): 0, (120, "AhrRtg_SF"): -2,
    (120, "MaxChaRte_SF"): 0, (120, "MaxDisChaRte_SF"): 0,
    (123, "WMaxLimPct_SF"): 0, (123, "OutPFSet_SF"): -2,
    (124, "WChaMax_SF"): 0, (124, "WChaDisChaGra_SF"): 0, (124, "MinRsvPct_SF"): 0,
    (124, "ChaState_SF"): -1, (124, "StorAval_SF"): -2, (124, "InBatV_SF"): -1,
    (124, "InOutWRte_SF"): 0,
    (802, "AHRtg_SF"): -2, (802, "WHRtg_SF"): 0, (802, "WChaDisChaMax_SF"): 0,
    (802, "SoC_SF"): -1, (802, "SoH_SF"): 0, (802, "V_SF"): -1, (802, "CellV_SF"): -3,
    (802, "A_SF"): -1, (802, "AMax_SF"): -1, (802, "W_SF"): 0,
    (203, "A_SF"): -2, (203, "V_SF"): -1, (203, "Hz_SF"): -2, (203, "W_SF"): 0,
    (203, "TotWh_SF"): 0,
}  # fmt: skip

_NOT_IMPLEMENTED: Mapping[str, int] = {
    "int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "count": 0xFFFF, "enum16": 0xFFFF,
    "bitfield16": 0xFFFF, "acc16": 0, "pad": 0, "int32": 0x80000000, "uint32": 0xFFFFFFFF,
    "enum32": 0xFFFFFFFF, "bitfield32": 0xFFFFFFFF, "acc32": 0, "ipaddr": 0,
    "int64": 0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF, "acc64": 0,
    "float32": 0x7FC00000,
}  # fmt: skip
_SIGNED = frozenset({"int16", "sunssf", "int32", "int64"})


def _raw_range(ptype: str, size: int) -> tuple[int, int]:
    """Lowest and highest raw value that is not the type's "not implemented" sentinel."""
    bits = 16 * size
    if ptype in _SIGNED:
        return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1
    if ptype.startswith("acc"):
        return 1, (1 << bits) - 1
    return 0, (1 << bits) - 2


def sf_of(point: PointDef) -> int:
    """The scale factor applying to `point` (0 when it has none)."""
    if point.sf is None:
        return 0
    if isinstance(point.sf, int):
        return point.sf
    return SCALE_FACTORS.get((point.model_id, point.sf), 0)


def _to_registers(point: PointDef, value: Value) -> list[int]:
    if point.type == "string":
        text = "" if value is None else str(value)
        blob = text.encode()[: point.size * 2].ljust(point.size * 2, b"\0")
        return list(struct.unpack(f">{point.size}H", blob))
    if value is None:
        raw = _NOT_IMPLEMENTED[point.type]
    elif point.type == "float32":
        (raw,) = struct.unpack(">I", struct.pack(">f", float(value)))
    elif point.type == "sunssf":
        raw = int(value)
    else:
        lo, hi = _raw_range(point.type, point.size)
        raw = min(hi, max(lo, round(float(value) / 10 ** sf_of(point))))
    raw &= (1 << (16 * point.size)) - 1
    return [(raw >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]


def _from_registers(point: PointDef, regs: list[int]) -> int:
    raw = 0
    for reg in regs:
        raw = (raw << 16) | reg
    if point.type in _SIGNED and raw >= 1 << (16 * point.size - 1):
        raw -= 1 << (16 * point.size)
    return raw


# --- device identity and ratings ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Nameplate:
    """What a SunSpec device says about itself: identity and ratings (W, Wh)."""

    manufacturer: str
    model: str
    serial_number: str
    firmware: str
    unit_id: int
    inverter_max_w: float
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float

    @classmethod
    def from_config(cls, home: HomeConfig, device: DeviceConfig) -> Nameplate:
        """Identity from the device config, ratings from its home.

        Raises:
            TypeError: the config is not a SunSpec device's.
        """
        if not isinstance(device, SimDeviceConfig):
            raise TypeError(f"device {device.id!r} is a {device.kind} device, not sunspec")
        return cls(
            manufacturer=device.manufacturer,
            model=device.model,
            serial_number=device.serial_number,
            firmware=device.firmware,
            unit_id=device.unit_id,
            inverter_max_w=home.inverter_max_w,
            capacity_wh=home.battery_capacity_wh,
            max_charge_w=home.battery_max_charge_w,
            max_discharge_w=home.battery_max_discharge_w,
        )


def default_stored(plate: Nameplate) -> dict[Key, float]:
    """Initial values of writable points that the physics ignores (stored and read back only)."""
    return {
        (1, "DA"): plate.unit_id,
        (123, "Conn"): 1,
        (123, "OutPFSet"): 1.0,
        (123, "OutPFSet_Ena"): 0,
        (123, "VArPct_Ena"): 0,
        (124, "WChaGra"): 100,
        (124, "WDisChaGra"): 100,
        (802, "CtrlHb"): 0,
        (802, "AlmRst"): 0,
        (802, "SetOp"): 1,
        (802, "SetInvState"): 3,
    }


#: Writable points that drive the firmware settings.
FIRMWARE_POINTS: frozenset[Key] = frozenset({
    (123, "WMaxLimPct"), (123, "WMaxLim_Ena"),
    (124, "WChaMax"), (124, "StorCtl_Mod"), (124, "MinRsvPct"), (124, "OutWRte"),
    (124, "InWRte"), (124, "InOutWRte_RvrtTms"), (124, "ChaGriSet"),
    (802, "SoCRsvMin"),
})  # fmt: skip
#: Writes to these restart the rate command's revert timer.
_RATE_POINTS = frozenset({"StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms"})


def writable_points(plate: Nameplate) -> frozenset[Key]:
    """Every point a write may target; other points answer ILLEGAL_ADDRESS."""
    return FIRMWARE_POINTS | frozenset(default_stored(plate))


def _value_range(key: Key, plate: Nameplate) -> tuple[float, float] | None:
    """Engineering range accepted for a writable point (None = the type's range)."""
    ranges: dict[Key, tuple[float, float]] = {
        (1, "DA"): (1, 247),
        (123, "WMaxLimPct"): (0, 100),
        (123, "OutPFSet"): (-1, 1),
        (124, "WChaMax"): (0, plate.max_charge_w),
        (124, "WChaGra"): (0, 100),
        (124, "WDisChaGra"): (0, 100),
        (124, "MinRsvPct"): (0, 100),
        (124, "OutWRte"): (-100, 100),
        (124, "InWRte"): (-100, 100),
        (802, "SoCRsvMin"): (0, 100),
        (802, "AlmRst"): (0, 1),
    }
    return ranges.get(key)


# --- encoding ----------------------------------------------------------------------------------


def charge_status(truth: HomeTruth) -> int:
    """SunSpec ChaSt: 2 EMPTY, 3 DISCHARGING, 4 CHARGING, 5 FULL, 6 HOLDING."""
    if truth.battery_w < -1:
        return 4
    if truth.battery_w > 1:
        return 3
    if truth.soc_pct >= 99.95:
        return 5
    if truth.soc_pct <= 0.05:
        return 2
    return 6


def point_values(
    plate: Nameplate, truth: HomeTruth, firmware: FirmwareSettings, stored: Mapping[Key, float],
    *, with_storage: bool = True,
) -> dict[Key, Value]:
    """Engineering values of every implemented point (SunSpec units; signs as in the contract).

    Points missing from the result are served as "not implemented". Without storage (a PV-only
    inverter) the AC output is the solar power alone and the nameplate says PV.
    """
    ac_w = truth.solar_w + truth.battery_w if with_storage else truth.solar_w
    ac_a = abs(ac_w) / NOMINAL_AC_V
    grid_a = truth.grid_w / NOMINAL_AC_V
    ahr = plate.capacity_wh / NOMINAL_BATTERY_V
    cha_st = charge_status(truth)
    grid_v = NOMINAL_AC_V if truth.grid_up else 0.0
    grid_ll_v = NOMINAL_LL_V if truth.grid_up else 0.0
    values: dict[Key, Value] = {
        (1, "Mn"): plate.manufacturer,
        (1, "Md"): plate.model,
        (1, "Vr"): plate.firmware,
        (1, "SN"): plate.serial_number,
        (1, "Pad"): 0,
        # 103: AC side of the hybrid inverter (PV + battery).
        (103, "A"): ac_a,
        (103, "AphA"): ac_a / 3,
        (103, "AphB"): ac_a / 3,
        (103, "AphC"): ac_a / 3,
        (103, "PPVphAB"): NOMINAL_LL_V,
        (103, "PPVphBC"): NOMINAL_LL_V,
        (103, "PPVphCA"): NOMINAL_LL_V,
        (103, "PhVphA"): NOMINAL_AC_V,
        (103, "PhVphB"): NOMINAL_AC_V,
        (103, "PhVphC"): NOMINAL_AC_V,
        (103, "W"): ac_w,
        (103, "Hz"): NOMINAL_HZ,
        (103, "WH"): truth.solar_wh,
        (103, "DCW"): truth.solar_w,
        (103, "TmpCab"): 25.0 + 10.0 * abs(ac_w) / plate.inverter_max_w,
        (103, "St"): 4 if truth.solar_w > 0 else 8,
        (103, "Evt1"): 0 if truth.grid_up else 1 << 4,  # GRID_DISCONNECT
        (103, "Evt2"): 0,
        (103, "EvtVnd1"): 1 if truth.storm_alert else 0,  # vendor bit 0: storm watch
        (103, "EvtVnd2"): 0,
        (103, "EvtVnd3"): 0,
        (103, "EvtVnd4"): 0,
        # 120: nameplate.
        (120, "DERTyp"): 82 if with_storage else 4,  # PV_STOR / PV
        (120, "WRtg"): plate.inverter_max_w,
        (120, "VARtg"): plate.inverter_max_w,
        (120, "VArRtgQ1"): plate.inverter_max_w,
        (120, "VArRtgQ2"): plate.inverter_max_w,
        (120, "VArRtgQ3"): -plate.inverter_max_w,
        (120, "VArRtgQ4"): -plate.inverter_max_w,
        (120, "ARtg"): plate.inverter_max_w / NOMINAL_AC_V,
        (120, "PFRtgQ1"): 1.0,
        (120, "PFRtgQ2"): 1.0,
        (120, "PFRtgQ3"): 1.0,
        (120, "PFRtgQ4"): 1.0,
        (120, "WHRtg"): plate.capacity_wh,
        (120, "AhrRtg"): ahr,
        (120, "MaxChaRte"): plate.max_charge_w,
        (120, "MaxDisChaRte"): plate.max_discharge_w,
        (120, "Pad"): 0,
        # 123: immediate controls (WMaxLimPct is the grid export limit in this firmware).
        (123, "WMaxLimPct"): firmware.export_limit_pct,
        (123, "WMaxLim_Ena"): int(firmware.export_limit_enabled),
        # 124: storage controls.
        (124, "WChaMax"): firmware.max_charge_w,
        (124, "StorCtl_Mod"): firmware.storage_mode,
        (124, "MinRsvPct"): firmware.reserve_pct,
        (124, "ChaState"): truth.soc_pct,
        (124, "StorAval"): max(0.0, truth.soc_pct - firmware.reserve_pct) / 100 * ahr,
        (124, "InBatV"): NOMINAL_BATTERY_V,
        (124, "ChaSt"): cha_st,
        (124, "OutWRte"): firmware.discharge_rate_pct,
        (124, "InWRte"): firmware.charge_rate_pct,
        (124, "InOutWRte_RvrtTms"): firmware.revert_s,
        (124, "ChaGriSet"): int(firmware.grid_charging),
        # 802: battery (W + = discharging).
        (802, "AHRtg"): ahr,
        (802, "WHRtg"): plate.capacity_wh,
        (802, "WChaRteMax"): plate.max_charge_w,
        (802, "WDisChaRteMax"): plate.max_discharge_w,
        (802, "SoCMax"): 100.0,
        (802, "SoCMin"): 0.0,
        (802, "SoCRsvMin"): firmware.reserve_pct,
        (802, "SoC"): truth.soc_pct,
        (802, "SoH"): 100,
        (802, "NCyc"): int((truth.battery_discharge_wh) // plate.capacity_wh),
        (802, "ChaSt"): cha_st,
        (802, "LocRemCtl"): 0,  # REMOTE
        (802, "Hb"): int(truth.at.timestamp()) % 65535,
        (802, "Typ"): 4,  # LITHIUM_ION
        (802, "State"): 3,  # CONNECTED
        (802, "Evt1"): 0,
        (802, "Evt2"): 0,
        (802, "EvtVnd1"): 0,
        (802, "EvtVnd2"): 0,
        (802, "V"): NOMINAL_BATTERY_V,
        (802, "A"): truth.battery_w / NOMINAL_BATTERY_V,
        (802, "AChaMax"): plate.max_charge_w / NOMINAL_BATTERY_V,
        (802, "ADisChaMax"): plate.max_discharge_w / NOMINAL_BATTERY_V,
        (802, "W"): truth.battery_w,
        # 203: grid meter (W + = import); a dead grid reads 0 V / 0 Hz.
        (203, "A"): grid_a,
        (203, "AphA"): grid_a / 3,
        (203, "AphB"): grid_a / 3,
        (203, "AphC"): grid_a / 3,
        (203, "PhV"): grid_v,
        (203, "PhVphA"): grid_v,
        (203, "PhVphB"): grid_v,
        (203, "PhVphC"): grid_v,
        (203, "PPV"): grid_ll_v,
        (203, "PhVphAB"): grid_ll_v,
        (203, "PhVphBC"): grid_ll_v,
        (203, "PhVphCA"): grid_ll_v,
        (203, "Hz"): NOMINAL_HZ if truth.grid_up else 0.0,
        (203, "W"): truth.grid_w,
        (203, "WphA"): truth.grid_w / 3,
        (203, "WphB"): truth.grid_w / 3,
        (203, "WphC"): truth.grid_w / 3,
        (203, "TotWhExp"): truth.grid_export_wh,
        (203, "TotWhImp"): truth.grid_import_wh,
        (203, "Evt"): 0 if truth.grid_up else 1 << 2,  # M_EVENT_Power_Failure
    }
    values.update(stored)
    values.update(SCALE_FACTORS)
    if not with_storage:  # a PV inverter has no storage ratings
        for name in ("WHRtg", "AhrRtg", "MaxChaRte", "MaxDisChaRte"):
            values.pop((120, name), None)
    return values


def encode_image(
    layout: Layout,
    plate: Nameplate,
    truth: HomeTruth,
    firmware: FirmwareSettings,
    stored: Mapping[Key, float],
) -> list[int]:
    """The full register image from `layout.base` through the end marker."""
    with_storage = any(m.model_id == 124 for m in layout.models)
    values = point_values(plate, truth, firmware, stored, with_storage=with_storage)
    image = list(SUNS_MARKER)
    for m in layout.models:
        for p in m.points.values():
            if p.name == "ID":
                image.append(m.model_id)
            elif p.name == "L":
                image.append(m.length)
            else:
                image.extend(_to_registers(p, values.get((m.model_id, p.name))))
    image.extend(END_MODEL)
    return image


# --- writes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointWrite:
    """One validated point write: the raw register value and its engineering value."""

    model_id: int
    name: str
    raw: int
    value: float


def decode_write(
    layout: Layout, plate: Nameplate, address: int, registers: list[int]
) -> list[PointWrite]:
    """Validate a write of `registers` at `address` (FC6 or FC16) and split it into point writes.

    Every register must belong to a writable point, points must be written whole, and every value
    must be in range; otherwise nothing is written.

    Raises:
        WriteRejected: with ILLEGAL_ADDRESS (read-only, unimplemented or unmapped register) or
            ILLEGAL_VALUE (out of range, undefined enum value or bit, "not implemented" sentinel).
    """
    writable = writable_points(plate)
    writes: list[PointWrite] = []
    i = 0
    while i < len(registers):
        p = layout.point_at(address + i)
        if p is None or (p.model_id, p.name) not in writable or "W" not in p.access:
            raise WriteRejected(ModbusError.ILLEGAL_ADDRESS, f"register {address + i} read-only")
        if p.address != address + i or i + p.size > len(registers):
            raise WriteRejected(ModbusError.ILLEGAL_ADDRESS, f"partial write of {p.name}")
        raw = _from_registers(p, registers[i : i + p.size])
        lo, hi = _raw_range(p.type, p.size)
        if not lo <= raw <= hi:
            raise WriteRejected(ModbusError.ILLEGAL_VALUE, f"{p.name}={raw} out of range")
        if p.type.startswith("enum") and p.symbols and raw not in p.symbols:
            raise WriteRejected(ModbusError.ILLEGAL_VALUE, f"{p.name}={raw} undefined")
        if p.type.startswith("bitfield") and raw & ~sum(1 << b for b in p.symbols):
            raise WriteRejected(ModbusError.ILLEGAL_VALUE, f"{p.name}={raw} undefined bits")
        value = raw * 10.0 ** sf_of(p)
        bounds = _value_range((p.model_id, p.name), plate)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise WriteRejected(ModbusError.ILLEGAL_VALUE, f"{p.name}={value} out of {bounds}")
        writes.append(PointWrite(p.model_id, p.name, raw, value))
        i += p.size
    return writes


@dataclass(frozen=True, slots=True)
class WriteEffect:
    """What accepted writes do: new firmware settings and stored points."""

    firmware: FirmwareSettings
    stored: dict[Key, float]
    restart_revert: bool


def apply_writes(
    firmware: FirmwareSettings, stored: Mapping[Key, float], writes: Iterable[PointWrite]
) -> WriteEffect:
    """Turn validated point writes into firmware settings and stored values (pure)."""
    fw = firmware
    new_stored = dict(stored)
    restart = False
    for w in writes:
        key = (w.model_id, w.name)
        if key not in FIRMWARE_POINTS:
            new_stored[key] = w.value
            continue
        match w.name:
            case "WMaxLimPct":
                fw = replace(fw, export_limit_pct=w.value)
            case "WMaxLim_Ena":
                fw = replace(fw, export_limit_enabled=bool(w.raw))
            case "WChaMax":
                fw = replace(fw, max_charge_w=w.value)
            case "StorCtl_Mod":
                fw = replace(fw, storage_mode=w.raw)
            case "MinRsvPct" | "SoCRsvMin":
                fw = replace(fw, reserve_pct=w.value)
            case "OutWRte":
                fw = replace(fw, discharge_rate_pct=w.value)
            case "InWRte":
                fw = replace(fw, charge_rate_pct=w.value)
            case "InOutWRte_RvrtTms":
                fw = replace(fw, revert_s=w.value)
            case "ChaGriSet":
                fw = replace(fw, grid_charging=bool(w.raw))
        restart = restart or w.name in _RATE_POINTS
    return WriteEffect(fw, new_stored, restart)
