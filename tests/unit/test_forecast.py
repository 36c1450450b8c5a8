"""Forecasts: solar position and clear sky, learned profiles, feed validation, the planner's horizon."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from gateway.core.forecast import (
    DailyProfile,
    FeedError,
    Learned,
    PvCorrection,
    PvSite,
    build_horizon,
    clear_sky_fraction,
    default_load_w,
    no_default,
    parse_price_feed,
    parse_pv_feed,
    solar_elevation_deg,
    step_start,
)
from gateway.core.tariff import parse_tariff
from simulator import physics
from tests.samples import flat_sample

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 1, 10, 7, tzinfo=UTC)


# --- sun ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "when", "elevation"),
    [
        # Solar noon at the June solstice: 90 - lat + 23.44
        (52.52, 13.40, datetime(2026, 6, 21, 11, 7, tzinfo=UTC), 60.9),
        # Equinox noon on the equator at Greenwich: nearly overhead
        (0.0, 0.0, datetime(2026, 3, 20, 12, 7, tzinfo=UTC), 89.6),
        # Midnight in Berlin in winter: well below the horizon
        (52.52, 13.40, datetime(2026, 12, 21, 23, 0, tzinfo=UTC), -60.6),
    ],
)
def test_solar_elevation_known_values(lat: float, lon: float, when: datetime, elevation: float) -> None:
    assert solar_elevation_deg(lat, lon, when) == pytest.approx(elevation, abs=0.7)


def test_clear_sky_matches_the_simulated_sun() -> None:
    # The simulator and the gateway carry their own copies (neither may import the other).
    for hour in range(24):
        when = datetime(2026, 4, 10, hour, 30, tzinfo=UTC)
        assert clear_sky_fraction(48.1, 11.6, when) == pytest.approx(
            physics.clear_sky_fraction(48.1, 11.6, when), abs=1e-9
        )
    assert clear_sky_fraction(48.1, 11.6, datetime(2026, 4, 10, 1, tzinfo=UTC)) == 0.0


# --- learned profiles --------------------------------------------------------------------------


def test_day_one_load_profile_is_a_typical_home() -> None:
    profile = DailyProfile(slots=96)
    day = profile.profile(0)
    assert sum(day) * 0.25 / 1000 == pytest.approx(10.0, rel=0.02)  # kWh
    assert day[19 * 4] > day[12 * 4] > 0  # evening peak above midday
    assert default_load_w(3.0) < default_load_w(7.5)


def test_load_profile_learns_the_sites_own_days_and_weekdays() -> None:
    profile = DailyProfile(slots=4)
    profile.learn_day(0, [100.0, 200.0, 300.0, 400.0])
    assert profile.profile(0) == pytest.approx(
        [0.25 * 400 + 0.5 * 100 + 0.25 * 200, 200.0, 300.0, 0.25 * 300 + 0.5 * 400 + 0.25 * 100]
    )
    # A second Monday of double the load moves Mondays more than other days.
    profile.learn_day(0, [200.0, 400.0, 600.0, 800.0])
    assert profile.profile(0)[1] > profile.profile(2)[1] > 200.0
    # Missing slots (NaN) take the profile's value, not zero.
    before = profile.profile(3)
    profile.learn_day(3, [math.nan] * 4)
    assert profile.profile(3)[0] == pytest.approx(before[0], rel=0.1)


def test_learning_needs_whole_days() -> None:
    with pytest.raises(ValueError, match="slots"):
        DailyProfile(slots=96).learn_day(0, [1.0] * 95)


def test_pv_correction_follows_recent_days() -> None:
    correction = PvCorrection()
    assert correction.factor == 0.7
    correction.learn_day(measured_wh=5000, clear_sky_wh=10000)
    assert correction.factor == pytest.approx(0.5)
    correction.learn_day(measured_wh=9000, clear_sky_wh=10000)
    assert correction.factor == pytest.approx(0.7 * 0.5 + 0.3 * 0.9)
    correction.learn_day(measured_wh=-1, clear_sky_wh=10000)  # nonsense is ignored
    correction.learn_day(measured_wh=100, clear_sky_wh=0)
    assert correction.days == 2


def test_what_today_delivered_moves_the_rest_of_today() -> None:
    correction = PvCorrection()
    day1, day2 = date(2026, 6, 1), date(2026, 6, 2)
    correction.observe(day1, measured_wh=8000, clear_sky_wh=10000)
    assert correction.factor_on(day1) == 0.7  # no whole day seen yet to weigh today against
    correction.observe(day2, measured_wh=300, clear_sky_wh=3000)  # day 1 learned, a grey morning
    assert correction.factor == pytest.approx(0.8)
    assert correction.factor_on(day2) == pytest.approx(0.4 * 0.8 + 0.6 * 0.1)  # 30 % of the sun seen
    assert correction.factor_on(date(2026, 6, 3)) == pytest.approx(0.8)  # tomorrow: learned


# --- price feed --------------------------------------------------------------------------------


def entries(
    n: int = 4, start: datetime = datetime(2026, 6, 1, 10, tzinfo=UTC), minutes: int = 60
) -> list[Any]:
    return [
        {
            "start": (start + timedelta(minutes=minutes * i)).isoformat(),
            "end": (start + timedelta(minutes=minutes * (i + 1))).isoformat(),
            "buy": 0.2 + 0.01 * i,
            "sell": -0.05 + 0.01 * i,
        }
        for i in range(n)
    ]


def test_price_feed_converts_units_and_allows_negative_prices() -> None:
    feed = parse_price_feed("prices", {"unit": "EUR/MWh", "prices": entries()}, NOW)
    entry = feed.at(NOW)
    assert entry is not None
    assert entry.buy == pytest.approx(0.0002)
    assert entry.sell == pytest.approx(-0.00005)
    quarter = parse_price_feed("prices", {"unit": "ct/kWh", "prices": entries(8, minutes=15)}, NOW)
    assert quarter.end == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert quarter.at(datetime(2026, 6, 1, 13, tzinfo=UTC)) is None


def with_entry(change: dict[str, Any], index: int = 1) -> list[Any]:
    items = entries()
    items[index] = {**items[index], **change}
    return items


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "not a JSON object"),
        ({"prices": entries()}, "unknown unit"),
        ({"unit": "EUR/GJ", "prices": entries()}, "unknown unit"),
        ({"unit": "EUR/kWh", "prices": []}, "missing or empty"),
        ({"unit": "EUR/kWh", "prices": with_entry({"buy": "0.3"})}, "not a number"),
        ({"unit": "EUR/kWh", "prices": with_entry({"buy": True})}, "not a number"),
        ({"unit": "EUR/kWh", "prices": with_entry({"buy": float("nan")})}, "not a number"),
        ({"unit": "EUR/kWh", "prices": with_entry({"buy": 210.0})}, "wrong unit"),
        ({"unit": "EUR/kWh", "prices": entries()[:1] + entries()[2:]}, "gap or overlap"),
        ({"unit": "EUR/kWh", "prices": with_entry({"start": "yesterday"})}, "ISO 8601"),
        ({"unit": "EUR/kWh", "prices": with_entry({"start": "2026-06-01T11:00:00"})}, "no UTC offset"),
        ({"unit": "EUR/kWh", "prices": entries(start=datetime(2026, 5, 30, tzinfo=UTC))}, "stale"),
        ({"unit": "EUR/kWh", "prices": entries(start=datetime(2026, 6, 2, tzinfo=UTC))}, "future"),
        ({"unit": "EUR/kWh", "prices": entries(minutes=120)}, "not 5-60 minutes"),
        ({"unit": "EUR/kWh", "prices": entries(2001, minutes=5)}, "more than 2000"),
    ],
)
def test_bad_price_feeds_are_rejected_naming_the_feed(body: Any, problem: str) -> None:
    with pytest.raises(FeedError, match=problem) as caught:
        parse_price_feed("price_feed", body, NOW)
    assert "price_feed" in str(caught.value)


def test_pv_feed_in_local_time_interpolates() -> None:
    body = {"result": {"watts": {"2026-06-01 12:00:00": 1000, "2026-06-01 13:00:00": 3000}}}
    feed = parse_pv_feed("pv_forecast", body, BERLIN, NOW)
    assert feed.at(datetime(2026, 6, 1, 10, 30, tzinfo=UTC)) == pytest.approx(2000)  # 12:30 in Berlin
    assert feed.at(datetime(2026, 6, 1, 20, tzinfo=UTC)) == 0.0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"result": {}}, "missing or empty"),
        ({"result": {"watts": {"2026-06-01 12:00:00": -5}}}, "plausible"),
        ({"result": {"watts": {"2026-06-01 12:00:00": "lots"}}}, "not a number"),
        ({"result": {"watts": {"noon": 5}}}, "ISO 8601"),
        ({"result": {"watts": {"2026-05-01 12:00:00": 5}}}, "stale"),
    ],
)
def test_bad_pv_feeds_are_rejected(body: Any, problem: str) -> None:
    with pytest.raises(FeedError, match=problem):
        parse_pv_feed("pv_forecast", body, BERLIN, NOW)


# --- the horizon -------------------------------------------------------------------------------


def learned() -> Learned:
    return Learned(
        load=DailyProfile(), pv_profile=DailyProfile(default=no_default), pv_correction=PvCorrection()
    )


def test_horizon_takes_feed_prices_where_they_exist_and_the_tariff_after() -> None:
    tariff = parse_tariff(flat_sample(buy=0.30, sell=0.05))
    feed = parse_price_feed("p", {"unit": "EUR/kWh", "prices": entries(2)}, NOW)
    horizon = build_horizon(
        now=NOW,
        tz=BERLIN,
        step_s=1800,
        steps=8,
        site=PvSite(latitude=52.5, longitude=13.4, pv_w=8000),
        learned=learned(),
        tariff=tariff,
        price_feed=feed,
    )
    assert not isinstance(horizon, str)
    assert horizon.start == datetime(2026, 6, 1, 10, tzinfo=UTC) == step_start(NOW, 1800)
    assert horizon.buy == pytest.approx((0.2, 0.2, 0.21, 0.21, 0.3, 0.3, 0.3, 0.3))
    assert horizon.sell[:2] == (-0.05, -0.05)
    assert horizon.sell[4:] == (0.05,) * 4
    assert all(p > 1000 for p in horizon.solar_w)  # a June morning in Berlin
    assert horizon.load_w[0] == pytest.approx(DailyProfile().at(NOW.astimezone(BERLIN)))


def test_horizon_ends_where_prices_end_and_needs_a_few_steps() -> None:
    feed = parse_price_feed("p", {"unit": "EUR/kWh", "prices": entries(3)}, NOW)
    site = PvSite(latitude=None, longitude=None, pv_w=5000)
    horizon = build_horizon(
        now=NOW, tz=BERLIN, step_s=1800, steps=48, site=site, learned=learned(), tariff=None, price_feed=feed
    )
    assert not isinstance(horizon, str)
    assert horizon.steps == 6
    assert horizon.solar_w == (0.0,) * 6  # no location and no PV history yet
    short = parse_price_feed("p", {"unit": "EUR/kWh", "prices": entries(1)}, NOW)
    none = build_horizon(
        now=NOW, tz=BERLIN, step_s=1800, steps=48, site=site, learned=learned(), tariff=None, price_feed=short
    )
    assert isinstance(none, str)
    assert "no prices" in none


def _learned_for_state() -> Learned:
    learned = Learned(load=DailyProfile(), pv_profile=DailyProfile(default=no_default),
                      pv_correction=PvCorrection())
    for weekday in (0, 0, 3):
        learned.load.learn_day(weekday, [400.0 + i for i in range(96)])
        learned.pv_profile.learn_day(weekday, [0.0] * 40 + [3000.0] * 16 + [0.0] * 40)
    learned.pv_correction.observe(date(2026, 6, 1), 12_000, 30_000)
    learned.pv_correction.observe(date(2026, 6, 2), 5_000, 10_000)
    return learned


def test_learned_state_round_trips_through_json() -> None:
    from gateway.core.forecast.state import learned_from_json, learned_to_json

    learned = _learned_for_state()
    back = learned_from_json(orjson.loads(orjson.dumps(learned_to_json(learned))), slots=96)
    for weekday in range(7):
        assert back.load.profile(weekday) == learned.load.profile(weekday)
        assert back.pv_profile.profile(weekday) == learned.pv_profile.profile(weekday)
    assert back.pv_correction == learned.pv_correction
    assert back.load.days == 3


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda s: s.update(v=2), "version 1"),
    (lambda s: s.pop("load"), "load: missing"),
    (lambda s: s["load"].update(slots=48), "load: not a profile of 96"),
    (lambda s: s["load"]["all"].__setitem__(5, float("nan")), "load: all"),
    (lambda s: s["load"]["all"].pop(), "load: all: not 96"),
    (lambda s: s["pv_profile"]["weekday"].update({"9": [0.0] * 96}), "weekday '9'"),
    (lambda s: s["pv_correction"].update(value=-1), "pv_correction: value"),
    (lambda s: s["pv_correction"].update(days=True), "pv_correction: days"),
    (lambda s: s["pv_correction"].update(today="yesterday"), "pv_correction"),
])
def test_learned_state_refuses_what_it_did_not_write(mutate: Any, why: str) -> None:
    from gateway.core.forecast.state import learned_from_json, learned_to_json

    state = orjson.loads(orjson.dumps(learned_to_json(_learned_for_state())))
    mutate(state)
    with pytest.raises(ValueError, match=why):
        learned_from_json(state, slots=96)


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("round_trip_efficiency", 0.95, True), ("round_trip_efficiency", 1.0, True),
    ("round_trip_efficiency", 0.4, False), ("round_trip_efficiency", 1.1, False),
    ("step_min", 15, True), ("step_min", 7, False), ("horizon_h", 5, False),
])
def test_planner_config_bounds(field: str, value: float, ok: bool) -> None:
    from pydantic import ValidationError

    from gateway.core.config.planner import PlannerConfig

    if ok:
        assert getattr(PlannerConfig.model_validate({field: value}), field) == value
    else:
        with pytest.raises(ValidationError, match=field):
            PlannerConfig.model_validate({field: value})
