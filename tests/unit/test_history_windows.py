"""History query windows: resolving period, dates and zone; clipping to the data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.core.errors import echo
from gateway.core.history import (
    HistoryQueryError,
    Window,
    clip_window,
    parse_datetime,
    plan_energy,
    resolve_window,
)
from tests.samples import history_window as window
from tests.samples import start_of

LA = ZoneInfo("America/Los_Angeles")
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
UTCZ = ZoneInfo("UTC")
NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
FIRST = datetime(2025, 6, 1, tzinfo=UTC)  # the site's oldest bucket in these tables


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def test_ha_current_day_poll_is_the_local_day_containing_now() -> None:
    # ?kind=energy&period=day
    w = window()
    assert w.start == datetime(2024, 1, 1, 8, tzinfo=UTC)
    assert w.end == datetime(2024, 1, 2, 8, tzinfo=UTC)
    assert w.tz == LA
    # Shortly after UTC midnight it is still the previous local day.
    w = window(now=datetime(2024, 1, 2, 3, 0, tzinfo=UTC))
    assert w.start == datetime(2024, 1, 1, 8, tzinfo=UTC)


def test_ha_backfill_end_date_only_is_that_local_day() -> None:
    # ?kind=energy&end_date=2024-01-01T23:59:59-08:00&period=day
    w = window(end_date="2024-01-01T23:59:59-08:00", now=datetime(2024, 3, 1, tzinfo=UTC))
    assert (w.start, w.end) == (
        datetime(2024, 1, 1, 8, tzinfo=UTC),
        datetime(2024, 1, 2, 8, tzinfo=UTC),
    )


def test_explicit_window_with_time_zone_as_the_client_sends_it() -> None:
    w = window(
        start_date="2024-01-01T00:00:00-08:00",
        end_date="2024-01-01T23:59:59-08:00",
        time_zone="America/Los_Angeles",
        site_tz="Europe/Berlin",
    )
    assert w.start == datetime(2024, 1, 1, 8, tzinfo=UTC)
    assert w.end == datetime(2024, 1, 2, 7, 59, 59, tzinfo=UTC)
    assert w.tz == LA


def test_backup_query_end_date_in_utc_is_read_in_the_site_zone() -> None:
    # ?kind=backup&end_date=2024-01-31T23:59:59Z&period=day -> 15:59:59 PST on Jan 31
    w = window(end_date="2024-01-31T23:59:59Z")
    assert w.start == datetime(2024, 1, 31, 8, tzinfo=UTC)
    # A requested time_zone wins over the site zone.
    w = window(end_date="2024-01-31T23:59:59Z", time_zone="UTC")
    assert w.start == datetime(2024, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("week", datetime(2024, 1, 29, 8, tzinfo=UTC), datetime(2024, 2, 5, 8, tzinfo=UTC)),
        ("month", datetime(2024, 2, 1, 8, tzinfo=UTC), datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("year", datetime(2024, 1, 1, 8, tzinfo=UTC), datetime(2025, 1, 1, 8, tzinfo=UTC)),
    ],
)
def test_default_windows_per_period(period: str, start: datetime, end: datetime) -> None:
    w = window(period=period, now=datetime(2024, 2, 1, 20, tzinfo=UTC))  # Thursday 12:00 PST
    assert (w.start, w.end) == (start, end)
    assert start_of(w).astimezone(LA).hour == 0


def test_lifetime_defaults_to_everything_until_now() -> None:
    w = window(period="lifetime")
    assert w.start is None  # from the site's first data, whenever that is
    assert w.end == datetime(2025, 1, 1, 8, tzinfo=UTC)


def test_start_date_alone_runs_to_the_end_of_its_unit() -> None:
    w = window(start_date="2024-01-05T06:00:00-08:00")
    assert (w.start, w.end) == (
        datetime(2024, 1, 5, 14, tzinfo=UTC),
        datetime(2024, 1, 6, 8, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-01T00:00:00-08:00", datetime(2023, 1, 1, 8, tzinfo=UTC)),
        ("2023-09-01T00:00:00.000Z", datetime(2023, 9, 1, tzinfo=UTC)),
        ("2023-09-01t00:00:00.123456789z", datetime(2023, 9, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2023-09-01T02:00:00+02:00", datetime(2023, 9, 1, tzinfo=UTC)),
        ("2023-09-01T02:00:00 02:00", datetime(2023, 9, 1, tzinfo=UTC)),  # '+' decoded as ' '
        ("2023-09-01 02:00:00+0200", datetime(2023, 9, 1, tzinfo=UTC)),
        ("2023-09-01T00:00:00", datetime(2023, 9, 1, 7, tzinfo=UTC)),  # local wall time
        ("2023-09-01", datetime(2023, 9, 1, 7, tzinfo=UTC)),  # local midnight
    ],
)
def test_parse_datetime_accepts_rfc3339_forms(text: str, expected: datetime) -> None:
    assert parse_datetime(text, "start_date", LA) == expected


PLUS2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:30:00+02:00", datetime(2026, 1, 1, 12, 30, tzinfo=PLUS2)),
        ("2026-01-01T12:30:00+0200", datetime(2026, 1, 1, 12, 30, tzinfo=PLUS2)),
        ("2026-01-01T12:30:00 02:00", datetime(2026, 1, 1, 12, 30, tzinfo=PLUS2)),  # '+' as ' '
        ("2026-01-01 12:30:00 0200", datetime(2026, 1, 1, 12, 30, tzinfo=PLUS2)),
        ("2026-01-01T12:30:00-00:00", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ("2026-01-01T12:30:00+23:59", datetime(2025, 12, 31, 12, 31, tzinfo=UTC)),
        ("2026-01-01 12:30:00Z", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ("2026-01-01t12:30:00z", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ("2026-01-01T12:30:00.5Z", datetime(2026, 1, 1, 12, 30, 0, 500000, tzinfo=UTC)),
        ("2026-01-01T12:30:00.1234567890123Z", datetime(2026, 1, 1, 12, 30, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T12:30:00.25", datetime(2026, 1, 1, 20, 30, 0, 250000, tzinfo=UTC)),  # local
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2024-11-03T01:30:00", datetime(2024, 11, 3, 8, 30, tzinfo=UTC)),  # ambiguous: the first
        ("2024-03-10T02:30:00", datetime(2024, 3, 10, 10, 30, tzinfo=UTC)),  # skipped: fold=0
        ("0002-01-01T00:00:00Z", datetime(2, 1, 1, tzinfo=UTC)),
        ("9998-12-31", datetime(9998, 12, 31, 8, tzinfo=UTC)),
    ],
)
def test_parse_datetime_table_of_accepted_forms(text: str, expected: datetime) -> None:
    # in UTC: an instant in a DST fold or gap never equals one in another zone (PEP 495)
    assert parse_datetime(text, "end_date", LA).astimezone(UTC) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param("2026-W01", "not an RFC 3339", id="week-date"),
        pytest.param("2026-W01-1T00:00:00Z", "not an RFC 3339", id="week-date-time"),
        pytest.param("2026-001", "not an RFC 3339", id="ordinal-date"),
        pytest.param("2026-001T00:00:00Z", "not an RFC 3339", id="ordinal-date-time"),
        pytest.param("20260101", "not an RFC 3339", id="basic-date"),
        pytest.param("20260101T123000Z", "not an RFC 3339", id="basic-date-time"),
        pytest.param("2026-01-01T123000Z", "not an RFC 3339", id="basic-time"),
        pytest.param("2026-01-01T12:30", "not an RFC 3339", id="no-seconds"),
        pytest.param("2026-01-01T12", "not an RFC 3339", id="hour-only"),
        pytest.param("2026-01-01T", "not an RFC 3339", id="separator-only"),
        pytest.param("2026-01-01X12:30:00Z", "not an RFC 3339", id="other-separator"),
        pytest.param("2026-01-01T12:30:00,5Z", "not an RFC 3339", id="comma-fraction"),
        pytest.param("2026-01-01T12:30:00.Z", "not an RFC 3339", id="empty-fraction"),
        pytest.param("2026-01-01T12:30:00+02", "not an RFC 3339", id="offset-hours-only"),
        pytest.param("2026-01-01T12:30:00+02:00:30", "not an RFC 3339", id="offset-seconds"),
        pytest.param("2026-01-01T12:30:00-08:60", "not an RFC 3339", id="offset-minute-60"),
        pytest.param("2026-01-01T12:30:00 Z", "not an RFC 3339", id="space-before-z"),
        pytest.param("2026-01-01T12:30:00 +02:00", "not an RFC 3339", id="space-and-plus"),
        pytest.param("2026-01-01T24:00:00Z", "not an RFC 3339", id="hour-24"),
        pytest.param(" 2026-01-01", "not an RFC 3339", id="leading-space"),
        pytest.param("2026-01-01T12:30:00Z ", "not an RFC 3339", id="trailing-space"),
        pytest.param("\uff12\uff10\uff12\uff16-01-01", "not an RFC 3339", id="fullwidth-digits"),
        pytest.param("2026-01-01T\u0661\u0662:30:00Z", "not an RFC 3339", id="arabic-indic-digits"),
        pytest.param("", "not an RFC 3339", id="empty"),
        pytest.param("2026-01-01T12:30:00+24:00", "not an RFC 3339", id="offset-hour-24"),
        pytest.param("2026-01-01T12:30:60Z", "not a valid date-time", id="leap-second"),
        pytest.param("2026-02-29T00:00:00Z", "not a valid date-time", id="no-feb-29"),
        pytest.param("2026-13-01", "not a valid date-time", id="month-13"),
        pytest.param("0000-01-01", "not a valid date-time", id="year-0"),
        pytest.param("0001-12-31T23:00:00-02:00", "out of range", id="year-1"),
        pytest.param("9999-01-01", "out of range", id="year-9999"),
    ],
)  # fmt: skip
def test_parse_datetime_table_of_rejected_forms(text: str, why: str) -> None:
    with pytest.raises(HistoryQueryError) as info:
        parse_datetime(text, "start_date", LA)
    assert info.value.field == "start_date"
    assert info.value.message.startswith(why)


def test_parse_datetime_quotes_a_long_value_bounded() -> None:
    # A query value can be 8 KB (the HTTP parser's limit); the description quotes its start.
    text = "2026-01-01T00:00:00Z" + "9" * 8000
    with pytest.raises(HistoryQueryError) as info:
        parse_datetime(text, "start_date", LA)
    assert info.value.message == f"not an RFC 3339 date-time: {echo(text)}"
    assert len(str(info.value)) < 100


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"period": None}, "period"),
        ({"period": "hour"}, "period"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "2024-02-30T00:00:00Z"}, "start_date"),
        ({"end_date": "2024-01-01T24:00:00Z"}, "end_date"),
        ({"end_date": "2024-01-01T23:59:59+25:00"}, "end_date"),
        ({"end_date": "2024-01-01T23:59:59-08:60"}, "end_date"),
        ({"end_date": "20240101T235959Z"}, "end_date"),
        ({"end_date": "2024-W01-1"}, "end_date"),
        ({"start_date": "0001-01-01T00:00:00+01:00"}, "start_date"),
        ({"end_date": "9999-12-31T23:00:00Z"}, "end_date"),
        ({"start_date": "9999-12-31", "period": "lifetime"}, "start_date"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        (
            {"start_date": "2024-01-02T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"},
            "end_date",
        ),
        (
            {"start_date": "2000-01-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"},
            "start_date",
        ),
    ],
)
def test_bad_query_values_name_their_field(kwargs: dict[str, Any], field: str) -> None:
    # Through the whole pure path: the window's size is judged once it is planned (a site
    # without data here, so nothing clips the 24-year window of hourly entries).
    with pytest.raises(HistoryQueryError) as info:
        plan_energy(window(**kwargs), kwargs.get("period", "day"), None)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


async def test_resolve_window_off_the_loop_for_a_zone_not_loaded_yet() -> None:
    # The first ZoneInfo lookup reads tzdata from disk, so handlers resolve in a worker thread.
    w = await asyncio.to_thread(
        resolve_window, "day", None, None, "Pacific/Chatham", site_tz=LA, now=T0
    )
    assert w.tz.key == "Pacific/Chatham"


@pytest.mark.parametrize(
    ("start", "end", "first_data", "expected"),
    [
        pytest.param(utc(1970, 1, 1), utc(2026, 11, 29), FIRST, FIRST, id="1970-start-clipped"),
        pytest.param(utc(2025, 7, 1), utc(2026, 1, 1), FIRST, utc(2025, 7, 1), id="after-first-kept"),
        pytest.param(utc(2024, 1, 1), utc(2024, 1, 2), FIRST, utc(2024, 1, 1), id="wholly-before-data"),
        pytest.param(utc(2024, 1, 1), FIRST, FIRST, utc(2024, 1, 1), id="ends-at-first-data"),
        pytest.param(utc(1970, 1, 1), utc(2026, 11, 29), None, utc(1970, 1, 1), id="no-data-kept"),
        pytest.param(None, utc(2027, 1, 1), FIRST, FIRST, id="open-start-first-data"),
        pytest.param(None, utc(2027, 1, 1), None, NOW, id="open-start-no-data-now"),
        pytest.param(None, utc(2025, 1, 1), None, utc(2024, 12, 31, 23, 59, 59, 999999),
                     id="open-start-past-end"),
        pytest.param(None, utc(2025, 1, 1), FIRST, utc(2024, 12, 31, 23, 59, 59, 999999),
                     id="open-start-data-after-end"),
    ],
)  # fmt: skip
def test_clip_window_starts_at_the_first_data_inside_it(
    start: datetime | None, end: datetime, first_data: datetime | None, expected: datetime
) -> None:
    clipped = clip_window(Window(start=start, end=end, tz=UTCZ, now=NOW), first_data)
    assert clipped.start == expected
    assert (clipped.end, clipped.tz, clipped.now) == (end, UTCZ, NOW)
