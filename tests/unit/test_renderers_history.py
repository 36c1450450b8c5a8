"""The Fleet history bodies: energy entries and their identities, backup and charge."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from gateway.core.history import (
    Bucket,
    BucketAccumulator,
    ChargeSession,
    FlowEnergy,
    HistoryQueryError,
    Outage,
    PowerSample,
    resolve_window,
)
from gateway.web.errors import to_json
from gateway.web.renderers import history
from gateway.web.renderers.history import energy_fields
from tests.samples import history_window as window
from tests.samples import start_of


# The bodies as they go on the wire: the renderers' models serialised and read back.
def energy_response(*args: Any, **kwargs: Any) -> Any:
    return orjson.loads(to_json(history.energy_response(*args, **kwargs)))


def backup_response(*args: Any, **kwargs: Any) -> Any:
    return orjson.loads(to_json(history.backup_response(*args, **kwargs)))


def charge_response(*args: Any, **kwargs: Any) -> Any:
    return orjson.loads(to_json(history.charge_response(*args, **kwargs)))


LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
ENERGY_FIELDS = (
    "solar_energy_exported",
    "generator_energy_exported",
    "grid_energy_imported",
    "grid_services_energy_imported",
    "grid_services_energy_exported",
    "grid_energy_exported_from_solar",
    "grid_energy_exported_from_generator",
    "grid_energy_exported_from_battery",
    "battery_energy_exported",
    "battery_energy_imported_from_grid",
    "battery_energy_imported_from_solar",
    "battery_energy_imported_from_generator",
    "consumer_energy_imported_from_grid",
    "consumer_energy_imported_from_solar",
    "consumer_energy_imported_from_battery",
    "consumer_energy_imported_from_generator",
    "total_home_usage",
    "total_battery_charge",
    "total_battery_discharge",
    "total_solar_generation",
    "total_grid_energy_exported",
)


def assert_identities(entry: Mapping[str, Any]) -> None:
    """Every identity of docs/api.md "History" holds, every field is there, no energy is negative."""
    assert set(ENERGY_FIELDS) <= set(entry)
    assert all(entry[k] >= 0 for k in ENERGY_FIELDS)
    e = pytest.approx
    assert entry["solar_energy_exported"] == e(
        entry["grid_energy_exported_from_solar"]
        + entry["battery_energy_imported_from_solar"]
        + entry["consumer_energy_imported_from_solar"]
    )
    assert entry["battery_energy_exported"] == e(
        entry["consumer_energy_imported_from_battery"] + entry["grid_energy_exported_from_battery"]
    )
    assert entry["grid_energy_imported"] == e(
        entry["battery_energy_imported_from_grid"] + entry["consumer_energy_imported_from_grid"]
    )
    assert entry["total_home_usage"] == e(
        sum(v for k, v in entry.items() if k.startswith("consumer_energy_imported_from_"))
    )
    assert entry["total_battery_charge"] == e(
        sum(v for k, v in entry.items() if k.startswith("battery_energy_imported_from_"))
    )
    assert entry["total_battery_discharge"] == entry["battery_energy_exported"]
    assert entry["total_solar_generation"] == entry["solar_energy_exported"]
    assert entry["total_grid_energy_exported"] == e(
        sum(v for k, v in entry.items() if k.startswith("grid_energy_exported_from_"))
    )
    for k in ENERGY_FIELDS:
        if "generator" in k or "grid_services" in k:
            assert entry[k] == 0


NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
FIRST = datetime(2025, 6, 1, tzinfo=UTC)  # the site's oldest bucket in these tables


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def test_energy_response_for_the_1970_window_reports_only_the_data() -> None:
    # The defect's request against a year of data (one bucket an hour keeps the test quick).
    buckets = [Bucket(FIRST + timedelta(hours=h), FlowEnergy(grid_to_home=12.0))
               for h in range(24 * 334)]
    w = resolve_window("day", "1970-01-01T00:00:00Z", "2026-11-29T00:00:00Z", None,
                       site_tz="UTC", now=NOW)
    series = energy_response(buckets, w, "day", "UTC")["time_series"]
    assert len(series) == 334 * 24 + 11
    assert series[0]["timestamp"] == "2025-06-01T00:00:00+00:00"
    assert sum(e["grid_energy_imported"] for e in series) == pytest.approx(334 * 24 * 12)


@pytest.mark.parametrize(("count", "fits"), [(0, True), (3, True), (4, False)])
def test_backup_body_refuses_more_outages_than_one_answer_lists(count: int, fits: bool) -> None:
    w = resolve_window("lifetime", None, None, None, site_tz="UTC", now=NOW)
    events = [Outage(utc(2025, 1, 1) + timedelta(hours=i), utc(2025, 1, 1, 0, 30)
                     + timedelta(hours=i)) for i in range(count)]
    if fits:
        assert backup_response(events, w, max_events=3)["total_events"] == count
        return
    with pytest.raises(HistoryQueryError) as info:
        backup_response(events, w, max_events=3)
    assert info.value.field == "start_date"
    assert "more than 3 outages" in str(info.value)
    assert "at most 3: ask for a later start_date or an earlier end_date" in str(info.value)


# ---------------------------------------------------------------------------- energy body


def day_of_buckets(day_start: datetime, hours: int, energy: FlowEnergy) -> list[Bucket]:
    return [Bucket(day_start + timedelta(minutes=5 * i), energy) for i in range(hours * 12)]


def test_energy_body_for_a_past_day_has_24_hourly_entries() -> None:
    w = window(end_date="2024-01-01T23:59:59-08:00", now=datetime(2024, 3, 1, tzinfo=UTC))
    per_bucket = FlowEnergy(
        solar_to_home=10, solar_to_battery=5, solar_to_grid=3, battery_to_home=2,
        battery_to_grid=1, grid_to_home=4, grid_to_battery=0.5,
    )  # fmt: skip
    buckets = day_of_buckets(start_of(w), 24, per_bucket)
    # Outside the window: ignored.
    buckets.append(Bucket(w.end, FlowEnergy(grid_to_home=1e6)))
    buckets.append(Bucket(start_of(w) - timedelta(minutes=5), FlowEnergy(grid_to_home=1e6)))
    body = energy_response(buckets, w, "day", "America/Los_Angeles")
    assert body["period"] == "day"
    assert body["installation_time_zone"] == "America/Los_Angeles"
    series = body["time_series"]
    assert len(series) == 24
    assert series[0]["timestamp"] == "2024-01-01T00:00:00-08:00"
    assert series[-1]["timestamp"] == "2024-01-01T23:00:00-08:00"
    for entry in series:
        assert_identities(entry)
        assert entry["consumer_energy_imported_from_solar"] == pytest.approx(120)
        assert entry["total_home_usage"] == pytest.approx(192)
        assert entry["total_battery_charge"] == pytest.approx(66)
    # What HA's backfill checks: tz-aware first timestamp on the requested local day.
    first = datetime.fromisoformat(series[0]["timestamp"])
    assert first.tzinfo is not None
    assert first.astimezone(LA).date() == date(2024, 1, 1)


def test_energy_body_for_today_stops_at_the_current_hour_and_is_never_empty() -> None:
    w = window()  # now = 10:30 PST
    body = energy_response([], w, "day", LA)
    series = body["time_series"]
    assert [e["timestamp"][11:16] for e in series] == [f"{h:02d}:00" for h in range(11)]
    assert all(e["total_home_usage"] == 0 for e in series)
    w = window(now=datetime(2024, 1, 1, 8, 0, tzinfo=UTC))  # exactly local midnight
    assert len(energy_response([], w, "day", LA)["time_series"]) == 1


def test_energy_body_sums_duplicate_bucket_starts() -> None:
    w = window()
    b = Bucket(start_of(w), FlowEnergy(grid_to_home=1.25))
    series = energy_response([b, b], w, "day", LA)["time_series"]
    assert series[0]["grid_energy_imported"] == 2.5


@pytest.mark.parametrize(
    ("day", "hours", "offsets"),
    [
        (date(2024, 3, 31), 23, ["+01:00"] * 2 + ["+02:00"] * 21),
        (date(2024, 10, 27), 25, ["+02:00"] * 3 + ["+01:00"] * 22),
    ],
)
def test_dst_days_have_23_and_25_local_hours(day: date, hours: int, offsets: list[str]) -> None:
    w = window(
        end_date=f"{day.isoformat()}T23:59:59",
        site_tz="Europe/Berlin",
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert (w.end - start_of(w)) == timedelta(hours=hours)
    buckets = day_of_buckets(start_of(w), hours, FlowEnergy(grid_to_home=1.0))
    series = energy_response(buckets, w, "day", BERLIN)["time_series"]
    assert len(series) == hours
    assert [e["timestamp"][-6:] for e in series] == offsets
    assert len({datetime.fromisoformat(e["timestamp"]) for e in series}) == hours
    assert series[0]["timestamp"] == f"{day.isoformat()}T00:00:00{offsets[0]}"
    assert all(e["grid_energy_imported"] == 12.0 for e in series)
    assert sum("T02:00:00" in e["timestamp"] for e in series) == hours - 23
    for entry in series:
        assert_identities(entry)


def test_month_of_daily_entries_across_dst() -> None:
    w = window(period="month", site_tz="Europe/Berlin", now=datetime(2024, 3, 15, tzinfo=UTC))
    start = start_of(w)
    buckets = [Bucket(start + timedelta(hours=h), FlowEnergy(solar_to_grid=1)) for h in range(743)]
    series = energy_response(buckets, w, "month", BERLIN)["time_series"]
    assert len(series) == 15  # March 1..15, nothing after now
    w = window(period="month", site_tz="Europe/Berlin", now=datetime(2024, 3, 31, 21, tzinfo=UTC))
    series = energy_response(buckets, w, "month", BERLIN)["time_series"]
    assert len(series) == 31
    assert series[30]["timestamp"] == "2024-03-31T00:00:00+01:00"  # DST starts at 02:00
    assert series[29]["timestamp"] == "2024-03-30T00:00:00+01:00"
    assert [e["solar_energy_exported"] for e in series[29:]] == [24, 23]
    assert sum(e["total_grid_energy_exported"] for e in series) == 743


def test_week_entries_start_monday_local() -> None:
    w = window(period="week", now=datetime(2024, 2, 10, 20, tzinfo=UTC))  # Saturday
    series = energy_response([], w, "week", LA)["time_series"]
    assert [e["timestamp"][:10] for e in series] == [f"2024-02-{d:02d}" for d in range(5, 11)]


def test_year_has_monthly_entries_and_lifetime_yearly_from_first_data() -> None:
    now = datetime(2025, 12, 31, 12, tzinfo=UTC)
    w = window(period="year", now=now)
    buckets = [
        Bucket(datetime(2025, m, 15, tzinfo=UTC), FlowEnergy(battery_to_home=m))
        for m in range(1, 13)
    ]
    series = energy_response(buckets, w, "year", LA)["time_series"]
    assert [e["timestamp"] for e in series[:3]] == [
        "2025-01-01T00:00:00-08:00",
        "2025-02-01T00:00:00-08:00",
        "2025-03-01T00:00:00-08:00",
    ]
    assert series[3]["timestamp"] == "2025-04-01T00:00:00-07:00"
    assert [e["battery_energy_exported"] for e in series] == list(range(1, 13))

    w = window(period="lifetime", now=now)
    old = Bucket(datetime(2023, 7, 1, tzinfo=UTC), FlowEnergy(grid_to_battery=7))
    series = energy_response([old, *buckets], w, "lifetime", LA)["time_series"]
    assert [e["timestamp"][:4] for e in series] == ["2023", "2024", "2025"]
    assert [e["total_battery_charge"] for e in series] == [7, 0, 0]
    assert series[2]["total_battery_discharge"] == 78
    assert [e["timestamp"][:4] for e in energy_response([], w, "lifetime", LA)["time_series"]] == [
        "2025"
    ]


def test_energy_fields_round_to_mwh_and_keep_identities() -> None:
    fields = energy_fields(FlowEnergy(0.1, 0.2, 0.3000004, 1 / 3, 2 / 3, 0.7, 1e-9))
    assert_identities(fields)
    assert fields["solar_energy_exported"] == 0.6
    assert fields["battery_energy_imported_from_grid"] == 0.0


def test_energy_identities_hold_for_integrated_random_telemetry() -> None:
    rng = random.Random(7)
    acc = BucketAccumulator()
    t = datetime(2024, 6, 1, 7, tzinfo=UTC)
    buckets: list[Bucket] = []
    for _ in range(3000):
        solar = rng.uniform(0, 6000)
        battery = rng.uniform(-4000, 4000)
        grid = rng.uniform(-5000, 5000)
        load = max(solar + battery + grid, 0)
        t += timedelta(seconds=rng.choice([5, 10, 15, 400]))
        buckets += acc.add(
            PowerSample(taken_at=t, solar_w=solar, battery_w=battery, grid_w=grid, load_w=load)
        )
    buckets += acc.flush()
    for b in buckets:
        assert_identities(energy_fields(b.energy))
    w = window(end_date="2024-06-01T23:59:59-07:00", now=datetime(2024, 7, 1, tzinfo=UTC))
    for entry in energy_response(buckets, w, "day", LA)["time_series"]:
        assert_identities(entry)


def test_backup_body_reports_events_starting_in_the_window() -> None:
    w = window(end_date="2023-01-02T23:59:59-08:00", now=datetime(2023, 1, 3, 1, tzinfo=UTC))
    events = [
        Outage(datetime(2023, 1, 1, 9, tzinfo=UTC), datetime(2023, 1, 1, 10, tzinfo=UTC)),
        Outage(datetime(2023, 1, 2, 16, tzinfo=UTC), datetime(2023, 1, 2, 18, tzinfo=UTC)),
        Outage(datetime(2023, 1, 3, 0, 30, tzinfo=UTC)),  # still open: counts up to now
        Outage(datetime(2023, 1, 2, 9, tzinfo=UTC), datetime(2023, 1, 2, 9, 0, 1, tzinfo=UTC)),
    ]
    body = backup_response(events, w)
    assert body == {
        "events": [
            {"timestamp": "2023-01-02T01:00:00-08:00", "duration": 1},
            {"timestamp": "2023-01-02T08:00:00-08:00", "duration": 7200},
            {"timestamp": "2023-01-02T16:30:00-08:00", "duration": 1800},
        ],
        "total_events": 3,
    }
    assert backup_response(events, w, "UTC")["events"][0]["timestamp"] == (
        "2023-01-02T09:00:00+00:00"
    )
    assert backup_response([], w) == {"events": [], "total_events": 0}


# --------------------------------------------------------------------------------- charge


def test_charge_body_without_wall_connector_is_empty_in_both_keys() -> None:
    assert charge_response([]) == {"charge_history": [], "time_series": []}


def test_charge_body_has_the_same_sessions_in_both_keys() -> None:
    s = ChargeSession(start=datetime(2023, 1, 1, 8, tzinfo=UTC), duration_s=12000, energy_wh=25000)
    body = charge_response([s])
    expected = [
        {
            "charge_start_time": {"seconds": 1672560000},
            "charge_duration": {"seconds": 12000},
            "energy_added_wh": 25000,
        }
    ]
    assert body["charge_history"] == expected
    assert body["time_series"] == expected


@pytest.mark.parametrize(("at", "zone_key", "written"), [
    # local mean time: Amsterdam kept +00:19:32 until 1937, Monrovia -00:44:30 until 1972
    (datetime(1930, 1, 1, tzinfo=UTC), "Europe/Amsterdam", "1930-01-01T00:19:00+00:19"),
    (datetime(1960, 1, 1, tzinfo=UTC), "Africa/Monrovia", "1959-12-31T23:15:00-00:45"),
    (datetime(1890, 6, 1, tzinfo=UTC), "Europe/Berlin", "1890-06-01T00:53:00+00:53"),
    # whole-minute offsets are written as isoformat writes them
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/Berlin", "2026-03-29T03:00:00+02:00"),
    (datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC), "Asia/Kolkata",
     "2026-01-01T05:30:00.500000+05:30"),
])
def test_timestamps_carry_offsets_in_whole_minutes(at: datetime, zone_key: str, written: str) -> None:
    """Schemathesis found an energy entry of 0269 served as ...+00:53:28 (not RFC 3339)."""
    from gateway.web.renderers.models import rfc3339

    text = rfc3339(at, ZoneInfo(zone_key))
    assert text == written
    assert datetime.fromisoformat(text) == at  # the same instant


def test_an_energy_entry_before_standard_time_is_rfc3339() -> None:
    # the request schemathesis sent: a week of 0269 in Berlin (local mean time, +00:53:28)
    tz = ZoneInfo("Europe/Berlin")
    resolved = window(period="week", end_date="0269-06-11T07:22:38+07:38", site_tz=tz)
    body = energy_response([], resolved, "week", tz)
    assert body["time_series"]
    for entry in body["time_series"]:
        # RFC 3339: the offset is ±HH:MM, never with seconds
        assert re.fullmatch(r".*T\d\d:\d\d:\d\d[+-]\d\d:\d\d", entry["timestamp"])
