"""tariff_content_v2: every §5 validation rule, accepted live shapes, price lookup and levels."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.tariff import (
    Price,
    PriceLevel,
    TariffError,
    flat_sample,
    parse_tariff,
    parse_tou_settings,
    pge_like_sample,
)

TZ = ZoneInfo("America/Los_Angeles")
P = "tou_settings.tariff_content_v2"
Json = dict[str, Any]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def live_capture_sample() -> Json:
    """Teslemetry's live capture: 48 half-hour periods, zero fields omitted, empty Winter."""
    periods: Json = {}
    buy: dict[str, float] = {}
    sell: dict[str, float] = {}
    for slot in range(48):
        hour, minute = divmod(slot * 30, 60)
        end_hour, end_minute = divmod(slot * 30 + 30, 60)
        window: Json = {"toDayOfWeek": 6}
        for key, value in (
            ("fromHour", hour),
            ("fromMinute", minute),
            ("toHour", end_hour),
            ("toMinute", end_minute),
        ):
            if value:
                window[key] = value
        name = f"PERIOD_{hour:02d}_{minute:02d}"
        periods[name] = {"periods": [window]}
        buy[name] = 0.50 if 17 <= hour < 20 else 0.24 if hour < 7 else 0.31
        sell[name] = 0.45 if name == "PERIOD_17_30" else 0.0
    season = {"fromDay": 1, "toDay": 31, "fromMonth": 1, "toMonth": 12, "tou_periods": periods}
    return {
        "code": "POWER_SYNC:FLOW_POWER",
        "name": "Flow Power (PowerSync)",
        "utility": "Flow Power",
        "currency": "AUD",
        "version": 1,
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {}, "Winter": {}},
        "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": buy}, "Winter": {}},
        "seasons": {"Summer": season, "Winter": {}},
        "sell_tariff": {
            "name": "Flow Power (managed by PowerSync)",
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "Summer": {"rates": sell},
                "Winter": {},
            },
            "seasons": {"Summer": copy.deepcopy(season), "Winter": {}},
        },
    }


def multi_season_sample() -> Json:
    """HA's site_info_multi_season fixture: Winter wraps the year end, off-peak wraps midnight."""

    def seasons() -> Json:
        return {
            "Summer": {
                "fromDay": 1,
                "toDay": 30,
                "fromMonth": 4,
                "toMonth": 9,
                "tou_periods": {
                    "PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 16, "toHour": 21}
                        ]
                    },
                    "OFF_PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 21, "toHour": 16}
                        ]
                    },
                },
            },
            "Winter": {
                "fromDay": 1,
                "toDay": 31,
                "fromMonth": 10,
                "toMonth": 3,
                "tou_periods": {
                    "PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 17, "toHour": 20}
                        ]
                    },
                    "OFF_PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 20, "toHour": 17}
                        ]
                    },
                },
            },
        }

    return {
        "code": "Test",
        "name": "Multi Season Tariff",
        "utility": "Test Utility",
        "version": 1,
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
        "energy_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "Summer": {"rates": {"PEAK": 0.35, "OFF_PEAK": 0.2}},
            "Winter": {"rates": {"PEAK": 0.25, "OFF_PEAK": 0.12}},
        },
        "seasons": seasons(),
        "sell_tariff": {
            "name": "Multi Season Tariff Sell",
            "utility": "Test Utility",
            "daily_charges": [],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "Summer": {"rates": {"PEAK": 0.18, "OFF_PEAK": 0.08}},
                "Winter": {"rates": {"PEAK": 0.12, "OFF_PEAK": 0.05}},
            },
            "seasons": seasons(),
        },
    }


def one_season(tou_periods: Json, energy_charges: Json) -> Json:
    """A whole-year single-season buy-only tariff."""
    return {
        "version": 1,
        "code": "T",
        "name": "T",
        "utility": "U",
        "energy_charges": energy_charges,
        "seasons": {
            "Year": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": tou_periods,
            },
        },
    }


def weekday_weekend_sample() -> Json:
    return one_season(
        {
            "PEAK": {
                "periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 4, "fromHour": 16, "toHour": 21}]
            },
            "OFF_PEAK": {
                "periods": [
                    {"fromDayOfWeek": 0, "toDayOfWeek": 4, "toHour": 16},
                    {"fromDayOfWeek": 0, "toDayOfWeek": 4, "fromHour": 21, "toHour": 24},
                ]
            },
            "WEEKEND": {"periods": [{"fromDayOfWeek": 5, "toDayOfWeek": 6}]},
        },
        {"Year": {"rates": {"PEAK": 0.5, "OFF_PEAK": 0.2, "WEEKEND": 0.15}}},
    )


# --- accepted shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        pge_like_sample,
        flat_sample,
        live_capture_sample,
        multi_season_sample,
        weekday_weekend_sample,
    ],
)
def test_valid_samples_are_accepted_and_round_trip(sample: Callable[[], Json]) -> None:
    raw = sample()
    tariff = parse_tariff(raw)
    assert tariff.wire() == raw
    assert tariff == parse_tariff(sample())
    assert hash(tariff) == hash(parse_tariff(sample()))


def test_unknown_keys_are_kept_and_the_wire_copy_is_independent() -> None:
    raw = pge_like_sample()
    raw["x_vendor"] = {"plan": [1, 2]}
    raw["seasons"]["Summer"]["tou_periods"]["ON_PEAK"]["periods"][0]["label"] = "peak"
    tariff = parse_tariff(raw)
    wire = tariff.wire()
    assert wire == raw
    wire["x_vendor"]["plan"].append(3)
    raw["x_vendor"]["plan"].append(4)
    assert tariff.wire()["x_vendor"] == {"plan": [1, 2]}
    assert (tariff.content.model_extra or {})["x_vendor"] == {"plan": [1, 2]}


def test_flat_sample_is_one_price_all_year() -> None:
    tariff = parse_tariff(flat_sample(buy=0.3, sell=0.05))
    for moment in ("2024-01-01T00:00", "2024-02-29T12:34", "2024-12-31T23:59"):
        assert tariff.price_at(at(moment)) == Price(buy=0.3, sell=0.05, period="ALL", season="ALL")
        assert tariff.buy_level(at(moment)) is PriceLevel.NORMAL


def test_parse_tou_settings_unwraps_the_command_body() -> None:
    tariff = parse_tou_settings({"tou_settings": {"tariff_content_v2": flat_sample()}})
    assert tariff.wire() == flat_sample()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "body", "must be a JSON object"),
        ({}, "tou_settings", "required: an object holding tariff_content_v2"),
        (
            {"tou_settings": {"optimization_strategy": "economics", "schedule": []}},
            P,
            "required (legacy tou_settings shapes are not supported)",
        ),
        ({"tou_settings": {"tariff_content_v2": "flat"}}, P, "must be a JSON object"),
    ],
)
def test_parse_tou_settings_rejects_bad_bodies(body: object, field: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tou_settings(body)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_error_paths_take_the_given_prefix() -> None:
    raw = flat_sample()
    raw["seasons"]["ALL"]["fromMonth"] = 0
    with pytest.raises(TariffError) as caught:
        parse_tariff(raw, prefix="tariff")
    assert caught.value.field == "tariff.seasons.ALL.fromMonth"
    assert str(caught.value) == "tariff.seasons.ALL.fromMonth: must be a month 1..12, got 0"


# --- every rule broken once ---------------------------------------------------------------------


def pge(edit: Callable[[Json], object]) -> Json:
    raw = pge_like_sample()
    edit(raw)
    return raw


def summer(raw: Json) -> Json:
    season: Json = raw["seasons"]["Summer"]
    return season


def window(raw: Json, period: str, index: int = 0, season: str = "Summer") -> Json:
    found: Json = raw["seasons"][season]["tou_periods"][period]["periods"][index]
    return found


def feb29_gap(raw: Json) -> None:
    summer(raw).update(fromMonth=3, fromDay=1)
    raw["seasons"]["Winter"].update(toMonth=2, toDay=28)


SUMMER = f"{P}.seasons.Summer"
ON_PEAK_0 = f"{SUMMER}.tou_periods.ON_PEAK.periods[0]"

RULE_CASES: list[tuple[str, object, str, str]] = [
    # schema: types
    ("not-an-object", ["tariff"], P, "must be a JSON object"),
    (
        "hour-as-string",
        pge(lambda r: window(r, "ON_PEAK").update(toHour="21")),
        f"{ON_PEAK_0}.toHour",
        "Input should be a valid integer",
    ),
    (
        "price-as-bool",
        pge(lambda r: r["energy_charges"]["Summer"]["rates"].update(ON_PEAK=True)),
        f"{P}.energy_charges.Summer.rates.ON_PEAK",
        "Input should be a valid number",
    ),
    (
        "seasons-as-list",
        pge(lambda r: r.update(seasons=[])),
        f"{P}.seasons",
        "Input should be a valid dictionary",
    ),
    # at least one season with periods
    (
        "no-seasons",
        pge(lambda r: r.update(seasons={})),
        f"{P}.seasons",
        "at least one season with time windows is required",
    ),
    (
        "only-empty-seasons",
        pge(lambda r: r.update(seasons={"Summer": {}, "Winter": {"tou_periods": {}}})),
        f"{P}.seasons",
        "at least one season with time windows is required",
    ),
    (
        "sell-without-seasons",
        pge(lambda r: r["sell_tariff"].pop("seasons")),
        f"{P}.sell_tariff.seasons",
        "at least one season with time windows is required",
    ),
    # season fields
    (
        "month-13",
        pge(lambda r: summer(r).update(fromMonth=13)),
        f"{SUMMER}.fromMonth",
        "must be a month 1..12, got 13",
    ),
    (
        "sep-31",
        pge(lambda r: summer(r).update(toDay=31)),
        f"{SUMMER}.toDay",
        "must be a day 1..30 of month 9, got 31",
    ),
    (
        "feb-30",
        pge(lambda r: summer(r).update(fromMonth=2, fromDay=30)),
        f"{SUMMER}.fromDay",
        "must be a day 1..29 of month 2, got 30",
    ),
    (
        "day-0",
        pge(lambda r: summer(r).update(fromDay=0)),
        f"{SUMMER}.fromDay",
        "must be a day 1..30 of month 6, got 0",
    ),
    (
        "season-without-dates",
        pge(lambda r: summer(r).pop("toDay")),
        f"{SUMMER}.toDay",
        "required for a season with time windows",
    ),
    (
        "dates-without-windows",
        pge(
            lambda r: r["seasons"].update(
                Spring={"fromMonth": 3, "fromDay": 1, "toMonth": 5, "toDay": 31}
            )
        ),
        f"{P}.seasons.Spring.tou_periods",
        "a season with dates needs time windows",
    ),
    # seasons cover the year
    (
        "seasons-overlap",
        pge(lambda r: summer(r).update(toMonth=10, toDay=15)),
        f"{P}.seasons.Winter",
        "overlaps season 'Summer' on Oct 01",
    ),
    (
        "seasons-gap",
        pge(lambda r: summer(r).update(toMonth=8, toDay=31)),
        f"{P}.seasons",
        "no season covers Sep 01: seasons must cover the whole year (Feb 29 included) without gaps",
    ),
    (
        "feb-29-gap",
        pge(feb29_gap),
        f"{P}.seasons",
        "no season covers Feb 29: seasons must cover the whole year (Feb 29 included) without gaps",
    ),
    # window fields
    (
        "day-of-week-7",
        pge(lambda r: window(r, "ON_PEAK").update(toDayOfWeek=7)),
        f"{ON_PEAK_0}.toDayOfWeek",
        "must be a day of week 0..6 (0 = Monday), got 7",
    ),
    (
        "negative-day-of-week",
        pge(lambda r: window(r, "ON_PEAK").update(fromDayOfWeek=-1)),
        f"{ON_PEAK_0}.fromDayOfWeek",
        "must be a day of week 0..6 (0 = Monday), got -1",
    ),
    (
        "from-hour-24",
        pge(lambda r: window(r, "ON_PEAK").update(fromHour=24)),
        f"{ON_PEAK_0}.fromHour",
        "must be an hour 0..23, got 24",
    ),
    (
        "to-hour-25",
        pge(lambda r: window(r, "ON_PEAK").update(toHour=25)),
        f"{ON_PEAK_0}.toHour",
        "must be an hour 0..24 (24 = midnight), got 25",
    ),
    (
        "minute-60",
        pge(lambda r: window(r, "ON_PEAK").update(fromMinute=60)),
        f"{ON_PEAK_0}.fromMinute",
        "must be a minute 0..59, got 60",
    ),
    (
        "to-24-30",
        pge(lambda r: window(r, "PARTIAL_PEAK", 1).update(toHour=24, toMinute=30)),
        f"{SUMMER}.tou_periods.PARTIAL_PEAK.periods[1].toMinute",
        "must be 0 when toHour is 24, got 30",
    ),
    # periods cover every minute of every day
    (
        "periods-overlap",
        pge(lambda r: window(r, "ON_PEAK").update(fromHour=15)),
        ON_PEAK_0,
        "overlaps PARTIAL_PEAK.periods[0] at Mon 15:00",
    ),
    (
        "periods-gap",
        pge(lambda r: window(r, "ON_PEAK").update(toHour=20)),
        f"{SUMMER}.tou_periods",
        "no period covers Mon 20:00: periods must cover every minute of every day without gaps",
    ),
    (
        "weekend-gap",
        pge(lambda r: window(r, "ON_PEAK").update(toDayOfWeek=4)),
        f"{SUMMER}.tou_periods",
        "no period covers Sat 16:00: periods must cover every minute of every day without gaps",
    ),
    (
        "sell-side-gap",
        pge(lambda r: window(r["sell_tariff"], "OFF_PEAK", season="Winter").update(toHour=14)),
        f"{P}.sell_tariff.seasons.Winter.tou_periods",
        "no period covers Mon 14:00: periods must cover every minute of every day without gaps",
    ),
    # prices and windows match
    (
        "price-for-unknown-period",
        pge(lambda r: r["energy_charges"]["Summer"]["rates"].update(SUPER_OFF_PEAK=0.1)),
        f"{P}.energy_charges.Summer.rates.SUPER_OFF_PEAK",
        "price for period 'SUPER_OFF_PEAK', which has no time windows in season 'Summer'",
    ),
    (
        "price-for-unknown-season",
        pge(lambda r: r["energy_charges"].update(Spring={"rates": {"ON_PEAK": 0.3}})),
        f"{P}.energy_charges.Spring",
        "prices for season 'Spring', which has no time windows",
    ),
    (
        "all-price-for-unknown-period",
        pge(lambda r: r["energy_charges"]["ALL"]["rates"].update(SHOULDER=0.3)),
        f"{P}.energy_charges.ALL.rates.SHOULDER",
        "price for period 'SHOULDER', which no season gives time windows",
    ),
    (
        "demand-price-for-unknown-period",
        pge(lambda r: r["demand_charges"]["Winter"]["rates"].update(SHOULDER=1.5)),
        f"{P}.demand_charges.Winter.rates.SHOULDER",
        "price for period 'SHOULDER', which has no time windows in season 'Winter'",
    ),
    (
        "windows-without-price",
        pge(lambda r: r["energy_charges"]["Summer"]["rates"].pop("ON_PEAK")),
        f"{SUMMER}.tou_periods.ON_PEAK",
        "has time windows but no price in energy_charges "
        "(looked up Summer/ON_PEAK with the ALL fallbacks)",
    ),
    (
        "priced-period-with-empty-windows",
        pge(
            lambda r: (
                summer(r)["tou_periods"].update(SUPER_OFF_PEAK={"periods": []})
                or r["energy_charges"]["Summer"]["rates"].update(SUPER_OFF_PEAK=0.1)
            )
        ),
        f"{P}.energy_charges.Summer.rates.SUPER_OFF_PEAK",
        "price for period 'SUPER_OFF_PEAK', which has no time windows in season 'Summer'",
    ),
    # no negative prices
    (
        "negative-energy-price",
        pge(lambda r: r["energy_charges"]["Winter"]["rates"].update(OFF_PEAK=-0.01)),
        f"{P}.energy_charges.Winter.rates.OFF_PEAK",
        "must not be negative, got -0.01",
    ),
    (
        "negative-sell-price",
        pge(lambda r: r["sell_tariff"]["energy_charges"]["Summer"]["rates"].update(OFF_PEAK=-0.02)),
        f"{P}.sell_tariff.energy_charges.Summer.rates.OFF_PEAK",
        "must not be negative, got -0.02",
    ),
    (
        "negative-daily-charge",
        pge(lambda r: r["daily_charges"][0].update(amount=-1)),
        f"{P}.daily_charges[0].amount",
        "must not be negative, got -1.0",
    ),
    (
        "infinite-price",
        pge(lambda r: r["energy_charges"]["Winter"]["rates"].update(ON_PEAK=float("inf"))),
        f"{P}.energy_charges.Winter.rates.ON_PEAK",
        "must be a finite number, got inf",
    ),
    # buy >= sell
    (
        "sell-above-buy",
        pge(lambda r: r["sell_tariff"]["energy_charges"]["Summer"]["rates"].update(OFF_PEAK=0.3)),
        f"{P}.sell_tariff.energy_charges.Summer.rates.OFF_PEAK",
        "sell price 0.3 exceeds buy price 0.2451 at Mon 00:00 in season 'Summer' from Jun 01 "
        "(buy period 'OFF_PEAK', sell period 'OFF_PEAK'); buy must be >= sell",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "message"), [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES]
)
def test_each_rule_names_the_field(raw: object, field: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariff(raw)
    assert caught.value.field == field
    assert caught.value.message == message


def test_sell_above_buy_is_found_across_different_season_boundaries() -> None:
    raw = flat_sample(buy=0.30)
    sell = pge_like_sample()["sell_tariff"]
    sell["energy_charges"]["Winter"]["rates"]["OFF_PEAK"] = 0.31
    raw["sell_tariff"] = sell
    with pytest.raises(TariffError) as caught:
        parse_tariff(raw)
    assert caught.value.field == f"{P}.sell_tariff.energy_charges.Winter.rates.OFF_PEAK"
    assert caught.value.message.startswith("sell price 0.31 exceeds buy price 0.3 at Mon 00:00")


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
