"""Sans-IO SunSpec codec: model definitions from pysunspec2 JSON, point codec, map discovery."""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, cast, get_args

from drivers.errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_ADDRESSES",
    "END_MODEL_ID",
    "MAX_READ_COUNT",
    "PRELOADED_MODELS",
    "SUNS_MARKER",
    "Discovery",
    "DiscoveryError",
    "GroupDef",
    "ModelBlock",
    "ModelDef",
    "ModelLocation",
    "PointDef",
    "PointType",
    "PointValue",
    "PointValueError",
    "ReadRequest",
    "RegisterWrite",
    "Slot",
    "SunSpecMap",
    "decode_model",
    "decode_raw",
    "discovery_step",
    "encode_raw",
    "layout",
    "model_def",
    "scale",
    "start_discovery",
    "unscale",
]

PointType = Literal[
    "int16", "uint16", "count", "acc16", "enum16", "bitfield16", "pad", "sunssf",
    "int32", "uint32", "acc32", "enum32", "bitfield32", "ipaddr", "float32",
    "int64", "uint64", "acc64", "float64", "eui48", "ipv6addr", "string",
]  # fmt: skip

PointValue = int | float | str | None
"""A decoded point: int (integer types), float (scaled), str, None (not implemented)."""

SUNS_MARKER: tuple[int, int] = (0x5375, 0x6E53)  # "SunS"
DEFAULT_BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)  # pysunspec2's probe order
END_MODEL_ID = 0xFFFF
MAX_READ_COUNT = 125  # FC3 limit per request
_MAX_MODELS = 256  # a chain longer than this is garbage, not a device

# (registers, signed, not-implemented raw value) per fixed-size integer type.
_INT_TYPES: dict[str, tuple[int, bool, int]] = {
    "int16": (1, True, -0x8000),
    "sunssf": (1, True, -0x8000),
    "uint16": (1, False, 0xFFFF),
    "count": (1, False, 0xFFFF),
    "enum16": (1, False, 0xFFFF),
    "bitfield16": (1, False, 0xFFFF),
    "acc16": (1, False, 0),
    "int32": (2, True, -0x8000_0000),
    "uint32": (2, False, 0xFFFF_FFFF),
    "enum32": (2, False, 0xFFFF_FFFF),
    "bitfield32": (2, False, 0xFFFF_FFFF),
    "acc32": (2, False, 0),
    "ipaddr": (2, False, 0),
    "int64": (4, True, -0x8000_0000_0000_0000),
    "uint64": (4, False, 0xFFFF_FFFF_FFFF_FFFF),
    "acc64": (4, False, 0),
    "eui48": (4, False, 0xFFFF_FFFF_FFFF),  # low 48 bits all ones
    "ipv6addr": (8, False, 0),
}
_FLOAT_TYPES: dict[str, tuple[int, str]] = {"float32": (2, ">f"), "float64": (4, ">d")}


class PointValueError(ValueError):
    """A value cannot be encoded into a point (out of range, wrong kind, unknown scale factor)."""


class DiscoveryError(ConfigurationError):
    """The device has no usable SunSpec map (no marker, or a broken model chain)."""


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True, kw_only=True)
class PointDef:
    """One point of a model group as the JSON defines it.

    ``offset`` counts registers from the start of the enclosing group instance (for the top-level
    group that is the model's ``ID`` register). ``sf`` is the name of a ``sunssf`` point, a constant
    exponent, or None.
    """

    name: str
    type: PointType
    size: int
    offset: int
    sf: str | int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDef:
    """A group of points; ``count`` is a fixed repeat count or the name of the point holding it."""

    name: str
    count: int | str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()

    @property
    def points_size(self) -> int:
        """Registers taken by this group's own points (nested groups excluded)."""
        return sum(p.size for p in self.points)

    @property
    def static(self) -> bool:
        """True when no nested group has a count read from the device."""
        return all(isinstance(g.count, int) and g.static for g in self.groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDef:
    """A SunSpec model definition built from pysunspec2's model JSON."""

    id: int
    name: str
    group: GroupDef

    @property
    def static(self) -> bool:
        """True when the register layout does not depend on device data (no repeating groups)."""
        return self.group.static

    @property
    def length(self) -> int | None:
        """The nominal ``L`` (registers after ID and L) for static models, else None."""
        if not self.static:
            return None
        return max(s.offset + s.point.size for s in layout(self).values()) - 2


def _parse_group(raw: Mapping[str, Any], *, top: bool) -> GroupDef:
    points: list[PointDef] = []
    offset = 0
    for p in raw["points"]:
        ptype = p["type"]
        if ptype not in _KNOWN_TYPES:
            raise ValueError(f"unknown SunSpec point type {ptype!r} in {raw['name']}.{p['name']}")
        size = int(p.get("size", 1))
        expected = _type_size(ptype)
        if expected is not None and size != expected:
            raise ValueError(f"{raw['name']}.{p['name']}: {ptype} has size {size}, not {expected}")
        sf = p.get("sf")
        if isinstance(sf, str) and sf.lstrip("-").isdigit():
            sf = int(sf)
        points.append(
            PointDef(
                name=p["name"],
                type=cast("PointType", ptype),
                size=size,
                offset=offset,
                sf=sf,
            )
        )
        offset += size
    count = raw.get("count", 1)
    return GroupDef(
        name=raw["name"],
        count=1 if top else (count if isinstance(count, str) else int(count)),
        points=tuple(points),
        groups=tuple(_parse_group(g, top=False) for g in raw.get("groups", ())),
    )


_KNOWN_TYPES: frozenset[str] = frozenset(get_args(PointType))


def _type_size(ptype: str) -> int | None:
    if ptype in _INT_TYPES:
        return _INT_TYPES[ptype][0]
    if ptype in _FLOAT_TYPES:
        return _FLOAT_TYPES[ptype][0]
    if ptype == "pad":
        return 1
    return None  # string: size comes from the JSON


def _load_json(model_id: int) -> Mapping[str, Any]:
    # Read the wheel's own copy: sunspec2.device.get_model_def searches '.' first, so a stray
    # model_<id>.json in the working directory would silently override it.
    path = resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyError(f"no SunSpec model definition for model {model_id}") from exc
    return cast("Mapping[str, Any]", json.loads(text))


@functools.cache
def model_def(model_id: int) -> ModelDef:
    """The typed, cached definition of SunSpec model ``model_id``.

    Raises:
        KeyError: pysunspec2 ships no JSON for this model id.
    """
    raw = _load_json(model_id)
    mdef = ModelDef(id=int(raw["id"]), name=raw["group"]["name"], group=_parse_group(raw["group"], top=True))
    _validate(mdef)
    return mdef


def _validate(mdef: ModelDef) -> None:
    top = {p.name: p for p in mdef.group.points}
    if [p.name for p in mdef.group.points[:2]] != ["ID", "L"]:
        raise ValueError(f"model {mdef.id}: first points must be ID, L")

    def check(group: GroupDef) -> None:
        local = {p.name: p for p in group.points}
        if len(local) != len(group.points):
            raise ValueError(f"model {mdef.id}: duplicate point names in group {group.name}")
        for p in group.points:
            if isinstance(p.sf, str):
                sfp = local.get(p.sf) or top.get(p.sf)
                if sfp is None or sfp.type != "sunssf":
                    raise ValueError(f"model {mdef.id}: {p.name} scale factor {p.sf} is not a sunssf point")
            elif isinstance(p.sf, int) and not -10 <= p.sf <= 10:
                raise ValueError(f"model {mdef.id}: {p.name} constant scale factor {p.sf} out of range")
        for g in group.groups:
            if isinstance(g.count, str) and g.count not in local and g.count not in top:
                raise ValueError(f"model {mdef.id}: group {g.name} count point {g.count} missing")
            check(g)

    check(mdef.group)


# Models the gateway uses: loaded (and validated) at import so no file is read on the event loop.
PRELOADED_MODELS: tuple[int, ...] = (
    1, 101, 102, 103, 120, 121, 122, 123, 124, 201, 202, 203, 204, 701, 702, 703, 704, 802,
)  # fmt: skip
for _mid in PRELOADED_MODELS:
    model_def(_mid)


# --------------------------------------------------------------------------- raw point codec


def decode_raw(ptype: PointType, registers: Sequence[int]) -> PointValue:
    """Decode one point's registers (big-endian, high word first) into its raw value.

    Returns None for the type's not-implemented value (int16 0x8000, uint16 0xFFFF, acc* 0,
    int32 0x80000000, string starting with NUL, float NaN, ...). Strings lose trailing NULs.
    """
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError(f"register value out of range in {list(registers)}")
    if ptype == "string":
        data = b"".join(r.to_bytes(2, "big") for r in registers)
        if not data or data[0] == 0:
            return None
        return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    if ptype == "pad":
        return registers[0]
    if ptype in _FLOAT_TYPES:
        size, fmt = _FLOAT_TYPES[ptype]
        _check_len(ptype, registers, size)
        (f,) = struct.unpack(fmt, b"".join(r.to_bytes(2, "big") for r in registers))
        return None if math.isnan(f) else float(f)
    size, signed, sentinel = _INT_TYPES[ptype]
    _check_len(ptype, registers, size)
    value = 0
    for r in registers:
        value = (value << 16) | r
    if signed and value >= 1 << (16 * size - 1):
        value -= 1 << (16 * size)
    if ptype == "eui48":
        value &= 0xFFFF_FFFF_FFFF
    return None if value == sentinel else value


def encode_raw(ptype: PointType, value: PointValue, *, size: int | None = None) -> list[int]:
    """Encode a raw value into registers; None encodes the not-implemented value.

    ``size`` (registers) is required for strings. Raises PointValueError when the value does not
    fit the type or collides with the type's not-implemented value.
    """
    if ptype == "string":
        if size is None:
            raise PointValueError("string points need a size")
        data = b"" if value is None else str(value).encode("utf-8")
        if len(data) > 2 * size:
            raise PointValueError(f"string {value!r} longer than {2 * size} bytes")
        data = data.ljust(2 * size, b"\0")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if ptype == "pad":
        return [0]
    if ptype in _FLOAT_TYPES:
        fsize, fmt = _FLOAT_TYPES[ptype]
        if value is not None and not isinstance(value, int | float):
            raise PointValueError(f"{ptype} needs a number, not {value!r}")
        data = struct.pack(fmt, math.nan if value is None else float(value))
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * fsize, 2)]
    isize, signed, sentinel = _INT_TYPES[ptype]
    if value is None:
        raw = sentinel
    elif isinstance(value, bool) or not isinstance(value, int):
        raise PointValueError(f"{ptype} needs an int, not {value!r}")
    else:
        bits = 48 if ptype == "eui48" else 16 * isize
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise PointValueError(f"{value} does not fit {ptype}")
        if value == sentinel:
            raise PointValueError(f"{value} is the not-implemented value of {ptype}")
        raw = value
    raw &= (1 << (16 * isize)) - 1
    return [(raw >> (16 * (isize - 1 - i))) & 0xFFFF for i in range(isize)]


def _check_len(ptype: str, registers: Sequence[int], size: int) -> None:
    if len(registers) != size:
        raise ValueError(f"{ptype} needs {size} registers, got {len(registers)}")


def scale(raw: int | float, sf: int) -> float:
    """The engineering value ``raw * 10**sf`` (division for negative sf keeps 0.1 steps exact)."""
    return float(raw * 10**sf) if sf >= 0 else raw / 10**-sf


def unscale(value: float, sf: int) -> int:
    """The raw integer that encodes ``value`` at scale factor ``sf`` (rounded half to even)."""
    return int(round(value / 10**sf) if sf >= 0 else round(value * 10**-sf))


# --------------------------------------------------------------------------- model blocks


@dataclass(frozen=True, slots=True)
class Slot:
    """A placed point: ``offset`` from the ID register, ``sf`` resolved to a slot name."""

    point: PointDef
    offset: int
    sf: str | int | None


def layout(mdef: ModelDef, registers: Sequence[int] | None = None) -> Mapping[str, Slot]:
    """Place every point of ``mdef`` at its offset from the model's ID register.

    Points of fixed groups are named ``Group.Point``; of repeating groups ``Group[i].Point``
    (1-based, as pysunspec2). Repeat counts come from the count point's value in ``registers``,
    which static models do not need.
    """
    if mdef.static:  # no repeating groups: the layout never depends on the values
        return _static_layout(mdef)
    if registers is None:
        raise ValueError(f"model {mdef.id} has repeating groups: its layout needs the registers")
    out: dict[str, Slot] = {}
    _place(mdef.group, 0, "", registers, top={}, out=out)
    return out


@functools.cache
def _static_layout(mdef: ModelDef) -> Mapping[str, Slot]:
    out: dict[str, Slot] = {}
    _place(mdef.group, 0, "", (), top={}, out=out)
    return out


def _place(
    group: GroupDef,
    offset: int,
    prefix: str,
    registers: Sequence[int],
    *,
    top: Mapping[str, str],
    out: dict[str, Slot],
) -> int:
    scope: dict[str, str] = {}
    for p in group.points:
        scope[p.name] = prefix + p.name
    top_scope = top or scope  # the top-level group is its own fallback scope
    for p in group.points:
        sf: str | int | None = p.sf
        if isinstance(p.sf, str):
            sf = scope.get(p.sf) or top_scope[p.sf]
        out[prefix + p.name] = Slot(p, offset + p.offset, sf)
    offset += group.points_size
    for g in group.groups:
        if isinstance(g.count, int):
            count = g.count
        else:
            count_slot = out[scope.get(g.count) or top_scope[g.count]]
            regs = registers[count_slot.offset : count_slot.offset + 1]
            raw = decode_raw(count_slot.point.type, regs) if len(regs) == 1 else None
            count = raw if isinstance(raw, int) else 0
        repeated = isinstance(g.count, str) or count > 1
        for i in range(count):
            sub = f"{prefix}{g.name}[{i + 1}]." if repeated else f"{prefix}{g.name}."
            offset = _place(g, offset, sub, registers, top=top_scope, out=out)
    return offset


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterWrite:
    """Registers to write starting at ``address`` (absolute PDU address)."""

    address: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelBlock:
    """A decoded model: the registers read from ``address`` (the ID register) on, and their meaning.

    Points beyond the end of the registers read (a legacy short model) read as not implemented.
    """

    model: ModelDef
    address: int
    registers: tuple[int, ...]
    slots: Mapping[str, Slot] = field(repr=False)

    def raw(self, name: str) -> PointValue:
        """The raw (unscaled) value of point ``name``; None when not implemented."""
        slot = self.slots[name]
        regs = self.registers[slot.offset : slot.offset + slot.point.size]
        if len(regs) < slot.point.size:
            return None
        return decode_raw(slot.point.type, regs)

    def sf(self, name: str) -> int | None:
        """The scale-factor exponent of point ``name`` (None: it has none, or not implemented)."""
        sf = self.slots[name].sf
        if sf is None or isinstance(sf, int):
            return sf
        raw = self.raw(sf)
        return raw if isinstance(raw, int) and -10 <= raw <= 10 else None

    def value(self, name: str) -> PointValue:
        """The engineering value of point ``name`` (raw * 10**SF), None when not implemented.

        A point whose scale-factor register is not implemented also reads None: pysunspec2 would
        fall back to the raw value, which silently misreports by powers of ten.
        """
        raw = self.raw(name)
        slot = self.slots[name]
        if raw is None or slot.sf is None or isinstance(raw, str):
            return raw
        sf = self.sf(name)
        return None if sf is None else scale(raw, sf)

    def number(self, name: str) -> float | None:
        """``value(name)`` as a float, None when not implemented or not a number."""
        v = self.value(name)
        return float(v) if isinstance(v, int | float) else None

    def implemented(self, name: str) -> bool:
        """True when the model has point ``name`` and it does not hold its not-implemented value."""
        return name in self.slots and self.raw(name) is not None

    def values(self) -> dict[str, PointValue]:
        """Every point's engineering value, by name."""
        return {name: self.value(name) for name in self.slots}

    def encode_raw(self, name: str, raw: PointValue) -> RegisterWrite:
        """The write that stores raw value ``raw`` into point ``name``."""
        slot = self.slots[name]
        regs = encode_raw(slot.point.type, raw, size=slot.point.size)
        return RegisterWrite(address=self.address + slot.offset, values=tuple(regs))

    def raw_for(self, name: str, value: float) -> int:
        """The raw integer encoding engineering ``value`` into point ``name`` at the device's SF."""
        slot = self.slots[name]
        if slot.sf is None:
            return round(value)
        sf = self.sf(name)
        if sf is None:
            raise PointValueError(f"{name}: scale factor {slot.sf} not implemented")
        return unscale(value, sf)

    def encode(self, name: str, value: float | None) -> RegisterWrite:
        """The write storing engineering ``value`` (None: not implemented) into point ``name``."""
        return self.encode_raw(name, None if value is None else self.raw_for(name, value))


def decode_model(mdef: ModelDef, address: int, registers: Sequence[int]) -> ModelBlock:
    """Wrap one model's registers (read from its ID register on) for decoding; copies the input."""
    regs = tuple(registers)
    if regs and regs[0] != mdef.id:
        raise ValueError(f"registers at {address} hold model {regs[0]}, not {mdef.id}")
    return ModelBlock(mdef, address, regs, layout(mdef, regs))


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One FC3 read the driver must perform: ``count`` registers from ``address``."""

    address: int
    count: int


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """Where a discovered model lives: ``address`` of its ID register and its ``length`` L."""

    model_id: int
    address: int
    length: int

    def requests(self, max_count: int = MAX_READ_COUNT) -> tuple[ReadRequest, ...]:
        """The reads that fetch the whole model (ID and L included), split at ``max_count``."""
        total = self.length + 2
        return tuple(
            ReadRequest(self.address + start, min(max_count, total - start))
            for start in range(0, total, max_count)
        )


@dataclass(frozen=True, slots=True)
class ReadSpan:
    """One FC3 read covering whole models: the models it carries and where each starts."""

    address: int
    count: int
    models: tuple[ModelLocation, ...]

    def slice(self, registers: Sequence[int], location: ModelLocation) -> list[int]:
        """The registers of ``location`` (ID and L included) out of this span's read."""
        start = location.address - self.address
        return list(registers[start:start + location.length + 2])


def plan_reads(
    locations: Sequence[ModelLocation], max_count: int = MAX_READ_COUNT
) -> tuple[tuple[ReadSpan, ...], tuple[ModelLocation, ...]]:
    """Group models into as few reads as fit ``max_count`` registers each.

    Models are taken in address order; a span may carry the registers of models between them
    (one round trip costs more than a few extra registers). Returns the spans and the models
    too large for any span, which are read on their own with ``ModelLocation.requests``.
    """
    spans: list[ReadSpan] = []
    large: list[ModelLocation] = []
    current: list[ModelLocation] = []

    def close() -> None:
        if current:
            start = current[0].address
            end = current[-1].address + current[-1].length + 2
            spans.append(ReadSpan(start, end - start, tuple(current)))
            current.clear()

    for loc in sorted(locations, key=lambda m: m.address):
        if loc.length + 2 > max_count:
            large.append(loc)
            continue
        if current and loc.address + loc.length + 2 - current[0].address > max_count:
            close()
        current.append(loc)
    close()
    return tuple(spans), tuple(large)


@dataclass(frozen=True, slots=True)
class SunSpecMap:
    """A discovered SunSpec map: its base address and model chain in device order."""

    base_address: int
    models: tuple[ModelLocation, ...]

    def find(self, *model_ids: int) -> ModelLocation | None:
        """The first model in chain order whose id is one of ``model_ids``."""
        return next((m for m in self.models if m.model_id in model_ids), None)

    @property
    def model_ids(self) -> tuple[int, ...]:
        """Model ids in chain order."""
        return tuple(m.model_id for m in self.models)


@dataclass(frozen=True, slots=True)
class Discovery:
    """Discovery state: which base is being probed or which header is expected next.

    Drive it with :func:`start_discovery` and :func:`discovery_step`; ``request`` is the read the
    caller must perform next and feed back.
    """

    bases: tuple[int, ...]
    base_index: int = 0
    base_address: int | None = None  # set once a marker is found
    models: tuple[ModelLocation, ...] = ()

    @property
    def request(self) -> ReadRequest:
        """The read to perform next: marker + first header, or the next model header."""
        if self.base_address is None:
            return ReadRequest(self.bases[self.base_index], 4)
        return ReadRequest(self._next_address(), 2)

    def _next_address(self) -> int:
        assert self.base_address is not None  # noqa: S101 - only called in the chain phase
        if not self.models:
            return self.base_address + 2
        last = self.models[-1]
        return last.address + last.length + 2


def start_discovery(bases: Sequence[int] = DEFAULT_BASE_ADDRESSES) -> Discovery:
    """A fresh discovery that probes ``bases`` in order (default 40000, 0, 50000)."""
    if not bases:
        raise ValueError("no base addresses to probe")
    return Discovery(bases=tuple(bases))


def discovery_step(state: Discovery, registers: Sequence[int] | None) -> Discovery | SunSpecMap:
    """Feed the answer to ``state.request``; returns the next state, or the finished map.

    ``registers`` None means the device rejected the read (Modbus exception): at a base that
    means "no map here", inside the chain it means the chain is truncated.

    Raises:
        DiscoveryError: no "SunS" marker at any base, or the chain is truncated or runs wild.
    """
    req = state.request
    regs = None if registers is None else tuple(registers)
    if state.base_address is None:
        if regs is not None and len(regs) >= 2 and regs[:2] == SUNS_MARKER:
            found = Discovery(state.bases, state.base_index, req.address)
            return _header(found, regs[2:4], req.address + 2) if len(regs) >= 4 else found
        if state.base_index + 1 < len(state.bases):
            return Discovery(state.bases, state.base_index + 1)
        tried = ", ".join(str(b) for b in state.bases)
        raise DiscoveryError(f"no SunSpec marker 'SunS' at base address {tried}")
    if regs is None or len(regs) < 2:
        raise DiscoveryError(f"SunSpec model chain truncated: no model header at {req.address}")
    return _header(state, regs[:2], req.address)


def _header(state: Discovery, header: Sequence[int], address: int) -> Discovery | SunSpecMap:
    assert state.base_address is not None  # noqa: S101 - callers set it
    if len(header) < 2:
        raise DiscoveryError(f"SunSpec model chain truncated: no model header at {address}")
    model_id, length = header[0], header[1]
    if model_id == END_MODEL_ID:
        return SunSpecMap(state.base_address, state.models)
    if address + length + 2 > 0x10000:
        raise DiscoveryError(f"model {model_id} at {address} (L={length}) runs past the address space")
    if len(state.models) >= _MAX_MODELS:
        raise DiscoveryError(f"more than {_MAX_MODELS} models without an end marker")
    loc = ModelLocation(model_id, address, length)
    return Discovery(state.bases, state.base_index, state.base_address, (*state.models, loc))
