"""The entries of an energy answer: clipped to the data and now, and bounded in number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.history import MAX_ENTRIES, HistoryQueryError, plan_energy, resolve_window

NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
FIRST = datetime(2025, 6, 1, tzinfo=UTC)  # the site's oldest bucket in these tables


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "start_date", "end_date", "first_data", "count", "first", "last"),
    [
        # The defect's request, per period: clipped to the data, nothing after now.
        ("day", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", FIRST, 334 * 24 + 11,
         "2025-06-01T00:00:00+00:00", "2026-05-01T10:00:00+00:00"),
        ("week", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", FIRST, 335,
         "2025-06-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        ("month", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", FIRST, 335,
         "2025-06-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        ("year", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", FIRST, 12,
         "2025-06-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        ("lifetime", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", FIRST, 2,
         "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        # The widest explicit window there is.
        ("day", "0002-01-01T00:00:00Z", "9998-12-31T23:59:59Z", FIRST, 334 * 24 + 11,
         "2025-06-01T00:00:00+00:00", "2026-05-01T10:00:00+00:00"),
        ("lifetime", "0002-01-01T00:00:00Z", "9998-12-31T23:59:59Z", None, 2025,
         "0002-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        # Lifetime without dates: from the first year with data, or this year.
        ("lifetime", None, None, FIRST, 2, "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("lifetime", None, None, None, 1, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        # Data starting mid-window: the series starts at the entry holding it.
        ("day", None, None, utc(2026, 5, 1, 8, 12), 3,
         "2026-05-01T08:00:00+00:00", "2026-05-01T10:00:00+00:00"),
        ("week", None, None, utc(2026, 4, 29, 23, 59), 3,
         "2026-04-29T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        # HA's backfill of a day before the data, and a site without data: the whole window.
        ("day", None, "2024-01-01T23:59:59+00:00", FIRST, 24,
         "2024-01-01T00:00:00+00:00", "2024-01-01T23:00:00+00:00"),
        ("week", None, None, None, 5, "2026-04-27T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
        # A window in the future still answers its first entry (the series is never empty).
        ("day", None, "2030-01-01T12:00:00Z", FIRST, 1,
         "2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00+00:00"),
        # Exactly the limit.
        ("day", "2025-03-10T19:00:00Z", "2026-05-01T11:00:00Z", None, MAX_ENTRIES,
         "2025-03-10T19:00:00+00:00", "2026-05-01T10:00:00+00:00"),
    ],
)  # fmt: skip
def test_plan_energy_is_clipped_to_the_data_and_now(
    period: str, start_date: str | None, end_date: str | None, first_data: datetime | None,
    count: int, first: str, last: str,
) -> None:
    w = resolve_window(period, start_date, end_date, None, site_tz="UTC", now=NOW)
    plan = plan_energy(w, period, first_data)
    assert len(plan.starts) == count
    assert plan.starts[0].isoformat() == first
    assert plan.starts[-1].isoformat() == last
    assert len(plan.edges) == count + 1
    assert list(plan.edges) == sorted(set(plan.edges))
    assert plan.window.start is not None
    assert plan.edges[0] == plan.window.start
    assert plan.edges[-1] <= plan.window.end


@pytest.mark.parametrize(
    ("period", "start_date", "end_date", "first_data", "limit", "advice"),
    [
        ("day", "2025-03-10T18:00:00Z", "2026-05-01T11:00:00Z", None, MAX_ENTRIES,
         "or a coarser period (week, month, year, lifetime)"),
        ("day", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", None, MAX_ENTRIES, "hourly"),
        ("day", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", utc(2025, 3, 1), MAX_ENTRIES,
         "period=day"),
        ("day", "0002-01-01T00:00:00Z", "9998-12-31T23:59:59Z", None, MAX_ENTRIES, "hourly"),
        ("month", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", None, MAX_ENTRIES,
         "or a coarser period (year, lifetime)"),
        ("week", None, None, None, 4, "at most 4:"),
        ("year", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", None, 12,
         "or a coarser period (lifetime)"),
        ("lifetime", None, None, utc(2020, 7, 1), 6, "earlier end_date (counted"),
    ],
)  # fmt: skip
def test_plan_energy_refuses_more_entries_than_one_answer_holds(
    period: str, start_date: str | None, end_date: str | None, first_data: datetime | None,
    limit: int, advice: str,
) -> None:
    w = resolve_window(period, start_date, end_date, None, site_tz="UTC", now=NOW)
    with pytest.raises(HistoryQueryError) as info:
        plan_energy(w, period, first_data, max_entries=limit)
    assert info.value.field == "start_date"
    text = str(info.value)
    assert f"more than {limit} " in text
    assert f"at most {limit}:" in text
    assert "ask for a later start_date or an earlier end_date" in text
    assert advice.replace(" (counted", "") in text


def test_lifetime_error_names_no_coarser_period() -> None:
    w = resolve_window("lifetime", None, None, None, site_tz="UTC", now=NOW)
    with pytest.raises(HistoryQueryError) as info:
        plan_energy(w, "lifetime", utc(2020, 7, 1), max_entries=6)
    assert "coarser" not in str(info.value)
    assert plan_energy(w, "lifetime", utc(2020, 7, 1), max_entries=7).starts[0].year == 2020
