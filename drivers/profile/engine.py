"""The pure profile engine: register answers -> point values -> telemetry, setpoints, identity, and back."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from drivers.base import Capability, Counters, DeviceInfo, DeviceTelemetry, Setpoints
from drivers.profile.codec import decode_raw, encode_raw, raw_for, scaled, unavailable
from drivers.profile.hooks import ProfileHook, make_hooks
from drivers.profile.planner import Read, Write, plan_reads, plan_writes, slice_point
from drivers.profile.schema import Profile, Term

__all__ = [
    "Compiled",
    "OutOfRange",
    "PointValues",
    "capabilities_from",
    "compile_profile",
    "decode_answers",
    "device_info_from",
    "identifies",
    "setpoints_from",
    "targets_for",
    "telemetry_from",
]

Raw = int | float | str


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """A point whose reading is outside its documented range (treated as unavailable)."""

    point: str
    value: float
    range: tuple[float, float]


@dataclass(slots=True)
class PointValues:
    """Decoded points: raw values (None = "not available") and scaled values (None = unavailable
    or out of range), with the out-of-range readings to log."""

    raw: dict[str, Raw | None] = field(default_factory=dict)
    value: dict[str, float | None] = field(default_factory=dict)
    out_of_range: list[OutOfRange] = field(default_factory=list)

    def merge(self, other: PointValues) -> PointValues:
        """These values updated by ``other``'s (a later read of some points)."""
        return PointValues(
            {**self.raw, **other.raw}, {**self.value, **other.value}, list(other.out_of_range)
        )


@dataclass(frozen=True, slots=True)
class Compiled:
    """A profile with its hooks built and its read plans made once (layout cached from load)."""

    profile: Profile
    hooks: tuple[ProfileHook, ...]
    identity_reads: tuple[Read, ...]
    scale_reads: tuple[Read, ...]
    poll_reads: tuple[Read, ...]
    control_reads: tuple[Read, ...]

    def reads_for(self, names: Iterable[str]) -> list[Read]:
        """The fewest reads that cover ``names`` under this device's limits."""
        p = self.profile
        return plan_reads(p.points, names, max_registers=p.max_read_registers, max_gap=p.max_gap)

    def control_names(self) -> tuple[str, ...]:
        """Every point a command writes or reads back, plus the points hooks compare."""
        p = self.profile
        names = [p.read_back_of(n) for ns in p.control_points().values() for n in ns]
        names += [n for hook in self.hooks for n in hook.compares]
        return tuple(dict.fromkeys(names))


def compile_profile(profile: Profile) -> Compiled:
    """Build the hooks and plan identification, scale-factor, poll and read-back reads.

    Raises:
        ValueError: a hook is unknown or badly configured, or names an unknown point.
    """
    hooks = tuple(make_hooks(tuple((h.name, h.params) for h in profile.hooks)))
    for hook in hooks:
        for name in hook.points:
            if name not in profile.points:
                raise ValueError(f"hook {type(hook).__name__}: point {name!r} is not defined")
    plan = _Planner(profile)
    controls = [profile.read_back_of(n) for ns in profile.control_points().values() for n in ns]
    controls += [n for hook in hooks for n in hook.compares]
    poll = [*profile.telemetry_points(), *controls, *(n for hook in hooks for n in hook.reads)]
    return Compiled(
        profile=profile,
        hooks=hooks,
        identity_reads=tuple(plan(profile.identity_points())),
        scale_reads=tuple(plan(profile.scale_points())),
        poll_reads=tuple(plan(dict.fromkeys(poll))),
        control_reads=tuple(plan(dict.fromkeys(controls))),
    )


class _Planner:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def __call__(self, names: Iterable[str]) -> list[Read]:
        p = self.profile
        return plan_reads(p.points, names, max_registers=p.max_read_registers, max_gap=p.max_gap)


def decode_answers(
    profile: Profile,
    answers: Sequence[tuple[Read, Sequence[int]]],
    scale_factors: Mapping[str, int] | None = None,
) -> PointValues:
    """Decode every point the reads covered: "not available" sentinels give None, and so does a
    value outside its documented range (listed in ``out_of_range`` for the driver to log)."""
    sfs = scale_factors or {}
    out = PointValues()
    for read, registers in answers:
        for name in read.points:
            point = profile.points[name]
            raw = decode_raw(point, slice_point(read, registers, point))
            if unavailable(point, raw):
                out.raw[name] = out.value[name] = None
                continue
            out.raw[name] = raw
            if isinstance(raw, str):
                out.value[name] = None
                continue
            sf = sfs.get(point.scale_point) if point.scale_point else None
            if point.scale_point is not None and sf is None:
                out.value[name] = None  # its scale factor is not available
                continue
            value = scaled(point, raw, sf)
            if point.range is not None and not point.range[0] <= value <= point.range[1]:
                out.out_of_range.append(OutOfRange(name, value, point.range))
                out.value[name] = None
                continue
            out.value[name] = value
    return out


def scale_factors_from(values: PointValues) -> dict[str, int]:
    """The scale-factor points that were available, as integers."""
    return {n: int(v) for n, v in values.raw.items() if isinstance(v, int)}


def _sum(terms: Sequence[Term], values: Mapping[str, float | None]) -> float | None:
    if not terms:
        return None
    parts = [values.get(t.point) for t in terms]
    if any(p is None for p in parts):
        return None
    return sum(p * t.factor for p, t in zip(parts, terms, strict=True) if p is not None)


def _adjusted(compiled: Compiled, values: PointValues) -> dict[str, float | None]:
    adjusted = dict(values.value)
    for hook in compiled.hooks:
        adjusted = hook.adjust_values(adjusted, values.raw)
    return adjusted


def telemetry_from(
    compiled: Compiled, values: PointValues, *, now: datetime, capacity_wh: float | None = None
) -> DeviceTelemetry:
    """Normalise point values into telemetry (gateway signs: battery + discharging, grid + importing).

    ``load_w`` without terms of its own is ``solar_w + battery_w + grid_w`` when the grid is metered.
    """
    t = compiled.profile.telemetry
    v = _adjusted(compiled, values)
    solar = _sum(t.solar_w, v)
    if solar is not None:
        solar = max(0.0, solar)  # DC sensors read a few W negative at night
    battery = _sum(t.battery_w, v)
    grid = _sum(t.grid_w, v)
    load = _sum(t.load_w, v)
    if load is None and not t.load_w and grid is not None:
        load = (solar or 0.0) + (battery or 0.0) + grid
    grid_up: bool | None = None
    if t.grid_status is not None:
        state = values.raw.get(t.grid_status.point)
        grid_up = None if not isinstance(state, int) else state not in t.grid_status.down_values
    return DeviceTelemetry(
        taken_at=now,
        solar_w=solar,
        battery_w=battery,
        grid_w=grid,
        load_w=load,
        soc_pct=_sum(t.soc_pct, v),
        capacity_wh=_sum(t.capacity_wh, v) or capacity_wh,
        grid_up=grid_up,
        counters=Counters(grid_import_wh=_sum(t.grid_import_wh, v), grid_export_wh=_sum(t.grid_export_wh, v)),
    )


def _holds(raw: Mapping[str, Raw | None], state: Mapping[str, int]) -> bool:
    return all(raw.get(p) == v for p, v in state.items())


def _whole(value: float | None) -> int:
    return 0 if value is None else round(value)


def setpoints_from(compiled: Compiled, values: PointValues, capabilities: frozenset[Capability]) -> Setpoints:
    """The setpoints the device holds, read from its control points.

    Setpoints the device cannot honour read as their neutral value; a mode register in none of
    the documented states reads as the neutral state (a command then writes it again).
    """
    c = compiled.profile.controls
    profile = compiled.profile
    raw, v = values.raw, values.value
    reserve = 0
    if c.backup_reserve is not None and Capability.BACKUP_RESERVE in capabilities:
        reserve = _whole(v.get(profile.read_back_of(c.backup_reserve.point)))
    grid_charging = False
    if c.grid_charging is not None and Capability.GRID_CHARGING in capabilities:
        grid_charging = _holds(raw, c.grid_charging.allowed)
    export: int | None = None
    e = c.export_limit
    if (
        e is not None and Capability.EXPORT_LIMIT in capabilities
        and _holds(raw, e.limited) and not _holds(raw, e.unlimited)
    ):
        export = _whole(v.get(e.limit_point))
    battery: int | None = None
    revert_s = 0
    b = c.battery_power
    if b is not None and Capability.BATTERY_POWER in capabilities:
        if _holds(raw, b.charge) and not _holds(raw, b.idle):
            battery = -_whole(v.get(b.charge_power_point))
        elif _holds(raw, b.discharge) and not _holds(raw, b.idle):
            battery = _whole(v.get(b.discharge_power_point))
        if battery is not None and b.duration_point is not None:
            revert_s = _whole(v.get(b.duration_point)) * b.duration_unit_s
    return Setpoints(
        reserve_pct=reserve, grid_charging=grid_charging, export_limit_w=export,
        battery_w=battery, revert_s=revert_s,
    )  # fmt: skip


def _duration(setpoints: Setpoints, unit_s: int, max_units: int | None) -> int:
    if setpoints.revert_s <= 0:
        return max_units or 0
    units = max(1, math.ceil(setpoints.revert_s / unit_s))
    return units if max_units is None else min(units, max_units)


def targets_for(
    compiled: Compiled,
    setpoints: Setpoints,
    capabilities: frozenset[Capability],
    held: PointValues,
    scale_factors: Mapping[str, int] | None = None,
) -> list[tuple[str, int | float]]:
    """The raw values that express ``setpoints``, in write order (values before the mode
    registers they qualify, so the device never acts on a half-written command), after the hooks."""
    c = compiled.profile.controls
    points = compiled.profile.points
    sfs = scale_factors or {}
    # (point, value, is_raw): a state's documented mode values go as they are, quantities scale.
    wanted: list[tuple[str, float, bool]] = []

    def state(values: Mapping[str, int]) -> None:
        wanted.extend((name, raw, True) for name, raw in values.items())

    if c.backup_reserve is not None and Capability.BACKUP_RESERVE in capabilities:
        wanted.append((c.backup_reserve.point, setpoints.reserve_pct, False))
    if c.grid_charging is not None and Capability.GRID_CHARGING in capabilities:
        state(c.grid_charging.allowed if setpoints.grid_charging else c.grid_charging.forbidden)
    if c.export_limit is not None and Capability.EXPORT_LIMIT in capabilities:
        if setpoints.export_limit_w is None:
            state(c.export_limit.unlimited)
        else:
            wanted.append((c.export_limit.limit_point, setpoints.export_limit_w, False))
            state(c.export_limit.limited)
    b = c.battery_power
    if b is not None and Capability.BATTERY_POWER in capabilities:
        power = setpoints.battery_w
        if power is None:
            state(b.idle)
        else:
            charging = power < 0
            power_point = b.charge_power_point if charging else b.discharge_power_point
            wanted.append((power_point, abs(power), False))
            if b.duration_point is not None:
                units = _duration(setpoints, b.duration_unit_s, b.max_duration)
                wanted.append((b.duration_point, units, True))
            state(b.charge if charging else b.discharge)
    out: dict[str, int | float] = {}
    for name, value, is_raw in wanted:
        point = points[name]
        if is_raw:
            out[name] = int(value)
        else:
            sf = sfs.get(point.scale_point) if point.scale_point else None
            out[name] = raw_for(point, value, sf)
    writes: list[tuple[str, int | float]] = list(out.items())  # one value per point, last wins
    for hook in compiled.hooks:
        writes = hook.adjust_writes(writes, held.raw)
    return writes


def writes_for(compiled: Compiled, targets: Sequence[tuple[str, int | float]]) -> list[Write]:
    """The write requests for ``targets`` (point, raw), contiguous points joined into one FC16."""
    p = compiled.profile
    encoded = [(name, encode_raw(p.points[name], raw)) for name, raw in targets]
    return plan_writes(p.points, encoded, max_registers=p.max_write_registers)


def capabilities_from(compiled: Compiled, values: PointValues) -> frozenset[Capability]:
    """What the device measures and honours: a measurement when its points read a value at
    connect (a SUN2000 without a LUNA2000 reads its battery points as "not available"), a
    control when the profile declares it and its read-back points read a value; the battery's
    controls only with a battery."""
    profile = compiled.profile
    t = profile.telemetry
    v = _adjusted(compiled, values)
    has = {
        Capability.SOLAR: _sum(t.solar_w, v) is not None,
        Capability.BATTERY: _sum(t.soc_pct, v) is not None and _sum(t.battery_w, v) is not None,
        Capability.GRID_METER: _sum(t.grid_w, v) is not None,
        Capability.GRID_STATUS: t.grid_status is not None
        and isinstance(values.raw.get(t.grid_status.point), int),
    }
    needs_battery = {"backup_reserve", "grid_charging", "battery_power"}
    for control, names in profile.control_points().items():
        readable = all(values.raw.get(profile.read_back_of(n)) is not None for n in names)
        if control in needs_battery and not has[Capability.BATTERY]:
            readable = False
        has[Capability(control)] = readable
    return frozenset(c for c, ok in has.items() if ok)


def identifies(compiled: Compiled, values: PointValues) -> str | None:
    """The model name when the match point holds one of the family's values, else None."""
    ident = compiled.profile.identity
    raw = values.raw.get(ident.match_point)
    if isinstance(raw, str):
        return raw if raw.startswith(ident.match_prefixes) and ident.match_prefixes else None
    return ident.models.get(raw) if isinstance(raw, int) else None


def device_info_from(compiled: Compiled, values: PointValues) -> DeviceInfo:
    """Nameplate and identity from the identification points."""
    ident = compiled.profile.identity

    def text(name: str | None) -> str:
        raw = None if name is None else values.raw.get(name)
        return raw if isinstance(raw, str) else "" if raw is None else str(raw)

    def number(name: str | None) -> float | None:
        return None if name is None else values.value.get(name)

    model = identifies(compiled, values) or text(ident.model_point) or ident.model
    return DeviceInfo(
        manufacturer=ident.manufacturer,
        model=model,
        serial_number=text(ident.serial_point),
        firmware_version=text(ident.firmware_point),
        nameplate_power_w=number(ident.rated_power_point),
        battery_capacity_wh=number(ident.capacity_point),
        max_charge_w=number(ident.max_charge_point),
        max_discharge_w=number(ident.max_discharge_point),
    )
