"""Validation of ``tariff_content_v2``: the schema and every rule of docs/api.md "Tariffs"."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Final

from pydantic import ValidationError

from gateway.core.errors import InvalidInput, clip, echo
from gateway.core.tariff.prices import PRICE_EPSILON, Schedule, Tariff, day_index
from gateway.core.tariff.wire import (
    ALL,
    DAYS_PER_YEAR,
    LEAP_YEAR,
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    TOU_SETTINGS_PATH,
    Charges,
    Season,
    SellTariff,
    TariffContentV2,
    Window,
)

_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE_ALIASES: Final = ("fromMonth", "fromDay", "toMonth", "toDay")


class TariffError(InvalidInput):
    """A tariff that breaks the schema or a rule of docs/api.md "Tariffs".

    Attributes:
        field: dotted path of the offending part, e.g.
            ``tou_settings.tariff_content_v2.seasons.Summer.tou_periods.PEAK.periods[0].toHour``.
        message: what is wrong with it, for the ``invalid_field`` error description.
    """


def parse_tariff(raw: object, *, prefix: str = TOU_SETTINGS_PATH) -> Tariff:
    """Validate a bare ``tariff_content_v2`` object against the schema and every rule.

    Args:
        raw: the decoded JSON object.
        prefix: path of ``raw`` inside the request body, prepended to every error field.

    Raises:
        TariffError: naming the first offending field.
    """
    if not isinstance(raw, Mapping):
        raise TariffError(prefix or "tariff", "must be a JSON object")
    wire = copy.deepcopy(dict(raw))
    try:
        key = json.dumps(wire, sort_keys=True)
    except (TypeError, ValueError):
        raise TariffError(prefix or "tariff", "must be plain JSON data") from None
    try:
        content = TariffContentV2.model_validate(wire)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TariffError(_join(prefix, *first["loc"]), first["msg"]) from None
    buy = _build_schedule(content, prefix)
    sell = None
    if content.sell_tariff is not None:
        sell = _build_schedule(content.sell_tariff, _join(prefix, "sell_tariff"))
        _check_buy_not_below_sell(buy, sell)
    return Tariff(content, wire, buy, sell, key)


def parse_tou_settings(body: object) -> Tariff:
    """Validate a whole ``POST time_of_use_settings`` body.

    The body is ``{"tou_settings": {"tariff_content_v2": {…}}}``.

    Raises:
        TariffError: naming the first offending field (paths start at ``tou_settings``).
    """
    if not isinstance(body, Mapping):
        raise TariffError("body", "must be a JSON object")
    settings = body.get("tou_settings")
    if not isinstance(settings, Mapping):
        raise TariffError("tou_settings", "required: an object holding tariff_content_v2")
    if "tariff_content_v2" not in settings:
        # The legacy shapes (optimization_strategy/schedule, tariff_content v1) are not served
        # (docs/api.md "Tariffs").
        raise TariffError(
            TOU_SETTINGS_PATH, "required (legacy tou_settings shapes are not supported)"
        )
    return parse_tariff(settings["tariff_content_v2"], prefix=TOU_SETTINGS_PATH)


# --- rules --------------------------------------------------------------------------------------


def _build_schedule(side: SellTariff, path: str) -> Schedule:
    seasons_path = _join(path, "seasons")
    for name, season in side.seasons.items():
        _check_season_fields(season, _join(seasons_path, name))
    _check_non_negative(side, path)

    active: dict[str, Season] = {}
    spans: dict[str, tuple[int, int]] = {}
    for name, season in side.seasons.items():
        season_path = _join(seasons_path, name)
        has_windows = any(tp.periods for tp in season.tou_periods.values())
        dates = (season.from_month, season.from_day, season.to_month, season.to_day)
        if has_windows:
            known: list[int] = []
            for alias, value in zip(_DATE_ALIASES, dates, strict=True):
                if value is None:
                    raise TariffError(
                        _join(season_path, alias), "required for a season with time windows"
                    )
                known.append(value)
            active[name] = season
            spans[name] = (day_index(known[0], known[1]), day_index(known[2], known[3]))
        elif any(value is not None for value in dates):
            raise TariffError(
                _join(season_path, "tou_periods"), "a season with dates needs time windows"
            )
    if not active:
        raise TariffError(seasons_path, "at least one season with time windows is required")

    day_season = _cover_year(spans, seasons_path)
    week = {name: _cover_week(season, _join(seasons_path, name)) for name, season in active.items()}
    prices = _match_prices(side, active, path)
    day_range: dict[tuple[str, int], tuple[float, float]] = {}
    for name, minutes in week.items():
        for weekday in range(7):
            day = minutes[weekday * MINUTES_PER_DAY : (weekday + 1) * MINUTES_PER_DAY]
            values = [prices[(name, period)][0] for period in set(day)]
            day_range[(name, weekday)] = (min(values), max(values))
    return Schedule(day_season=day_season, week=week, prices=prices, day_range=day_range)


def _check_season_fields(season: Season, path: str) -> None:
    for month_alias, day_alias, month, day in (
        ("fromMonth", "fromDay", season.from_month, season.from_day),
        ("toMonth", "toDay", season.to_month, season.to_day),
    ):
        if month is not None and not 1 <= month <= 12:
            raise TariffError(_join(path, month_alias), f"must be a month 1..12, got {echo(month)}")
        if day is not None:
            last = _days_in_month(month) if month is not None else 31
            if not 1 <= day <= last:
                where = f"month {month}" if month is not None else "any month"
                raise TariffError(
                    _join(path, day_alias), f"must be a day 1..{last} of {where}, got {echo(day)}"
                )
    for period_name, tou_period in season.tou_periods.items():
        for index, window in enumerate(tou_period.periods):
            _check_window_fields(window, _join(path, "tou_periods", period_name, "periods", index))


def _check_window_fields(window: Window, path: str) -> None:
    for alias, value in (
        ("fromDayOfWeek", window.from_day_of_week),
        ("toDayOfWeek", window.to_day_of_week),
    ):
        if not 0 <= value <= 6:
            raise TariffError(
                _join(path, alias), f"must be a day of week 0..6 (0 = Monday), got {echo(value)}"
            )
    if not 0 <= window.from_hour <= 23:
        raise TariffError(
            _join(path, "fromHour"), f"must be an hour 0..23, got {echo(window.from_hour)}"
        )
    if not 0 <= window.to_hour <= 24:
        raise TariffError(
            _join(path, "toHour"),
            f"must be an hour 0..24 (24 = midnight), got {echo(window.to_hour)}",
        )
    for alias, value in (("fromMinute", window.from_minute), ("toMinute", window.to_minute)):
        if not 0 <= value <= 59:
            raise TariffError(_join(path, alias), f"must be a minute 0..59, got {echo(value)}")
    if window.to_hour == 24 and window.to_minute != 0:
        raise TariffError(
            _join(path, "toMinute"), f"must be 0 when toHour is 24, got {echo(window.to_minute)}"
        )


def _check_non_negative(side: SellTariff, path: str) -> None:
    for alias in ("monthly_minimum_bill", "monthly_charges"):
        value = getattr(side, alias)
        if value is not None:
            _check_price(value, _join(path, alias))
    for index, charge in enumerate(side.daily_charges):
        if charge.amount is not None:
            _check_price(charge.amount, _join(path, "daily_charges", index, "amount"))
    for table in ("energy_charges", "demand_charges"):
        charges: dict[str, Charges] = getattr(side, table)
        for season_name, block in charges.items():
            for period_name, price in block.rates.items():
                _check_price(price, _join(path, table, season_name, "rates", period_name))


def _check_price(value: float, path: str) -> None:
    if not math.isfinite(value):
        raise TariffError(path, f"must be a finite number, got {echo(value)}")
    if value < 0:
        raise TariffError(path, f"must not be negative, got {echo(value)}")


def _cover_year(spans: Mapping[str, tuple[int, int]], seasons_path: str) -> tuple[str, ...]:
    """Season per leap-year day; each span is an inclusive (first, last) day index pair."""
    owner: list[str | None] = [None] * DAYS_PER_YEAR
    for name, (first, last) in spans.items():
        days = (
            range(first, last + 1)
            if first <= last
            else [*range(first, DAYS_PER_YEAR), *range(last + 1)]
        )
        for day in days:
            other = owner[day]
            if other is not None:
                raise TariffError(
                    _join(seasons_path, name),
                    f"overlaps season {echo(other)} on {_format_day(day)}",
                )
            owner[day] = name
    if None in owner:
        raise TariffError(
            seasons_path,
            f"no season covers {_format_day(owner.index(None))}: seasons must cover the whole "
            "year (Feb 29 included) without gaps",
        )
    return tuple(name for name in owner if name is not None)


def _cover_week(season: Season, season_path: str) -> tuple[str, ...]:
    owner = [-1] * MINUTES_PER_WEEK
    refs: list[tuple[str, int]] = []
    for period_name, tou_period in season.tou_periods.items():
        for index, window in enumerate(tou_period.periods):
            ref = len(refs)
            refs.append((period_name, index))
            for start, end in _window_spans(window):
                for minute in range(start, end):
                    slot = minute % MINUTES_PER_WEEK
                    if owner[slot] != -1:
                        other_name, other_index = refs[owner[slot]]
                        raise TariffError(
                            _join(season_path, "tou_periods", period_name, "periods", index),
                            f"overlaps {clip(other_name)}.periods[{other_index}] "
                            f"at {_format_minute(slot)}",
                        )
                    owner[slot] = ref
    if -1 in owner:
        raise TariffError(
            _join(season_path, "tou_periods"),
            f"no period covers {_format_minute(owner.index(-1))}: periods must cover every "
            "minute of every day without gaps",
        )
    return tuple(refs[ref][0] for ref in owner)


def _window_spans(window: Window) -> list[tuple[int, int]]:
    """Minute-of-week ``[start, end)`` spans; ``end`` may pass the week end (caller wraps)."""
    first, last = window.from_day_of_week, window.to_day_of_week
    days = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
    start_of_day = window.from_hour * 60 + window.from_minute
    end_of_day = window.to_hour * 60 + window.to_minute
    if end_of_day <= start_of_day:
        end_of_day += MINUTES_PER_DAY  # past midnight; equal ends mean a whole day
    return [
        (day * MINUTES_PER_DAY + start_of_day, day * MINUTES_PER_DAY + end_of_day) for day in days
    ]


def _lookup(
    charges: Mapping[str, Charges], season: str, period: str, path: str
) -> tuple[float, str] | None:
    # The order of docs/api.md "Tariffs" (tesla_fleet_api's _lookup_price): the season's rates
    # (else ALL's), then the period (else ALL). An empty ``rates: {}`` block falls through to ALL,
    # since the PG&E sample writes ``"Summer": {"rates": {}}`` to mean "nothing season-specific".
    block_key = season if season in charges and charges[season].rates else ALL
    block = charges.get(block_key)
    if block is None:
        return None
    for rate_key in (period, ALL):
        if rate_key in block.rates:
            return block.rates[rate_key], _join(path, block_key, "rates", rate_key)
    return None


def _match_prices(
    side: SellTariff, active: Mapping[str, Season], path: str
) -> dict[tuple[str, str], tuple[float, str]]:
    windowed = {
        name: {period for period, tp in season.tou_periods.items() if tp.periods}
        for name, season in active.items()
    }
    for table in ("energy_charges", "demand_charges"):
        charges: dict[str, Charges] = getattr(side, table)
        for season_name, block in charges.items():
            block_path = _join(path, table, season_name)
            if not block.rates:
                continue
            if season_name != ALL and season_name not in active:
                raise TariffError(
                    block_path, f"prices for season {echo(season_name)}, which has no time windows"
                )
            for period in block.rates:
                if period == ALL:
                    continue
                if season_name == ALL:
                    if not any(period in periods for periods in windowed.values()):
                        raise TariffError(
                            _join(block_path, "rates", period),
                            f"price for period {echo(period)}, which no season gives time windows",
                        )
                elif period not in windowed[season_name]:
                    raise TariffError(
                        _join(block_path, "rates", period),
                        f"price for period {echo(period)}, which has no time windows in season "
                        f"{echo(season_name)}",
                    )

    prices: dict[tuple[str, str], tuple[float, str]] = {}
    energy_path = _join(path, "energy_charges")
    for name, periods in windowed.items():
        for period in periods:
            found = _lookup(side.energy_charges, name, period, energy_path)
            if found is None:
                raise TariffError(
                    _join(path, "seasons", name, "tou_periods", period),
                    f"has time windows but no price in energy_charges (looked up "
                    f"{clip(name)}/{clip(period)} with the ALL fallbacks)",
                )
            prices[(name, period)] = found
    return prices


def _check_buy_not_below_sell(buy: Schedule, sell: Schedule) -> None:
    first_day: dict[tuple[str, str], int] = {}
    for day in range(DAYS_PER_YEAR):
        first_day.setdefault((buy.day_season[day], sell.day_season[day]), day)
    for (buy_season, sell_season), day in first_day.items():
        buy_week, sell_week = buy.week[buy_season], sell.week[sell_season]
        seen: set[tuple[str, str]] = set()
        for minute in range(MINUTES_PER_WEEK):
            pair = (buy_week[minute], sell_week[minute])
            if pair in seen:
                continue
            seen.add(pair)
            buy_price, _ = buy.prices[(buy_season, pair[0])]
            sell_price, sell_path = sell.prices[(sell_season, pair[1])]
            if sell_price > buy_price + PRICE_EPSILON:
                raise TariffError(
                    sell_path,
                    f"sell price {echo(sell_price)} exceeds buy price {echo(buy_price)} at "
                    f"{_format_minute(minute)} in season {echo(buy_season)} from "
                    f"{_format_day(day)} (buy period {echo(pair[0])}, sell period "
                    f"{echo(pair[1])}); buy must be >= sell",
                )


# --- helpers ------------------------------------------------------------------------------------


def _days_in_month(month: int) -> int:
    following = date(LEAP_YEAR + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _format_day(index: int) -> str:
    return (date(LEAP_YEAR, 1, 1) + timedelta(days=index)).strftime("%b %d")


def _format_minute(minute: int) -> str:
    day, rest = divmod(minute % MINUTES_PER_WEEK, MINUTES_PER_DAY)
    return f"{_WEEKDAYS[day]} {rest // 60:02d}:{rest % 60:02d}"


def _join(path: str, *parts: str | int) -> str:
    """``path`` extended by ``parts``; a client's key is clipped, so the path stays bounded."""
    out = path
    for part in parts:
        if isinstance(part, int):
            out = f"{out}[{part}]"
        elif out:
            out = f"{out}.{clip(part)}"
        else:
            out = clip(part)
    return out
