"""tariff_content_v2 validation: accepted live shapes and every rule of docs/api.md "Tariffs"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.core.errors import clip, echo
from gateway.core.tariff import TariffError, parse_tariff, parse_tou_settings
from tests.samples import (
    flat_sample,
    live_capture_sample,
    multi_season_sample,
    pge_like_sample,
    weekday_weekend_sample,
)

P = "tou_settings.tariff_content_v2"
Json = dict[str, Any]


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


def test_errors_quote_a_client_s_long_names_bounded() -> None:
    # A name is the client's own string: the description quotes its start, never all of it.
    long_name = "S" * 10_000
    raw = pge_like_sample()
    seasons = raw["seasons"]
    raw["seasons"] = {long_name: seasons["Summer"], "Winter": seasons["Winter"]}
    seasons["Summer"].update(toMonth=10, toDay=15)
    with pytest.raises(TariffError) as caught:
        parse_tariff(raw)
    assert caught.value.field == f"{P}.seasons.Winter"
    assert caught.value.message == f"overlaps season {echo(long_name)} on Oct 01"
    assert len(caught.value.message) < 80

    raw = pge_like_sample()
    raw["seasons"]["Summer"]["tou_periods"][long_name] = {"periods": [{"fromHour": 16, "toHour": 17}]}
    with pytest.raises(TariffError) as caught:
        parse_tariff(raw)
    assert caught.value.field == f"{P}.seasons.Summer.tou_periods.{clip(long_name)}.periods[0]"
    assert len(str(caught.value)) < 200
