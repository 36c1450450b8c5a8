"""Pure energy history: flow splitting, integration, buckets, windows and the Fleet bodies."""

from __future__ import annotations

import asyncio
import random
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.base import DeviceTelemetry
from gateway.history import (
    MAX_ENTRIES,
    Bucket,
    BucketAccumulator,
    ChargeSession,
    FlowEnergy,
    Flows,
    HistoryQueryError,
    Outage,
    OutageTracker,
    PowerSample,
    Window,
    backup_response,
    bucket_start,
    charge_response,
    clip_window,
    energy_fields,
    energy_response,
    integrate,
    parse_datetime,
    plan_energy,
    resolve_window,
    split_flows,
)

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

FIELDS_34 = (
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


def assert_identities(entry: dict[str, Any]) -> None:
    """Every §3.4 identity holds, every field is present and no energy is negative."""
    assert set(FIELDS_34) <= set(entry)
    assert all(entry[k] >= 0 for k in FIELDS_34)
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
    for k in FIELDS_34:
        if "generator" in k or "grid_services" in k:
            assert entry[k] == 0


# ------------------------------------------------------------------------------------ flows


@pytest.mark.parametrize(
    ("solar", "battery", "grid", "load", "expected"),
    [
        pytest.param(
            5000, -2000, -2000, 1000,
            Flows(solar_to_home=1000, solar_to_battery=2000, solar_to_grid=2000),
            id="sunny-export",
        ),
        pytest.param(0, 0, 800, 800, Flows(grid_to_home=800), id="night-import"),
        pytest.param(0, 1500, 0, 1500, Flows(battery_to_home=1500), id="battery-covers-load"),
        pytest.param(
            300, 1000, 500, 1800,
            Flows(solar_to_home=300, battery_to_home=1000, grid_to_home=500),
            id="battery-and-grid-share-load",
        ),
        pytest.param(
            0, 3000, -2500, 500,
            Flows(battery_to_home=500, battery_to_grid=2500),
            id="battery-export",
        ),
        pytest.param(
            0, -3000, 3700, 700, Flows(grid_to_home=700, grid_to_battery=3000), id="grid-charging"
        ),
        pytest.param(
            1000, -3000, 2700, 700,
            Flows(solar_to_home=700, grid_to_battery=2700, solar_to_battery=300),
            id="grid-charging-with-solar",
        ),
        pytest.param(
            2000, 1000, 0, 3000, Flows(solar_to_home=2000, battery_to_home=1000), id="islanded"
        ),
        pytest.param(
            4000, -3000, 0, 1000,
            Flows(solar_to_home=1000, solar_to_battery=3000),
            id="islanded-surplus",
        ),
    ],
)  # fmt: skip
def test_split_flows_regimes(
    solar: float, battery: float, grid: float, load: float, expected: Flows
) -> None:
    assert split_flows(solar, battery, grid, load) == expected


def test_split_flows_conserves_every_balanced_reading() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        solar = rng.choice([0.0, rng.uniform(0, 8000)])
        battery = rng.choice([0.0, rng.uniform(-5000, 5000)])
        grid = rng.choice([0.0, rng.uniform(-6000, 6000)])
        load = solar + battery + grid
        if load < 0:
            continue
        f = split_flows(solar, battery, grid, load)
        assert min(astuple(f)) >= 0
        ok = pytest.approx
        assert f.solar_to_home + f.solar_to_battery + f.solar_to_grid == ok(solar)
        assert f.battery_to_home + f.battery_to_grid == ok(max(battery, 0))
        assert f.solar_to_battery + f.grid_to_battery == ok(max(-battery, 0))
        assert f.grid_to_home + f.grid_to_battery == ok(max(grid, 0))
        assert f.solar_to_grid + f.battery_to_grid == ok(max(-grid, 0))
        assert f.solar_to_home + f.battery_to_home + f.grid_to_home == ok(load)


def test_split_flows_never_invents_energy_from_an_unbalanced_reading() -> None:
    # The load meter says 0 W while 5 kW of solar goes nowhere: nothing is attributed.
    assert split_flows(5000, 0, 0, 0) == Flows()
    # Negative PV standby draw counts as no solar.
    assert split_flows(-5, 0, 300, 300) == Flows(grid_to_home=300)


# ------------------------------------------------------------------------------ integrate


def sample(at: datetime, solar: float = 0, battery: float = 0, grid: float = 0) -> PowerSample:
    return PowerSample(taken_at=at, solar_w=solar, battery_w=battery, grid_w=grid)


def test_integrate_is_left_rectangle_in_wh() -> None:
    energy = integrate(sample(T0, solar=6000), sample(T0 + timedelta(minutes=1), solar=0))
    assert energy == FlowEnergy(solar_to_home=100.0)


def test_integrate_skips_gaps_and_backwards_steps() -> None:
    a = sample(T0, grid=1200)
    assert integrate(a, sample(T0 + timedelta(minutes=5))) == FlowEnergy(grid_to_home=100.0)
    assert integrate(a, sample(T0 + timedelta(minutes=5, seconds=1))).is_zero()
    assert integrate(a, sample(T0 + timedelta(minutes=9)), max_gap=timedelta(minutes=10)) == (
        FlowEnergy(grid_to_home=180.0)
    )
    assert integrate(a, sample(T0)).is_zero()
    assert integrate(a, sample(T0 - timedelta(seconds=1))).is_zero()


def test_power_sample_from_telemetry_derives_missing_load() -> None:
    t = DeviceTelemetry(taken_at=T0, solar_w=3000, battery_w=-1000, grid_w=None, load_w=None)
    s = PowerSample.from_telemetry(t)
    assert s.flows == Flows(solar_to_home=2000, solar_to_battery=1000)
    with pytest.raises(ValueError, match="timezone-aware"):
        PowerSample(taken_at=datetime(2024, 1, 1))  # noqa: DTZ001


# ------------------------------------------------------------------------------- buckets


def test_bucket_start_aligns_to_utc_five_minutes() -> None:
    at = datetime(2024, 6, 1, 14, 7, 59, tzinfo=ZoneInfo("Asia/Kathmandu"))  # +05:45
    assert bucket_start(at) == datetime(2024, 6, 1, 8, 20, tzinfo=UTC)


def test_accumulator_emits_completed_buckets() -> None:
    acc = BucketAccumulator()
    start = datetime(2024, 6, 1, 0, 2, 30, tzinfo=UTC)
    emitted: list[Bucket] = []
    for i in range(73):  # every 10 s up to 00:14:30 at 3.6 kW of solar to the home
        emitted += acc.add(sample(start + timedelta(seconds=10 * i), solar=3600, grid=0))
    assert [b.start.minute for b in emitted] == [0, 5]
    assert emitted[0].energy.solar_to_home == pytest.approx(150.0)
    assert emitted[1].energy.solar_to_home == pytest.approx(300.0)
    (open_bucket,) = acc.open_buckets()
    assert open_bucket.start.minute == 10
    assert open_bucket.energy.solar_to_home == pytest.approx(270.0)
    assert all(b.start.tzinfo is UTC for b in emitted)


def test_accumulator_splits_an_interval_across_a_boundary_exactly() -> None:
    acc = BucketAccumulator()
    acc.add(sample(datetime(2024, 6, 1, 0, 4, tzinfo=UTC), grid=6000))
    done = acc.add(sample(datetime(2024, 6, 1, 0, 6, tzinfo=UTC), grid=0))
    assert [(b.start.minute, b.energy.grid_to_home) for b in done] == [(0, 100.0)]
    assert [(b.start.minute, b.energy.grid_to_home) for b in acc.flush()] == [(5, 100.0)]
    assert acc.open_buckets() == []


def test_accumulator_leaves_gaps_empty_and_ignores_stale_samples() -> None:
    acc = BucketAccumulator()
    acc.add(sample(datetime(2024, 6, 1, 0, 0, tzinfo=UTC), grid=1200))
    done = acc.add(sample(datetime(2024, 6, 1, 0, 1, tzinfo=UTC), grid=1200))
    assert done == []
    done = acc.add(sample(datetime(2024, 6, 1, 0, 20, tzinfo=UTC), grid=1200))  # 19 min gap
    assert [(b.start.minute, b.energy.grid_to_home) for b in done] == [(0, 20.0)]
    assert acc.add(sample(datetime(2024, 6, 1, 0, 19, tzinfo=UTC), grid=9999)) == []
    assert acc.last_sample is not None
    assert acc.last_sample.taken_at.minute == 20


def test_accumulator_flush_and_remainder_sum_to_the_whole() -> None:
    acc = BucketAccumulator()
    t = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    acc.add(sample(t, solar=1200, grid=0))
    acc.add(sample(t + timedelta(minutes=2), solar=1200))
    first = acc.flush()
    later = acc.add(sample(t + timedelta(minutes=5), solar=1200))
    total = sum(b.energy.solar_to_home for b in first + later)
    assert total == pytest.approx(100.0)
    assert {b.start for b in first + later} == {t}


def test_accumulator_rejects_bucket_sizes_that_do_not_tile_an_hour() -> None:
    with pytest.raises(ValueError, match="bucket size"):
        BucketAccumulator(size=timedelta(minutes=7))


# -------------------------------------------------------------------------------- windows


def window(**kwargs: Any) -> Window:
    params: dict[str, Any] = {
        "period": "day",
        "start_date": None,
        "end_date": None,
        "time_zone": None,
        "site_tz": "America/Los_Angeles",
        "now": datetime(2024, 1, 1, 18, 30, tzinfo=UTC),  # 10:30 PST
    }
    params.update(kwargs)
    return resolve_window(
        params.pop("period"),
        params.pop("start_date"),
        params.pop("end_date"),
        params.pop("time_zone"),
        **params,
    )


def start_of(w: Window) -> datetime:
    """The start of a window that has one (every period but an open lifetime)."""
    assert w.start is not None
    return w.start


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


# ------------------------------------------------------------------------- bounded windows

UTCZ = ZoneInfo("UTC")
NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
FIRST = datetime(2025, 6, 1, tzinfo=UTC)  # the site's oldest bucket in these tables


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


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


# -------------------------------------------------------------------------------- outages


def test_outage_tracker_opens_and_closes_events() -> None:
    tracker = OutageTracker()
    assert tracker.update(T0, grid_up=True) is None
    opened = tracker.update(T0 + timedelta(seconds=10), grid_up=False)
    assert opened == Outage(start=T0 + timedelta(seconds=10))
    assert tracker.update(T0 + timedelta(seconds=20), grid_up=False) is None
    assert tracker.update(T0 + timedelta(seconds=30), grid_up=None) is None
    closed = tracker.update(T0 + timedelta(seconds=3610), grid_up=True)
    assert closed is not None
    assert closed.end is not None
    assert closed.duration_s(T0) == 3600
    assert tracker.current is None
    assert tracker.update(T0 + timedelta(hours=2), grid_up=True) is None


def test_outage_tracker_resumes_an_open_outage() -> None:
    tracker = OutageTracker(Outage(start=T0))
    assert tracker.current == Outage(start=T0)
    closed = tracker.update(T0 + timedelta(minutes=2), grid_up=True)
    assert closed == Outage(start=T0, end=T0 + timedelta(minutes=2))


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
