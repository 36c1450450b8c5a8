"""Price lookup in a validated tariff: price, period and season at a moment, day ranges, levels."""

from __future__ import annotations

import copy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.core.tariff import Price, PriceLevel, parse_tariff
from tests.samples import (
    flat_sample,
    live_capture_sample,
    multi_season_sample,
    one_season,
    pge_like_sample,
    weekday_weekend_sample,
)

TZ = ZoneInfo("America/Los_Angeles")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def test_flat_sample_is_one_price_all_year() -> None:
    tariff = parse_tariff(flat_sample(buy=0.3, sell=0.05))
    for moment in ("2024-01-01T00:00", "2024-02-29T12:34", "2024-12-31T23:59"):
        assert tariff.price_at(at(moment)) == Price(buy=0.3, sell=0.05, period="ALL", season="ALL")
        assert tariff.buy_level(at(moment)) is PriceLevel.NORMAL



# --- price lookup -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Summer (Jun 1 - Sep 30)
        ("2024-07-01T14:59", Price(0.2451, 0.05, "OFF_PEAK", "Summer")),
        ("2024-07-01T15:00", Price(0.4471, 0.12, "PARTIAL_PEAK", "Summer")),
        ("2024-07-01T16:00", Price(0.5576, 0.30, "ON_PEAK", "Summer")),
        ("2024-07-01T20:59", Price(0.5576, 0.30, "ON_PEAK", "Summer")),
        ("2024-07-01T21:00", Price(0.4471, 0.12, "PARTIAL_PEAK", "Summer")),
        ("2024-07-01T23:59", Price(0.4471, 0.12, "PARTIAL_PEAK", "Summer")),  # toHour 0 = midnight
        ("2024-07-02T00:00", Price(0.2451, 0.05, "OFF_PEAK", "Summer")),
        ("2024-09-30T17:00", Price(0.5576, 0.30, "ON_PEAK", "Summer")),
        # Winter wraps the year end (Oct 1 - May 31), Feb 29 included
        ("2024-10-01T17:00", Price(0.4305, 0.20, "ON_PEAK", "Winter")),
        ("2024-12-31T23:30", Price(0.4138, 0.10, "PARTIAL_PEAK", "Winter")),
        ("2025-01-01T00:00", Price(0.2451, 0.04, "OFF_PEAK", "Winter")),
        ("2024-02-29T16:30", Price(0.4305, 0.20, "ON_PEAK", "Winter")),
        ("2024-05-31T15:30", Price(0.4138, 0.10, "PARTIAL_PEAK", "Winter")),
    ],
)
def test_price_at_pge_like(moment: str, expected: Price) -> None:
    assert parse_tariff(pge_like_sample()).price_at(at(moment)) == expected


@pytest.mark.parametrize(
    ("moment", "period", "buy"),
    [
        ("2024-07-05T17:00", "PEAK", 0.5),  # Friday (day 4)
        ("2024-07-06T17:00", "WEEKEND", 0.15),  # Saturday (day 5)
        ("2024-07-07T23:59", "WEEKEND", 0.15),  # Sunday (day 6)
        ("2024-07-08T00:00", "OFF_PEAK", 0.2),  # Monday (day 0)
        ("2024-07-08T21:00", "OFF_PEAK", 0.2),
    ],
)
def test_day_of_week_zero_is_monday(moment: str, period: str, buy: float) -> None:
    price = parse_tariff(weekday_weekend_sample()).price_at(at(moment))
    assert (price.period, price.buy, price.sell) == (period, buy, 0.0)


def test_windows_wrap_past_midnight_and_the_week_end() -> None:
    raw = one_season(
        {
            # Mon 22:00 -> Tue 06:00 ... Sun 22:00 -> Mon 06:00
            "NIGHT": {"periods": [{"fromHour": 22, "toHour": 6}]},
            "DAY": {"periods": [{"fromHour": 6, "toHour": 22}]},
        },
        {"Year": {"rates": {"NIGHT": 0.1, "DAY": 0.3}}},
    )
    tariff = parse_tariff(raw)
    assert tariff.price_at(at("2024-07-08T03:00")).period == "NIGHT"  # Monday, from Sunday's window
    assert tariff.price_at(at("2024-07-07T22:00")).period == "NIGHT"
    assert tariff.price_at(at("2024-07-07T21:59")).period == "DAY"
    assert tariff.price_at(at("2024-07-10T05:59")).period == "NIGHT"
    assert tariff.price_at(at("2024-07-10T06:00")).period == "DAY"


def test_multi_season_live_fixture_wraps_midnight() -> None:
    tariff = parse_tariff(multi_season_sample())
    assert tariff.price_at(at("2024-08-01T03:00")) == Price(0.2, 0.08, "OFF_PEAK", "Summer")
    assert tariff.price_at(at("2024-08-01T18:00")) == Price(0.35, 0.18, "PEAK", "Summer")
    assert tariff.price_at(at("2024-03-31T16:59")) == Price(0.12, 0.05, "OFF_PEAK", "Winter")
    assert tariff.price_at(at("2024-04-01T16:59")) == Price(0.35, 0.18, "PEAK", "Summer")


def test_live_capture_half_hour_periods() -> None:
    tariff = parse_tariff(live_capture_sample())
    assert tariff.price_at(at("2024-03-03T00:29")) == Price(0.24, 0.0, "PERIOD_00_00", "Summer")
    assert tariff.price_at(at("2024-03-03T00:30")) == Price(0.24, 0.0, "PERIOD_00_30", "Summer")
    assert tariff.price_at(at("2024-03-03T17:45")) == Price(0.5, 0.45, "PERIOD_17_30", "Summer")
    assert tariff.price_at(at("2024-03-03T23:59")) == Price(0.31, 0.0, "PERIOD_23_30", "Summer")


def test_price_lookup_all_fallbacks() -> None:
    raw = one_season(
        {
            "PEAK": {"periods": [{"fromHour": 16, "toHour": 21}]},
            "OFF_PEAK": {"periods": [{"fromHour": 21, "toHour": 16}]},
        },
        {"ALL": {"rates": {"ALL": 0.2, "PEAK": 0.4}}},
    )
    winter = copy.deepcopy(raw["seasons"]["Year"])
    raw["seasons"] = {
        "Summer": {**raw["seasons"]["Year"], "fromMonth": 4, "toMonth": 9, "toDay": 30},
        "Winter": {**winter, "fromMonth": 10, "toMonth": 1},
        "Spring": {**copy.deepcopy(winter), "fromMonth": 2, "toMonth": 3},
    }
    raw["energy_charges"]["Winter"] = {"rates": {"ALL": 0.15}}
    raw["energy_charges"]["Spring"] = {"rates": {}}  # empty block: falls through to ALL
    tariff = parse_tariff(raw)
    assert tariff.price_at(at("2024-07-01T17:00")) == Price(0.4, 0.0, "PEAK", "Summer")  # ALL.PEAK
    assert tariff.price_at(at("2024-07-01T12:00")) == Price(
        0.2, 0.0, "OFF_PEAK", "Summer"
    )  # ALL.ALL
    assert tariff.price_at(at("2024-11-01T17:00")) == Price(
        0.15, 0.0, "PEAK", "Winter"
    )  # Winter.ALL
    assert tariff.price_at(at("2024-03-01T17:00")) == Price(0.4, 0.0, "PEAK", "Spring")


def test_naive_now_is_refused() -> None:
    tariff = parse_tariff(flat_sample())
    with pytest.raises(ValueError, match="aware"):
        tariff.price_at(datetime(2024, 7, 1, 12))  # noqa: DTZ001


# --- day ranges and levels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "buy_level", "sell_level"),
    [
        ("2024-07-01T03:00", PriceLevel.CHEAP, PriceLevel.CHEAP),
        ("2024-07-01T15:30", PriceLevel.EXPENSIVE, PriceLevel.NORMAL),  # partial peak
        ("2024-07-01T17:00", PriceLevel.EXPENSIVE, PriceLevel.EXPENSIVE),
        ("2024-01-10T17:00", PriceLevel.EXPENSIVE, PriceLevel.EXPENSIVE),
    ],
)
def test_levels_relative_to_the_day(
    moment: str, buy_level: PriceLevel, sell_level: PriceLevel
) -> None:
    tariff = parse_tariff(pge_like_sample())
    assert tariff.buy_level(at(moment)) is buy_level
    assert tariff.sell_level(at(moment)) is sell_level


def test_day_ranges_follow_the_season_and_weekday() -> None:
    tariff = parse_tariff(pge_like_sample())
    assert tariff.day_buy_range(at("2024-07-01T09:00")) == (0.2451, 0.5576)
    assert tariff.day_buy_range(at("2024-12-01T09:00")) == (0.2451, 0.4305)
    assert tariff.day_sell_range(at("2024-12-01T09:00")) == (0.04, 0.20)
    assert tariff.cheapest_buy_today(at("2024-07-01T18:00")) == 0.2451
    weekly = parse_tariff(weekday_weekend_sample())
    assert weekly.day_buy_range(at("2024-07-06T09:00")) == (0.15, 0.15)  # Saturday: flat
    assert weekly.buy_level(at("2024-07-06T17:00")) is PriceLevel.NORMAL
    assert weekly.day_sell_range(at("2024-07-06T09:00")) == (0.0, 0.0)
    assert not weekly.has_sell_tariff
