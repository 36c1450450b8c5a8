"""The declarative Modbus profile format: pydantic models, their cross-checks, and loading a file."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "WORDS",
    "BackupReserveControl",
    "BatteryPowerControl",
    "Controls",
    "ExportLimitControl",
    "GridChargingControl",
    "GridStatus",
    "HookRef",
    "Identity",
    "Point",
    "Profile",
    "ProfileError",
    "Source",
    "Telemetry",
    "Term",
    "load_profile",
    "parse_profile",
]

#: Registers per value type (``str`` takes its ``words``).
WORDS: Mapping[str, int] = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "u64": 4, "f32": 2}

PointType = Literal["u16", "s16", "u32", "s32", "u64", "f32", "str"]
Table = Literal["holding", "input"]


class ProfileError(ValueError):
    """A profile file is not valid: names the file, the point (or key) and the reason."""

    def __init__(self, file: str, where: str, reason: str) -> None:
        super().__init__(f"{file}: {where}: {reason}")
        self.file = file
        self.where = where
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The vendor document the addresses come from."""

    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    note: str = ""


class Point(_Strict):
    """One value on the device.

    ``address`` is the PDU address (0-based, what goes on the wire). Value = raw x ``scale``, or
    raw x 10^sf with ``scale_point`` naming an s16 scale-factor point (SunSpec style, read once
    at connect). ``na`` lists raw values that mean "not available"; ``range`` the documented
    range of the scaled value (a reading outside it is logged and treated as unavailable).
    ``access``: ``r`` read only, ``rw`` read and write (holding only), ``w`` write only (a
    control writing it names another point to read back).
    """

    table: Table
    address: int = Field(ge=0, le=65535)
    type: PointType
    words: int | None = Field(None, ge=1, le=125)
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    scale_point: str | None = None
    unit: str = ""
    na: tuple[int, ...] = ()
    range: tuple[float, float] | None = None
    access: Literal["r", "rw", "w"] = "r"

    @property
    def count(self) -> int:
        """Registers the point occupies."""
        return self.words if self.type == "str" and self.words else WORDS.get(self.type, 1)

    @property
    def end(self) -> int:
        """The address after the point's last register."""
        return self.address + self.count

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        if self.type == "str" and self.words is None:
            raise ValueError("a str point needs words")
        if self.type != "str" and self.words is not None:
            raise ValueError(f"words is only for str points, not {self.type}")
        if self.address + self.count > 65536:
            raise ValueError(f"address {self.address} + {self.count} registers is beyond 65535")
        if self.access != "r" and self.table != "holding":
            raise ValueError("only holding registers can be written")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} is empty")
        return self


class Term(_Strict):
    """One point's part of a telemetry value: value x ``factor``."""

    point: str
    factor: float = 1.0


class GridStatus(_Strict):
    """The grid is down while ``point`` holds one of ``down_values``."""

    point: str
    down_values: tuple[int, ...] = Field(min_length=1)


class Telemetry(_Strict):
    """How the normalised readings are made of points (sums of terms, SI units, gateway signs).

    ``load_w`` omitted is ``solar_w + battery_w + grid_w``.
    """

    solar_w: tuple[Term, ...] = ()
    battery_w: tuple[Term, ...] = ()
    grid_w: tuple[Term, ...] = ()
    load_w: tuple[Term, ...] = ()
    soc_pct: tuple[Term, ...] = ()
    capacity_wh: tuple[Term, ...] = ()
    grid_import_wh: tuple[Term, ...] = ()
    grid_export_wh: tuple[Term, ...] = ()
    grid_status: GridStatus | None = None


class Identity(_Strict):
    """Who the device is: nameplate points and the values that identify the family.

    The family is recognised when ``match_point`` holds one of the codes in ``models`` (which
    names them), or, for a text point, starts with one of ``match_prefixes``; ``scan`` reads it.
    """

    manufacturer: str = Field(min_length=1)
    model: str = Field(min_length=1)
    serial_point: str | None = None
    model_point: str | None = None
    firmware_point: str | None = None
    rated_power_point: str | None = None
    capacity_point: str | None = None
    max_charge_point: str | None = None
    max_discharge_point: str | None = None
    match_point: str
    models: Mapping[int, str] = Field(default_factory=dict)
    match_prefixes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_way(self) -> Identity:
        if bool(self.models) == bool(self.match_prefixes):
            raise ValueError("give either models (codes of a number point) or match_prefixes (text)")
        return self


class BackupReserveControl(_Strict):
    """The reserve % is the value of ``point``."""

    point: str
    read_back: str | None = None


class GridChargingControl(_Strict):
    """Grid charging allowed while the points hold ``allowed``, not while they hold ``forbidden``."""

    allowed: Mapping[str, int] = Field(min_length=1)
    forbidden: Mapping[str, int] = Field(min_length=1)


class ExportLimitControl(_Strict):
    """Unlimited while the points hold ``unlimited``; capped at ``limit_point`` W under ``limited``."""

    unlimited: Mapping[str, int] = Field(min_length=1)
    limited: Mapping[str, int] = Field(min_length=1)
    limit_point: str


class BatteryPowerControl(_Strict):
    """Forced charge/discharge: the points hold ``idle``, ``charge`` or ``discharge`` (mode
    registers, written last), the power in W in ``charge_power_point`` / ``discharge_power_point``
    (written first), and a revert after ``duration_point`` x ``duration_unit_s`` seconds.
    ``watchdog_s``: the device drops the command unless it is re-sent within this many seconds;
    the driver refreshes it.
    """

    idle: Mapping[str, int] = Field(min_length=1)
    charge: Mapping[str, int] = Field(min_length=1)
    discharge: Mapping[str, int] = Field(min_length=1)
    charge_power_point: str
    discharge_power_point: str
    duration_point: str | None = None
    duration_unit_s: int = Field(60, ge=1)
    max_duration: int | None = Field(None, ge=1)
    watchdog_s: float | None = Field(None, gt=0)


class Controls(_Strict):
    """What the device honours, and through which points."""

    backup_reserve: BackupReserveControl | None = None
    grid_charging: GridChargingControl | None = None
    export_limit: ExportLimitControl | None = None
    battery_power: BatteryPowerControl | None = None


class HookRef(_Strict):
    """A named brand procedure (``drivers/profile/hooks.py``) and its parameters."""

    name: str
    params: Mapping[str, Any] = Field(default_factory=dict)


class Profile(_Strict):
    """One model family's register map, controls and transport limits."""

    family: str = Field(pattern=r"^[a-z0-9_]+$")
    source: tuple[Source, ...] = Field(min_length=1)
    identity: Identity
    default_unit_id: int = Field(1, ge=0, le=255)
    max_read_registers: int = Field(100, ge=1, le=125)
    max_gap: int = Field(8, ge=0, le=125)
    max_write_registers: int = Field(123, ge=1, le=123)
    connect_settle_s: float = Field(0.0, ge=0, le=30)
    single_client: bool = False
    points: Mapping[str, Point] = Field(min_length=1)
    telemetry: Telemetry
    controls: Controls = Controls()
    #: Write-only points and the point that shows what they hold (read to confirm a write).
    read_backs: Mapping[str, str] = Field(default_factory=dict)
    hooks: tuple[HookRef, ...] = ()

    def control_points(self) -> dict[str, tuple[str, ...]]:
        """Each control's points, as written (values first, mode registers last)."""
        c = self.controls
        out: dict[str, tuple[str, ...]] = {}
        if c.backup_reserve is not None:
            out["backup_reserve"] = (c.backup_reserve.point,)
        if c.grid_charging is not None:
            g = c.grid_charging
            out["grid_charging"] = tuple(dict.fromkeys([*g.allowed, *g.forbidden]))
        if c.export_limit is not None:
            e = c.export_limit
            out["export_limit"] = tuple(dict.fromkeys([e.limit_point, *e.unlimited, *e.limited]))
        if c.battery_power is not None:
            b = c.battery_power
            values = [b.charge_power_point, b.discharge_power_point]
            if b.duration_point is not None:
                values.append(b.duration_point)
            out["battery_power"] = tuple(dict.fromkeys([*values, *b.idle, *b.charge, *b.discharge]))
        return out

    def read_back_of(self, point: str) -> str:
        """The point read to confirm a write to ``point`` (itself unless write-only)."""
        if point in self.read_backs:
            return self.read_backs[point]
        rb = self.controls.backup_reserve
        if rb is not None and rb.point == point and rb.read_back is not None:
            return rb.read_back
        return point

    def telemetry_points(self) -> tuple[str, ...]:
        """Every point a reading needs (telemetry terms and grid status)."""
        t = self.telemetry
        names: list[str] = []
        for terms in (t.solar_w, t.battery_w, t.grid_w, t.load_w, t.soc_pct, t.capacity_wh,
                      t.grid_import_wh, t.grid_export_wh):  # fmt: skip
            names += [term.point for term in terms]
        if t.grid_status is not None:
            names.append(t.grid_status.point)
        return tuple(dict.fromkeys(names))

    def identity_points(self) -> tuple[str, ...]:
        """Every point identification reads (nameplate and the match point)."""
        i = self.identity
        names = [i.match_point, i.serial_point, i.model_point, i.firmware_point, i.rated_power_point,
                 i.capacity_point, i.max_charge_point, i.max_discharge_point]  # fmt: skip
        return tuple(dict.fromkeys(n for n in names if n is not None))

    def scale_points(self) -> tuple[str, ...]:
        """Scale-factor points (read once at connect)."""
        return tuple(dict.fromkeys(p.scale_point for p in self.points.values() if p.scale_point))

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        _check_references(self)
        _check_overlaps(self.points)
        _check_writable(self)
        return self


def _check_references(profile: Profile) -> None:
    points = profile.points
    for name, point in points.items():
        if point.scale_point is not None:
            sf = points.get(point.scale_point)
            if sf is None:
                raise ValueError(f"point {name}: scale_point {point.scale_point!r} is not a point")
            if sf.type != "s16":
                raise ValueError(f"point {name}: scale_point {point.scale_point!r} must be s16")
    refs = [("telemetry", n) for n in profile.telemetry_points()]
    refs += [("identity", n) for n in profile.identity_points()]
    for control, names in profile.control_points().items():
        refs += [(f"controls.{control}", n) for n in names]
    rb = profile.controls.backup_reserve
    if rb is not None and rb.read_back is not None:
        refs.append(("controls.backup_reserve.read_back", rb.read_back))
    for written, shown in profile.read_backs.items():
        refs += [("read_backs", written), ("read_backs", shown)]
    for where, name in refs:
        if name not in points:
            raise ValueError(f"{where}: point {name!r} is not defined")
    ident = profile.identity
    is_text = points[ident.match_point].type == "str"
    if is_text != bool(ident.match_prefixes):
        kind = "match_prefixes" if is_text else "models"
        raise ValueError(f"identity: point {ident.match_point} is matched with {kind}")


def _check_overlaps(points: Mapping[str, Point]) -> None:
    by_table: dict[str, list[tuple[int, int, str]]] = {}
    for name, point in points.items():
        by_table.setdefault(point.table, []).append((point.address, point.end, name))
    for table, spans in by_table.items():
        spans.sort()
        for (_, end, name), (start, _, other) in itertools.pairwise(spans):
            if start < end:
                raise ValueError(f"point {other}: overlaps point {name} ({table} register {start})")


def _check_writable(profile: Profile) -> None:
    points = profile.points
    for control, names in profile.control_points().items():
        for name in names:
            point = points[name]
            if point.access == "r":
                raise ValueError(f"controls.{control}: point {name} is read-only (access r)")
            read_back = points[profile.read_back_of(name)]
            if read_back.access == "w":
                raise ValueError(
                    f"controls.{control}: point {name} is write-only and has no read-back point"
                )
    for name, point in points.items():
        if point.access == "w" and not any(
            name in names for names in profile.control_points().values()
        ):
            raise ValueError(f"point {name}: write-only but no control writes it")


def _where(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "points":
        return f"point {parts[1]}" + ("." + ".".join(parts[2:]) if parts[2:] else "")
    return ".".join(parts) or "profile"


def parse_profile(data: Any, file: str) -> Profile:
    """Validate a profile document (already parsed YAML).

    Raises:
        ProfileError: naming ``file``, the point (or key) and the reason.
    """
    if not isinstance(data, Mapping):
        raise ProfileError(file, "profile", "not a mapping")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(tuple(first["loc"]))
        msg = str(first["msg"]).removeprefix("Value error, ")
        if where == "profile" and ": " in msg:
            where, msg = msg.split(": ", 1)
        raise ProfileError(file, where, msg) from None


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file (blocking: call it at start-up, not on the loop).

    Raises:
        ProfileError: naming the file, the point (or key) and the reason.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(path.name, "file", str(exc)) from None
    profile = parse_profile(data, path.name)
    if profile.family != path.stem:
        raise ProfileError(path.name, "family", f"must equal the file name {path.stem!r}")
    return profile
