"""Energy history (pure): power flows, 5-minute buckets, outages and the Fleet history bodies."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.base import DeviceTelemetry

Period = Literal["day", "week", "month", "year", "lifetime"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month", "year", "lifetime")

BUCKET: Final = timedelta(minutes=5)
MAX_GAP: Final = timedelta(minutes=5)
# The most entries one energy answer holds (~8 MB of JSON), counted after the window is clipped
# to the site's data; more is refused with a 400 that says how to ask.
MAX_ENTRIES: Final = 10_000
# The most outages one backup answer lists.
MAX_EVENTS: Final = 10_000
# Query dates must leave a year of room inside datetime's range: window arithmetic steps up to
# one period unit (at most a year) and one UTC offset past either bound.
_YEARS: Final = range(2, 9999)

_ZERO_FIELDS: Final[tuple[str, ...]] = (
    "generator_energy_exported",
    "grid_services_energy_imported",
    "grid_services_energy_exported",
    "grid_energy_exported_from_generator",
    "battery_energy_imported_from_generator",
    "consumer_energy_imported_from_generator",
)


# --------------------------------------------------------------------------------------------
# Flows


@dataclass(frozen=True, slots=True)
class Flows:
    """The seven power flows of a home in W, each >= 0 (source_to_sink)."""

    solar_to_home: float = 0.0
    solar_to_battery: float = 0.0
    solar_to_grid: float = 0.0
    battery_to_home: float = 0.0
    battery_to_grid: float = 0.0
    grid_to_home: float = 0.0
    grid_to_battery: float = 0.0


@dataclass(frozen=True, slots=True)
class FlowEnergy:
    """The seven energy flows of a home in Wh, each >= 0 (same names as ``Flows``)."""

    solar_to_home: float = 0.0
    solar_to_battery: float = 0.0
    solar_to_grid: float = 0.0
    battery_to_home: float = 0.0
    battery_to_grid: float = 0.0
    grid_to_home: float = 0.0
    grid_to_battery: float = 0.0

    def __add__(self, other: FlowEnergy) -> FlowEnergy:
        return FlowEnergy(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def scaled(self, factor: float) -> FlowEnergy:
        """This energy multiplied by ``factor`` (used to split an interval across buckets)."""
        return FlowEnergy(*(v * factor for v in self.values()))

    def values(self) -> tuple[float, ...]:
        """The seven flows in declaration order (the order of ``FLOW_NAMES``)."""
        return tuple(getattr(self, name) for name in FLOW_NAMES)

    @classmethod
    def from_flows(cls, flows: Flows, hours: float) -> FlowEnergy:
        """Energy of ``flows`` (W) held constant for ``hours`` (h)."""
        return cls(*(getattr(flows, name) * hours for name in FLOW_NAMES))

    def is_zero(self) -> bool:
        """True when every flow is 0 Wh."""
        return not any(self.values())


FLOW_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(FlowEnergy))


def split_flows(solar_w: float, battery_w: float, grid_w: float, load_w: float) -> Flows:
    """Split a site's power balance into the seven flows a home battery system has.

    Priorities: solar serves the home first; battery discharge serves the home before it exports;
    grid import serves the home before it charges the battery; solar left after the home charges
    the battery (after any grid charging) and exports the rest.

    Args:
        solar_w: PV production, W (negative readings, e.g. inverter standby draw, count as 0).
        battery_w: battery power, W, + discharging / - charging.
        grid_w: grid power, W, + importing / - exporting.
        load_w: home consumption, W; ``load_w = solar_w + battery_w + grid_w`` is expected.

    Returns:
        The flows in W, all >= 0. No flow exceeds its source or its sink, so an unbalanced
        reading leaves the mismatch unattributed instead of inventing energy.
    """
    solar = max(solar_w, 0.0)
    discharge = max(battery_w, 0.0)
    charge = max(-battery_w, 0.0)
    grid_import = max(grid_w, 0.0)
    grid_export = max(-grid_w, 0.0)
    home = max(load_w, 0.0)

    solar_to_home = min(solar, home)
    home -= solar_to_home
    battery_to_home = min(discharge, home)
    home -= battery_to_home
    grid_to_home = min(grid_import, home)

    grid_to_battery = min(grid_import - grid_to_home, charge)
    solar_left = solar - solar_to_home
    solar_to_battery = min(solar_left, charge - grid_to_battery)
    battery_to_grid = min(discharge - battery_to_home, grid_export)
    solar_to_grid = min(solar_left - solar_to_battery, grid_export - battery_to_grid)
    return Flows(
        solar_to_home=solar_to_home,
        solar_to_battery=solar_to_battery,
        solar_to_grid=solar_to_grid,
        battery_to_home=battery_to_home,
        battery_to_grid=battery_to_grid,
        grid_to_home=grid_to_home,
        grid_to_battery=grid_to_battery,
    )


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One site power reading at ``taken_at`` (tz-aware); W with the DESIGN §2 signs."""

    taken_at: datetime
    solar_w: float = 0.0
    battery_w: float = 0.0
    grid_w: float = 0.0
    load_w: float | None = None

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None:
            raise ValueError("PowerSample.taken_at must be timezone-aware")

    @classmethod
    def from_telemetry(cls, telemetry: DeviceTelemetry) -> PowerSample:
        """A sample from site telemetry; unmeasured quantities count as 0 W."""
        return cls(
            taken_at=telemetry.taken_at,
            solar_w=telemetry.solar_w or 0.0,
            battery_w=telemetry.battery_w or 0.0,
            grid_w=telemetry.grid_w or 0.0,
            load_w=telemetry.load_w,
        )

    @property
    def flows(self) -> Flows:
        """This reading split into flows (load from the balance when not measured)."""
        load = self.load_w
        if load is None:
            load = max(self.solar_w, 0.0) + self.battery_w + self.grid_w
        return split_flows(self.solar_w, self.battery_w, self.grid_w, load)


def integrate(
    prev_sample: PowerSample, sample: PowerSample, *, max_gap: timedelta = MAX_GAP
) -> FlowEnergy:
    """Energy (Wh) that flowed between two consecutive samples.

    Left-rectangle rule (zero-order hold): a polled reading stands for the power until the next
    reading. That is what the device told us, and it makes splitting an interval across bucket
    boundaries exact (energy is proportional to time inside the interval).

    Returns zero energy when the interval is longer than ``max_gap`` (data was missing; we do not
    guess what flowed) or not positive (a repeated or out-of-order sample).
    """
    dt = sample.taken_at - prev_sample.taken_at
    if dt <= timedelta(0) or dt > max_gap:
        return FlowEnergy()
    return FlowEnergy.from_flows(prev_sample.flows, dt / timedelta(hours=1))


# --------------------------------------------------------------------------------------------
# Bucketing


@dataclass(frozen=True, slots=True)
class Bucket:
    """Energy that flowed during ``[start, start + 5 min)``; ``start`` is UTC and aligned."""

    start: datetime
    energy: FlowEnergy


def bucket_start(at: datetime, size: timedelta = BUCKET) -> datetime:
    """The UTC start of the bucket of length ``size`` containing the aware instant ``at``."""
    at_utc = at.astimezone(UTC)
    seconds = int(size.total_seconds())
    epoch = int(at_utc.timestamp() // seconds) * seconds
    return datetime.fromtimestamp(epoch, UTC)


class BucketAccumulator:
    """Integrates successive power samples into 5-minute energy buckets (pure; no clock).

    ``add`` returns the buckets completed by the new sample; the bucket still filling stays inside
    until a later sample passes its end or ``flush`` hands it out. Because the store adds bucket
    energy on conflict, a flushed partial bucket and its later remainder sum correctly.
    """

    def __init__(self, *, size: timedelta = BUCKET, max_gap: timedelta = MAX_GAP) -> None:
        """Create an empty accumulator.

        Args:
            size: bucket length; must divide an hour into whole seconds.
            max_gap: longest interval between samples that is still integrated.
        """
        seconds = size.total_seconds()
        if seconds <= 0 or seconds != int(seconds) or 3600 % int(seconds):
            raise ValueError("bucket size must be a whole number of seconds dividing 3600")
        self._size = size
        self._max_gap = max_gap
        self._prev: PowerSample | None = None
        self._open: dict[datetime, FlowEnergy] = {}

    @property
    def last_sample(self) -> PowerSample | None:
        """The sample the next interval starts from."""
        return self._prev

    def add(self, sample: PowerSample) -> list[Bucket]:
        """Integrate from the previous sample to ``sample``; return buckets now complete.

        A sample not later than the previous one is ignored.
        """
        prev = self._prev
        if prev is not None and sample.taken_at <= prev.taken_at:
            return []
        self._prev = sample
        if prev is not None:
            energy = integrate(prev, sample, max_gap=self._max_gap)
            if not energy.is_zero():
                self._spread(prev.taken_at, sample.taken_at, energy)
        now = sample.taken_at
        done = sorted(start for start in self._open if start + self._size <= now)
        return [Bucket(start, self._open.pop(start)) for start in done]

    def _spread(self, begin: datetime, end: datetime, energy: FlowEnergy) -> None:
        total = (end - begin).total_seconds()
        cursor = begin
        while cursor < end:
            start = bucket_start(cursor, self._size)
            stop = min(start + self._size, end)
            share = energy.scaled((stop - cursor).total_seconds() / total)
            self._open[start] = self._open.get(start, FlowEnergy()) + share
            cursor = stop

    def open_buckets(self) -> list[Bucket]:
        """The buckets still filling (at most one in steady state), without removing them."""
        return [Bucket(start, self._open[start]) for start in sorted(self._open)]

    def flush(self) -> list[Bucket]:
        """Hand out the buckets still filling and restart them from zero (e.g. on shutdown)."""
        out = self.open_buckets()
        self._open.clear()
        return out


# --------------------------------------------------------------------------------------------
# Query windows


class HistoryQueryError(ValueError):
    """A history query parameter is invalid; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        """Create the error for query parameter ``field``."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Window:
    """A resolved history window ``[start, end)``.

    Attributes:
        start: first instant included (aware, UTC); None means "from the site's first data" (a
            lifetime query without ``start_date``), settled by ``clip_window``.
        end: first instant excluded (aware, UTC).
        tz: zone whose local days, months and years shape the answer.
        now: the instant the query was resolved at; nothing after it is reported.
    """

    start: datetime | None
    end: datetime
    tz: ZoneInfo
    now: datetime


_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?P<frac>\.\d+)?"
    # A space in the sign position is a '+' that a client left unencoded in the query string.
    r"(?P<offset>[Zz]|(?P<sign>[-+ ])(?P<oh>[01]\d|2[0-3]):?(?P<om>[0-5]\d))?)?"
)


def parse_datetime(value: str, field: str, tz: ZoneInfo) -> datetime:
    """Parse an RFC 3339 date-time query value into an aware datetime.

    Accepts ``Z``/``z``, numeric offsets and any number of fractional digits. Leniencies: a value
    without an offset is local wall time in ``tz``; a bare date is local midnight in ``tz``.

    Raises:
        HistoryQueryError: naming ``field`` when the value is not a valid date-time or its year is
            outside 0002..9998.
    """
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise HistoryQueryError(field, f"not an RFC 3339 date-time: {value!r}")
    try:
        day = date.fromisoformat(match["date"])
    except ValueError:
        raise HistoryQueryError(field, f"not a valid date-time: {value!r}") from None
    if day.year not in _YEARS:
        raise HistoryQueryError(
            field, f"out of range: the year must be between 0002 and 9998 (got {value!r})"
        )
    try:
        if match["h"] is None:
            return datetime.combine(day, time(0), tzinfo=tz)
        frac = match["frac"] or "."
        clock = time(
            int(match["h"]), int(match["m"]), int(match["s"]), int(frac[1:7].ljust(6, "0"))
        )
        offset = match["offset"]
        if offset is None:
            return datetime.combine(day, clock, tzinfo=tz)
        if offset in ("Z", "z"):
            return datetime.combine(day, clock, tzinfo=UTC)
        delta = timedelta(hours=int(match["oh"]), minutes=int(match["om"]))
        zone = timezone(-delta if match["sign"] == "-" else delta)
        return datetime.combine(day, clock, tzinfo=zone)
    except ValueError:
        raise HistoryQueryError(field, f"not a valid date-time: {value!r}") from None


def zone(key: str, field: str = "time_zone") -> ZoneInfo:
    """The IANA zone ``key``.

    Note: the first lookup of a key reads the tz database from disk (cached afterwards).

    Raises:
        HistoryQueryError: naming ``field`` when the key is not a known IANA zone.
    """
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HistoryQueryError(field, f"unknown IANA time zone: {key!r}") from None


def _local_start(day: date, tz: ZoneInfo) -> datetime:
    # fold=0 maps a midnight skipped by DST onto the instant the day actually starts.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _next_day(day: date) -> date:
    return day + timedelta(days=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _next_year(day: date) -> date:
    return date(day.year + 1, 1, 1)


def _unit(day: date, period: Period) -> tuple[date, date]:
    """First day of the local period unit containing ``day`` and the first day after it."""
    if period == "day":
        return day, _next_day(day)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if period == "month":
        first = day.replace(day=1)
        return first, _next_month(first)
    first = date(day.year, 1, 1)
    return first, _next_year(first)


def resolve_window(
    period: str | None,
    start_date: str | None,
    end_date: str | None,
    time_zone: str | None,
    *,
    site_tz: str | ZoneInfo,
    now: datetime,
) -> Window:
    """Resolve the query parameters of ``calendar_history`` into a window (fleet-api §3.4).

    Missing ``start_date``/``end_date`` select the local day, week (Monday start), month or year
    containing ``end_date`` (or ``now``), in ``time_zone`` or else the site zone; only
    ``start_date`` selects from it to the end of its unit. ``lifetime`` without ``start_date``
    starts at the site's first data (``start`` None) and, without ``end_date``, runs to the end of
    this year. Empty strings count as missing. The window's size is not limited here: it is
    clipped to the site's data and its entries counted by ``plan_energy``.

    Args:
        period: ``day`` | ``week`` | ``month`` | ``year`` | ``lifetime``.
        start_date: RFC 3339 or None.
        end_date: RFC 3339 or None.
        time_zone: IANA zone of the request, or None.
        site_tz: the site's IANA zone (``installation_time_zone``).
        now: current instant (aware).

    Raises:
        HistoryQueryError: naming the offending parameter.
    """
    if not period:
        raise HistoryQueryError("period", "is required (day, week, month, year or lifetime)")
    per = _period(period)
    site_zone = site_tz if isinstance(site_tz, ZoneInfo) else zone(site_tz, "site_tz")
    tz = zone(time_zone) if time_zone else site_zone
    start = parse_datetime(start_date, "start_date", tz) if start_date else None
    end = parse_datetime(end_date, "end_date", tz) if end_date else None
    now_utc = now.astimezone(UTC)

    if start is not None and end is not None:
        if end <= start:
            raise HistoryQueryError("end_date", "must be after start_date")
    elif per == "lifetime":
        if end is None:
            end = _local_start(_next_year(now_utc.astimezone(tz).date()), tz)
        if start is not None and end <= start:
            raise HistoryQueryError("end_date", "must be after start_date")
    elif start is not None:
        _, after = _unit(start.astimezone(tz).date(), per)
        end = _local_start(after, tz)
    else:
        anchor = (end if end is not None else now_utc).astimezone(tz).date()
        first, after = _unit(anchor, per)
        start, end = _local_start(first, tz), _local_start(after, tz)

    return Window(
        start=None if start is None else start.astimezone(UTC),
        end=end.astimezone(UTC),
        tz=tz,
        now=now_utc,
    )


def clip_window(window: Window, first_data: datetime | None) -> Window:
    """``window`` without the time before the site's first data (pure).

    When ``first_data`` (the start of the site's oldest bucket) falls inside the window, the
    window starts there: nothing earlier can be reported, so a ``start_date`` of 1970 costs what
    one at the first data costs. A window wholly before the data, or on a site without data,
    keeps its start (its entries are then counted like any other). An open start becomes the
    first data, or, when the window holds none, the instant now (or just before the end).

    Args:
        window: from ``resolve_window``.
        first_data: start of the site's oldest bucket, None when it has none.

    Returns:
        The window with ``start`` set.
    """
    start = window.start
    if first_data is not None and first_data < window.end and (start is None or start < first_data):
        start = first_data
    if start is None:
        start = min(window.now, window.end - timedelta(microseconds=1))
    return replace(window, start=start.astimezone(UTC))


# --------------------------------------------------------------------------------------------
# energy_history


def energy_fields(energy: FlowEnergy) -> dict[str, float]:
    """The Fleet ``time_series`` energy fields (Wh) for ``energy``, by the §3.4 identities.

    Values are rounded to 1 mWh; the derived totals are summed from the rounded parts so the
    identities hold to float precision. Generator and grid-services fields are 0.
    """
    # One dict literal, no loops: this runs once per entry of answers up to MAX_ENTRIES long.
    sh = round(energy.solar_to_home, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    sb = round(energy.solar_to_battery, 3) + 0.0
    sg = round(energy.solar_to_grid, 3) + 0.0
    bh = round(energy.battery_to_home, 3) + 0.0
    bg = round(energy.battery_to_grid, 3) + 0.0
    gh = round(energy.grid_to_home, 3) + 0.0
    gb = round(energy.grid_to_battery, 3) + 0.0
    solar = round(sg + sb + sh, 3)
    battery_out = round(bh + bg, 3)
    return {
        "solar_energy_exported": solar,
        "generator_energy_exported": 0.0,
        "grid_energy_imported": round(gb + gh, 3),
        "grid_services_energy_imported": 0.0,
        "grid_services_energy_exported": 0.0,
        "grid_energy_exported_from_solar": sg,
        "grid_energy_exported_from_generator": 0.0,
        "grid_energy_exported_from_battery": bg,
        "battery_energy_exported": battery_out,
        "battery_energy_imported_from_grid": gb,
        "battery_energy_imported_from_solar": sb,
        "battery_energy_imported_from_generator": 0.0,
        "consumer_energy_imported_from_grid": gh,
        "consumer_energy_imported_from_solar": sh,
        "consumer_energy_imported_from_battery": bh,
        "consumer_energy_imported_from_generator": 0.0,
        "total_home_usage": round(gh + sh + bh, 3),
        "total_battery_charge": round(gb + sb, 3),
        "total_battery_discharge": battery_out,
        "total_solar_generation": solar,
        "total_grid_energy_exported": round(sg + bg, 3),
    }


def _period(period: str | None) -> Period:
    if period not in PERIODS:
        raise HistoryQueryError(
            "period", f"must be one of day, week, month, year, lifetime; got {period!r}"
        )
    per: Period = period
    return per


# What one entry of each period covers, and their order from fine to coarse.
_ENTRY_WORD: Final[dict[Period, str]] = {
    "day": "hourly", "week": "daily", "month": "daily", "year": "monthly", "lifetime": "yearly",
}  # fmt: skip
_ENTRY_RANK: Final[dict[Period, int]] = {"day": 0, "week": 1, "month": 1, "year": 2, "lifetime": 3}


def _too_many_entries(period: Period, limit: int) -> HistoryQueryError:
    coarser = [p for p in PERIODS if _ENTRY_RANK[p] > _ENTRY_RANK[period]]
    instead = f", or a coarser period ({', '.join(coarser)})" if coarser else ""
    return HistoryQueryError(
        "start_date",
        f"the window holds more than {limit} {_ENTRY_WORD[period]} entries for period={period} "
        f"(counted from the later of start_date and the site's first data, up to now); one "
        f"answer holds at most {limit}: ask for a later start_date or an earlier end_date"
        f"{instead}",
    )


def _entry_bounds(begin: datetime, period: Period, tz: ZoneInfo) -> Iterator[datetime]:
    """UTC starts of successive local entries, from the one holding ``begin`` on (endless)."""
    local = begin.astimezone(tz)
    if period == "day":
        cursor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while True:
            yield cursor
            cursor += timedelta(hours=1)
    if period in ("week", "month"):
        day, step = local.date(), _next_day
    elif period == "year":
        day, step = local.date().replace(day=1), _next_month
    else:
        day, step = date(local.year, 1, 1), _next_year
    while True:
        yield _local_start(day, tz)
        day = step(day)


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """The entries one energy answer reports.

    Attributes:
        window: the window clipped to the site's data (``start`` is set).
        period: the requested period.
        starts: UTC start of each entry, oldest first (the entry's ``timestamp``).
        edges: ``len(starts) + 1`` instants; entry ``i`` counts the buckets starting in
            ``[edges[i], edges[i + 1])``, so nothing outside the window is counted.
    """

    window: Window
    period: Period
    starts: tuple[datetime, ...]
    edges: tuple[datetime, ...]


def plan_energy(
    window: Window, period: str, first_data: datetime | None, *, max_entries: int = MAX_ENTRIES
) -> EntryPlan:
    """The entries answering ``window`` (pure; work grows with the entries, not the window).

    Entries: ``day`` → local hours (23/25 on DST days), ``week``/``month`` → local days,
    ``year`` → local months, ``lifetime`` → local years. The window is first clipped to the
    site's data (``clip_window``); the first entry is the one holding its start, so the series
    is never empty (even for a window in the future), and later entries stop at the one holding
    ``window.now``: a client importing hourly statistics must not see future hours.

    Args:
        window: from ``resolve_window``.
        period: the requested period.
        first_data: start of the site's oldest bucket, None when it has none.
        max_entries: the most entries one answer may hold.

    Raises:
        HistoryQueryError: an unknown ``period``; or more than ``max_entries`` entries, naming
            ``start_date``, the limit and how to ask instead.
    """
    per = _period(period)
    clipped = clip_window(window, first_data)
    begin = clipped.start
    if begin is None:  # pragma: no cover - clip_window always sets it
        raise AssertionError("clip_window left the start open")
    bounds = _entry_bounds(begin, per, clipped.tz)
    starts = [next(bounds)]
    for boundary in bounds:
        if boundary >= clipped.end or boundary > clipped.now:
            edges = (begin, *starts[1:], min(boundary, clipped.end))
            return EntryPlan(clipped, per, tuple(starts), edges)
        if len(starts) == max_entries:
            raise _too_many_entries(per, max_entries)
        starts.append(boundary)
    raise AssertionError("entry bounds never end")  # pragma: no cover


def sum_by_entry(
    buckets: Iterable[Bucket], edges: Sequence[datetime], base: Sequence[FlowEnergy] = ()
) -> list[FlowEnergy]:
    """Bucket energy per entry: entry ``i`` sums the buckets starting in ``[edges[i], edges[i+1])``.

    Buckets outside the edges are ignored; buckets with equal starts add up.

    Args:
        buckets: the buckets to count.
        edges: increasing instants, one more than the entries.
        base: sums to add to, one per entry (e.g. the stored energy); zeros when empty.
    """
    sums = list(base) if base else [FlowEnergy()] * (len(edges) - 1)
    for b in buckets:
        if edges[0] <= b.start < edges[-1]:
            sums[bisect.bisect_right(edges, b.start) - 1] += b.energy
    return sums


def energy_body(
    plan: EntryPlan, sums: Sequence[FlowEnergy], site_tz: str | ZoneInfo
) -> dict[str, Any]:
    """The ``calendar_history?kind=energy`` body for ``plan`` with one energy sum per entry.

    Each entry's ``timestamp`` is its local start with offset; zero-energy entries are kept.
    """
    tz = plan.window.tz
    series = [
        {"timestamp": start.astimezone(tz).isoformat(), **energy_fields(energy)}
        for start, energy in zip(plan.starts, sums, strict=True)
    ]
    return {
        "period": plan.period,
        "installation_time_zone": site_tz.key if isinstance(site_tz, ZoneInfo) else site_tz,
        "time_series": series,
    }


def energy_response(
    buckets: Iterable[Bucket], window: Window, period: str, site_tz: str | ZoneInfo
) -> dict[str, Any]:
    """The ``calendar_history?kind=energy`` response body (inside ``response``).

    The whole answer from the buckets themselves (the service sums stored buckets in SQL
    instead, with the same ``plan_energy`` and ``energy_body``): entries as ``plan_energy``
    describes them, the oldest bucket taken as the site's first data.

    Args:
        buckets: 5-minute buckets (any order; equal starts are summed); only those starting in
            the window count.
        window: from ``resolve_window``.
        period: the requested period (echoed).
        site_tz: the site's IANA zone, reported as ``installation_time_zone``.

    Raises:
        HistoryQueryError: as ``plan_energy``.
    """
    buckets = list(buckets)
    plan = plan_energy(window, period, min((b.start for b in buckets), default=None))
    return energy_body(plan, sum_by_entry(buckets, plan.edges), site_tz)


# --------------------------------------------------------------------------------------------
# backup_history


@dataclass(frozen=True, slots=True)
class Outage:
    """A grid outage from ``start`` to ``end`` (aware; ``end`` None while it lasts)."""

    start: datetime
    end: datetime | None = None

    def duration_s(self, now: datetime) -> float:
        """Seconds off-grid, counting an open outage up to ``now``."""
        stop = self.end if self.end is not None else now
        return max((stop - self.start).total_seconds(), 0.0)


class OutageTracker:
    """Turns a stream of ``(timestamp, grid_up)`` readings into outage events (pure)."""

    def __init__(self, current: Outage | None = None) -> None:
        """Start tracking; pass the open outage from the store to resume after a restart."""
        self._current = current if current is not None and current.end is None else None

    @property
    def current(self) -> Outage | None:
        """The outage in progress, if any."""
        return self._current

    def update(self, at: datetime, grid_up: bool | None) -> Outage | None:
        """Feed one reading; return the outage that opened (``end`` None) or closed, if any.

        ``grid_up`` None (unknown) changes nothing.
        """
        if grid_up is None:
            return None
        if not grid_up and self._current is None:
            self._current = Outage(start=at)
            return self._current
        if grid_up and self._current is not None:
            closed = Outage(start=self._current.start, end=max(at, self._current.start))
            self._current = None
            return closed
        return None


def backup_response(
    events: Iterable[Outage],
    window: Window,
    tz: str | ZoneInfo | None = None,
    *,
    max_events: int = MAX_EVENTS,
) -> dict[str, Any]:
    """The ``calendar_history?kind=backup`` response body (inside ``response``).

    Reports the outages that start inside the window (so adjacent windows never report one
    twice; an open start reports every outage before the end), oldest first; ``duration`` is
    whole seconds, an open outage counting up to ``window.now``.

    Args:
        events: outages, e.g. from ``HistoryStore.outages_started``.
        window: from ``resolve_window``.
        tz: zone for the timestamps; defaults to ``window.tz``.
        max_events: the most outages one answer may list.

    Raises:
        HistoryQueryError: more than ``max_events`` outages start in the window (naming
            ``start_date``, the limit and how to ask instead).
    """
    zone_ = window.tz if tz is None else tz if isinstance(tz, ZoneInfo) else zone(tz)
    start = window.start
    chosen = sorted(
        (e for e in events if (start is None or start <= e.start) and e.start < window.end),
        key=lambda e: e.start,
    )
    if len(chosen) > max_events:
        raise HistoryQueryError(
            "start_date",
            f"the window holds more than {max_events} outages; one answer lists at most "
            f"{max_events}: ask for a later start_date or an earlier end_date",
        )
    out = [
        {
            "timestamp": e.start.astimezone(zone_).isoformat(),
            "duration": round(e.duration_s(window.now)),
        }
        for e in chosen
    ]
    return {"events": out, "total_events": len(out)}


# --------------------------------------------------------------------------------------------
# charge_history


@dataclass(frozen=True, slots=True)
class ChargeSession:
    """One Wall Connector charging session: aware ``start``, ``duration_s`` s, ``energy_wh`` Wh."""

    start: datetime
    duration_s: float
    energy_wh: float


def charge_response(sessions: Sequence[ChargeSession]) -> dict[str, Any]:
    """The ``telemetry_history?kind=charge`` response body (inside ``response``).

    The same entries appear under ``charge_history`` (docs-derived SDKs) and ``time_series``
    (Teslemetry types), fleet-api §3.6; both are empty lists without a wall connector.
    """
    entries = [
        {
            "charge_start_time": {"seconds": int(s.start.timestamp())},
            "charge_duration": {"seconds": round(s.duration_s)},
            "energy_added_wh": round(s.energy_wh, 3),
        }
        for s in sorted(sessions, key=lambda s: s.start)
    ]
    return {"charge_history": entries, "time_series": list(entries)}
