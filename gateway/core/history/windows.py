"""History query windows: the period, the RFC 3339 dates and zone of a query, resolved to UTC."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.core.errors import InvalidInput, echo

Period = Literal["day", "week", "month", "year", "lifetime"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month", "year", "lifetime")

# Query dates must leave a year of room inside datetime's range: window arithmetic steps up to
# one period unit (at most a year) and one UTC offset past either bound.
_YEARS: Final = range(2, 9999)

# The layout of an RFC 3339 date-time, digits masked: fromisoformat (3.11) also takes week and
# ordinal dates, the basic format without separators, times without seconds, any separator.
_MASK: Final = str.maketrans("0123456789", "9999999999")
_DATE: Final = "9999-99-99"
_CLOCK: Final = "99:99:99"
_OFFSETS: Final = ("99:99", "9999")  # after the sign


class HistoryQueryError(InvalidInput):
    """A history query parameter is invalid; ``field`` names the parameter."""


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


def parse_datetime(value: str, field: str, tz: ZoneInfo) -> datetime:
    """Parse an RFC 3339 date-time query value into an aware datetime.

    Accepts ``T``, ``t`` or a space between date and time, ``Z``/``z``, numeric offsets (with or
    without the colon) and any number of fractional digits (microseconds kept). Leniencies, as
    docs/api.md "History" says: a value without an offset is local wall time in ``tz``; a bare
    date is local midnight in ``tz``; a space where the offset's sign belongs is a ``+`` that a
    client left unencoded in the query string.

    Raises:
        HistoryQueryError: naming ``field`` when the value is not an RFC 3339 date-time (week or
            ordinal dates, no separators, no seconds...), not a real one, or its year is outside
            0002..9998.
    """
    text = _iso_text(value)
    if text is None:
        raise HistoryQueryError(field, f"not an RFC 3339 date-time: {echo(value)}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise HistoryQueryError(field, f"not a valid date-time: {echo(value)}") from None
    if parsed.year not in _YEARS:
        raise HistoryQueryError(
            field, f"out of range: the year must be between 0002 and 9998 (got {echo(value)})"
        )
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def _iso_text(value: str) -> str | None:
    """``value`` as ``datetime.fromisoformat`` takes it, or None when it is not RFC 3339-shaped."""
    shape = value.translate(_MASK)
    if shape[:10] != _DATE:
        return None
    if len(shape) == 10:
        return value  # a bare date
    if shape[10] not in "Tt " or shape[11:19] != _CLOCK or int(value[11:13]) > 23:
        return None  # 24:00 too, which a later Python's fromisoformat reads as the next midnight
    end = 19
    if shape[end : end + 1] == ".":
        digits = len(shape[end + 1 :]) - len(shape[end + 1 :].lstrip("9"))
        if not digits:
            return None
        end += 1 + digits
    offset = value[end:]
    if offset in ("Z", "z"):
        offset = "Z"
    elif offset:
        if offset[0] not in "+- " or shape[end + 1 :] not in _OFFSETS:
            return None
        if int(offset[1:3]) > 23 or int(offset[-2:]) > 59:
            return None  # fromisoformat would read -08:60 as -09:00
        offset = ("+" if offset[0] == " " else offset[0]) + offset[1:]
    return f"{value[:10]}T{value[11:end]}{offset}"


def zone(key: str, field: str = "time_zone") -> ZoneInfo:
    """The IANA zone ``key``.

    Note: the first lookup of a key reads the tz database from disk (cached afterwards).

    Raises:
        HistoryQueryError: naming ``field`` when the key is not a known IANA zone.
    """
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HistoryQueryError(field, f"unknown IANA time zone: {echo(key)}") from None


def parse_period(period: str | None) -> Period:
    """``period`` as a ``Period``.

    Raises:
        HistoryQueryError: naming ``period`` when it is none of ``PERIODS``.
    """
    if period not in PERIODS:
        raise HistoryQueryError(
            "period", f"must be one of day, week, month, year, lifetime; got {echo(period)}"
        )
    per: Period = period
    return per


def local_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the local ``day`` starts in ``tz``."""
    # fold=0 maps a midnight skipped by DST onto the instant the day actually starts.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def next_day(day: date) -> date:
    """The day after ``day``."""
    return day + timedelta(days=1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def next_year(day: date) -> date:
    """The first day of the year after ``day``'s."""
    return date(day.year + 1, 1, 1)


def _unit(day: date, period: Period) -> tuple[date, date]:
    """First day of the local period unit containing ``day`` and the first day after it."""
    if period == "day":
        return day, next_day(day)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if period == "month":
        first = day.replace(day=1)
        return first, next_month(first)
    first = date(day.year, 1, 1)
    return first, next_year(first)


def resolve_window(
    period: str | None,
    start_date: str | None,
    end_date: str | None,
    time_zone: str | None,
    *,
    site_tz: str | ZoneInfo,
    now: datetime,
) -> Window:
    """Resolve the query parameters of ``calendar_history`` into a window (docs/api.md "History").

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
    per = parse_period(period)
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
            end = local_start(next_year(now_utc.astimezone(tz).date()), tz)
        if start is not None and end <= start:
            raise HistoryQueryError("end_date", "must be after start_date")
    elif start is not None:
        _, after = _unit(start.astimezone(tz).date(), per)
        end = local_start(after, tz)
    else:
        anchor = (end if end is not None else now_utc).astimezone(tz).date()
        first, after = _unit(anchor, per)
        start, end = local_start(first, tz), local_start(after, tz)

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
