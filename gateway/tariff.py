"""The tariff_content_v2 wire model, its validation rules (fleet-api.md §5) and price lookup."""

from __future__ import annotations

import copy
import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALL: Final = "ALL"
"""Wildcard key in ``energy_charges``/``demand_charges``: any season, or any period."""

TOU_SETTINGS_PATH: Final = "tou_settings.tariff_content_v2"
"""Where the tariff sits in a ``POST time_of_use_settings`` body; the default error-path prefix."""

MINUTES_PER_DAY: Final = 24 * 60
MINUTES_PER_WEEK: Final = 7 * MINUTES_PER_DAY
DAYS_PER_YEAR: Final = 366  # Feb 29 is a day of the tariff year: seasons must cover it too

CHEAP_FRACTION: Final = 0.25
"""A buy price within this fraction of the day's spread above the day's minimum is cheap."""
EXPENSIVE_FRACTION: Final = 0.5
"""A price more than this fraction of the day's spread above the day's minimum is expensive."""

_LEAP_YEAR: Final = 2000
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPSILON: Final = 1e-9


class TariffError(ValueError):
    """A tariff that breaks the schema or a §5 rule.

    Attributes:
        field: dotted path of the offending part, e.g.
            ``tou_settings.tariff_content_v2.seasons.Summer.tou_periods.PEAK.periods[0].toHour``.
        message: what is wrong with it, for the ``invalid_field`` error description.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- wire model ---------------------------------------------------------------------------------


class _WireModel(BaseModel):
    # strict: a string hour or a boolean price is a client bug, not something to coerce;
    # extra="allow": the stored and served tariff is exactly what the client sent.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True, populate_by_name=True)


class Window(_WireModel):
    """One time window ``[from, to)`` repeated on each day ``fromDayOfWeek..toDayOfWeek``.

    Days of week are 0 = Monday .. 6 = Sunday and the range may wrap (5..1 = Sat..Tue).
    Omitted fields default as live captures imply (proto3 JSON drops zeros): ``from*`` = 0,
    ``toHour``/``toMinute`` = 0, ``toDayOfWeek`` = 6. ``toHour`` 24 (or 0) is the next midnight;
    a ``to`` at or before ``from`` runs past midnight into the next day.
    """

    from_day_of_week: int = Field(0, alias="fromDayOfWeek")
    to_day_of_week: int = Field(6, alias="toDayOfWeek")
    from_hour: int = Field(0, alias="fromHour")
    from_minute: int = Field(0, alias="fromMinute")
    to_hour: int = Field(0, alias="toHour")
    to_minute: int = Field(0, alias="toMinute")


class TouPeriod(_WireModel):
    """A named TOU period (``ON_PEAK``, ``PERIOD_17_30``...): the windows it applies in."""

    periods: list[Window] = Field(default_factory=list)


class Season(_WireModel):
    """A season: the inclusive range ``fromMonth/fromDay .. toMonth/toDay`` (may wrap the year)."""

    from_month: int | None = Field(None, alias="fromMonth")
    from_day: int | None = Field(None, alias="fromDay")
    to_month: int | None = Field(None, alias="toMonth")
    to_day: int | None = Field(None, alias="toDay")
    tou_periods: dict[str, TouPeriod] = Field(default_factory=dict)


class Charges(_WireModel):
    """One season's (or ``ALL``'s) rates: period name (or ``ALL``) -> price ($/kWh or $/kW)."""

    rates: dict[str, float] = Field(default_factory=dict)


class DailyCharge(_WireModel):
    """A fixed daily charge."""

    name: str | None = None
    amount: float | None = None


class SellTariff(_WireModel):
    """The export side of a tariff (and the shape the buy side shares)."""

    name: str | None = None
    utility: str | None = None
    code: str | None = None
    currency: str | None = None
    monthly_minimum_bill: float | None = None
    min_applicable_demand: float | None = None
    max_applicable_demand: float | None = None
    monthly_charges: float | None = None
    daily_charges: list[DailyCharge] = Field(default_factory=list)
    demand_charges: dict[str, Charges] = Field(default_factory=dict)
    energy_charges: dict[str, Charges] = Field(default_factory=dict)
    seasons: dict[str, Season] = Field(default_factory=dict)


class TariffContentV2(SellTariff):
    """The ``tariff_content_v2`` object: buy prices, seasons and an optional sell tariff."""

    version: int | None = None
    sell_tariff: SellTariff | None = None


# --- validated tariff ---------------------------------------------------------------------------


class PriceLevel(enum.StrEnum):
    """A price relative to the other prices of the same day."""

    CHEAP = "cheap"
    NORMAL = "normal"
    EXPENSIVE = "expensive"


@dataclass(frozen=True, slots=True)
class Price:
    """The prices in effect at one moment.

    Attributes:
        buy: import price in the tariff's currency per kWh.
        sell: export price per kWh (0.0 when the tariff has no ``sell_tariff``).
        period: the buy-side TOU period name.
        season: the buy-side season name.
    """

    buy: float
    sell: float
    period: str
    season: str


@dataclass(frozen=True, slots=True)
class _Schedule:
    """One side (buy or sell) resolved to lookup tables."""

    day_season: tuple[str, ...]  # leap-year day index (0 = Jan 1) -> season name
    week: Mapping[str, tuple[str, ...]]  # season -> minute of week (0 = Mon 00:00) -> period
    prices: Mapping[tuple[str, str], tuple[float, str]]  # (season, period) -> (price, source path)
    day_range: Mapping[tuple[str, int], tuple[float, float]]  # (season, weekday) -> (min, max)

    def resolve(self, moment: datetime) -> tuple[str, str, float]:
        season = self.day_season[_day_index(moment.month, moment.day)]
        minute = moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute
        period = self.week[season][minute]
        return season, period, self.prices[(season, period)][0]

    def range_on(self, moment: datetime) -> tuple[float, float]:
        season = self.day_season[_day_index(moment.month, moment.day)]
        return self.day_range[(season, moment.weekday())]


class Tariff:
    """A validated ``tariff_content_v2``: the wire dict as sent, plus price lookup.

    Build it with :func:`parse_tariff`. Every method taking ``now`` expects an aware datetime
    already converted to the site's local zone (the tariff itself carries no zone).
    """

    __slots__ = ("_buy", "_content", "_key", "_sell", "_wire")

    def __init__(
        self,
        content: TariffContentV2,
        wire: dict[str, Any],
        buy: _Schedule,
        sell: _Schedule | None,
        key: str,
    ) -> None:
        self._content = content
        self._wire = wire
        self._buy = buy
        self._sell = sell
        self._key = key

    @property
    def content(self) -> TariffContentV2:
        """The typed wire model (unknown keys kept as extras)."""
        return self._content

    @property
    def has_sell_tariff(self) -> bool:
        """Whether export prices are defined (else every sell price is 0.0)."""
        return self._sell is not None

    def wire(self) -> dict[str, Any]:
        """A fresh copy of the tariff exactly as the client sent it (for storage and site_info)."""
        return copy.deepcopy(self._wire)

    def price_at(self, now: datetime) -> Price:
        """Buy and sell prices, period and season at ``now`` (aware, site-local)."""
        _require_aware(now)
        season, period, buy = self._buy.resolve(now)
        sell = self._sell.resolve(now)[2] if self._sell is not None else 0.0
        return Price(buy=buy, sell=sell, period=period, season=season)

    def day_buy_range(self, now: datetime) -> tuple[float, float]:
        """(lowest, highest) buy price over the local calendar day of ``now``."""
        _require_aware(now)
        return self._buy.range_on(now)

    def day_sell_range(self, now: datetime) -> tuple[float, float]:
        """(lowest, highest) sell price over the local calendar day of ``now``."""
        _require_aware(now)
        return self._sell.range_on(now) if self._sell is not None else (0.0, 0.0)

    def cheapest_buy_today(self, now: datetime) -> float:
        """The lowest buy price of the local calendar day of ``now``."""
        return self.day_buy_range(now)[0]

    def buy_level(self, now: datetime) -> PriceLevel:
        """The buy price at ``now`` relative to the day's buy prices (flat day -> NORMAL).

        CHEAP: within ``CHEAP_FRACTION`` of the day's spread above its minimum; EXPENSIVE: more
        than ``EXPENSIVE_FRACTION`` of the spread above it.
        """
        return _level(self.price_at(now).buy, self.day_buy_range(now))

    def sell_level(self, now: datetime) -> PriceLevel:
        """The sell price at ``now`` relative to the day's sell prices; EXPENSIVE reads "high"."""
        return _level(self.price_at(now).sell, self.day_sell_range(now))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tariff):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Tariff(code={self._content.code!r}, name={self._content.name!r})"


def parse_tariff(raw: object, *, prefix: str = TOU_SETTINGS_PATH) -> Tariff:
    """Validate a bare ``tariff_content_v2`` object against the schema and every §5 rule.

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
        # Legacy shapes (optimization_strategy/schedule, tariff_content v1) are optional in §4.1.
        raise TariffError(
            TOU_SETTINGS_PATH, "required (legacy tou_settings shapes are not supported)"
        )
    return parse_tariff(settings["tariff_content_v2"], prefix=TOU_SETTINGS_PATH)


# --- rules --------------------------------------------------------------------------------------


def _build_schedule(side: SellTariff, path: str) -> _Schedule:
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
            spans[name] = (_day_index(known[0], known[1]), _day_index(known[2], known[3]))
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
    return _Schedule(day_season=day_season, week=week, prices=prices, day_range=day_range)


_DATE_ALIASES: Final = ("fromMonth", "fromDay", "toMonth", "toDay")


def _check_season_fields(season: Season, path: str) -> None:
    for month_alias, day_alias, month, day in (
        ("fromMonth", "fromDay", season.from_month, season.from_day),
        ("toMonth", "toDay", season.to_month, season.to_day),
    ):
        if month is not None and not 1 <= month <= 12:
            raise TariffError(_join(path, month_alias), f"must be a month 1..12, got {month}")
        if day is not None:
            last = _days_in_month(month) if month is not None else 31
            if not 1 <= day <= last:
                where = f"month {month}" if month is not None else "any month"
                raise TariffError(
                    _join(path, day_alias), f"must be a day 1..{last} of {where}, got {day}"
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
                _join(path, alias), f"must be a day of week 0..6 (0 = Monday), got {value}"
            )
    if not 0 <= window.from_hour <= 23:
        raise TariffError(_join(path, "fromHour"), f"must be an hour 0..23, got {window.from_hour}")
    if not 0 <= window.to_hour <= 24:
        raise TariffError(
            _join(path, "toHour"), f"must be an hour 0..24 (24 = midnight), got {window.to_hour}"
        )
    for alias, value in (("fromMinute", window.from_minute), ("toMinute", window.to_minute)):
        if not 0 <= value <= 59:
            raise TariffError(_join(path, alias), f"must be a minute 0..59, got {value}")
    if window.to_hour == 24 and window.to_minute != 0:
        raise TariffError(
            _join(path, "toMinute"), f"must be 0 when toHour is 24, got {window.to_minute}"
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
        raise TariffError(path, f"must be a finite number, got {value}")
    if value < 0:
        raise TariffError(path, f"must not be negative, got {value}")


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
                    _join(seasons_path, name), f"overlaps season {other!r} on {_format_day(day)}"
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
                            f"overlaps {other_name}.periods[{other_index}] "
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
    # Same order as tesla_fleet_api's _lookup_price: the season's rates (else ALL's), then the
    # period (else ALL). Deviation: an empty ``rates: {}`` block falls through to ALL, since the
    # PGE sample writes ``"Summer": {"rates": {}}`` to mean "nothing season-specific".
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
                    block_path, f"prices for season {season_name!r}, which has no time windows"
                )
            for period in block.rates:
                if period == ALL:
                    continue
                if season_name == ALL:
                    if not any(period in periods for periods in windowed.values()):
                        raise TariffError(
                            _join(block_path, "rates", period),
                            f"price for period {period!r}, which no season gives time windows",
                        )
                elif period not in windowed[season_name]:
                    raise TariffError(
                        _join(block_path, "rates", period),
                        f"price for period {period!r}, which has no time windows in season "
                        f"{season_name!r}",
                    )

    prices: dict[tuple[str, str], tuple[float, str]] = {}
    energy_path = _join(path, "energy_charges")
    for name, periods in windowed.items():
        for period in periods:
            found = _lookup(side.energy_charges, name, period, energy_path)
            if found is None:
                raise TariffError(
                    _join(path, "seasons", name, "tou_periods", period),
                    f"has time windows but no price in energy_charges (looked up {name}/{period} "
                    "with the ALL fallbacks)",
                )
            prices[(name, period)] = found
    return prices


def _check_buy_not_below_sell(buy: _Schedule, sell: _Schedule) -> None:
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
            if sell_price > buy_price + _EPSILON:
                raise TariffError(
                    sell_path,
                    f"sell price {sell_price} exceeds buy price {buy_price} at "
                    f"{_format_minute(minute)} in season {buy_season!r} from {_format_day(day)} "
                    f"(buy period {pair[0]!r}, sell period {pair[1]!r}); buy must be >= sell",
                )


# --- helpers ------------------------------------------------------------------------------------


def _level(price: float, day_range: tuple[float, float]) -> PriceLevel:
    low, high = day_range
    spread = high - low
    if spread <= _EPSILON:
        return PriceLevel.NORMAL
    if price <= low + CHEAP_FRACTION * spread + _EPSILON:
        return PriceLevel.CHEAP
    if price > low + EXPENSIVE_FRACTION * spread + _EPSILON:
        return PriceLevel.EXPENSIVE
    return PriceLevel.NORMAL


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError("now must be an aware datetime in the site's local zone")


def _days_in_month(month: int) -> int:
    following = date(_LEAP_YEAR + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _day_index(month: int, day: int) -> int:
    return date(_LEAP_YEAR, month, day).timetuple().tm_yday - 1


def _format_day(index: int) -> str:
    return (date(_LEAP_YEAR, 1, 1) + timedelta(days=index)).strftime("%b %d")


def _format_minute(minute: int) -> str:
    day, rest = divmod(minute % MINUTES_PER_WEEK, MINUTES_PER_DAY)
    return f"{_WEEKDAYS[day]} {rest // 60:02d}:{rest % 60:02d}"


def _join(path: str, *parts: str | int) -> str:
    out = path
    for part in parts:
        if isinstance(part, int):
            out = f"{out}[{part}]"
        elif out:
            out = f"{out}.{part}"
        else:
            out = part
    return out


# --- samples ------------------------------------------------------------------------------------


def _pge_seasons(summer: dict[str, float], winter: dict[str, float]) -> dict[str, Any]:
    def periods() -> dict[str, Any]:
        return {
            "OFF_PEAK": {"periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6, "toHour": 15}]},
            "PARTIAL_PEAK": {
                "periods": [
                    {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 15, "toHour": 16},
                    {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 21, "toHour": 0},
                ]
            },
            "ON_PEAK": {
                "periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 16, "toHour": 21}]
            },
        }

    seasons = {
        "Summer": {
            "fromMonth": 6,
            "fromDay": 1,
            "toMonth": 9,
            "toDay": 30,
            "tou_periods": periods(),
        },
        "Winter": {
            "fromMonth": 10,
            "fromDay": 1,
            "toMonth": 5,
            "toDay": 31,
            "tou_periods": periods(),
        },
    }
    charges = {
        "ALL": {"rates": {"ALL": 0}},
        "Summer": {"rates": summer},
        "Winter": {"rates": winter},
    }
    return {"seasons": seasons, "energy_charges": charges}


def pge_like_sample() -> dict[str, Any]:
    """A fresh PG&E EV2-A-like two-season tariff (Winter wraps the year end) with a sell side."""
    buy = _pge_seasons(
        {"ON_PEAK": 0.5576, "PARTIAL_PEAK": 0.4471, "OFF_PEAK": 0.2451},
        {"ON_PEAK": 0.4305, "PARTIAL_PEAK": 0.4138, "OFF_PEAK": 0.2451},
    )
    sell = _pge_seasons(
        {"ON_PEAK": 0.30, "PARTIAL_PEAK": 0.12, "OFF_PEAK": 0.05},
        {"ON_PEAK": 0.20, "PARTIAL_PEAK": 0.10, "OFF_PEAK": 0.04},
    )
    return {
        "version": 1,
        "utility": "Pacific Gas & Electric Co",
        "code": "PGE-EV-2A-TOU",
        "name": "Residential - Time of Use - Plug-In Electric Vehicle 2",
        "currency": "USD",
        "monthly_minimum_bill": 0,
        "monthly_charges": 0,
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "daily_demand_charges": {},
        "demand_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "Summer": {"rates": {}},
            "Winter": {"rates": {}},
        },
        "energy_charges": buy["energy_charges"],
        "seasons": buy["seasons"],
        "sell_tariff": {
            "name": "PG&E export credit",
            "utility": "Pacific Gas & Electric Co",
            "daily_charges": [{"name": "Charge", "amount": 0}],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
            "energy_charges": sell["energy_charges"],
            "seasons": sell["seasons"],
        },
    }


def flat_sample(buy: float = 0.30, sell: float = 0.05) -> dict[str, Any]:
    """A fresh flat tariff: one ``ALL`` season, one ``ALL`` period, one price each way."""

    def seasons() -> dict[str, Any]:
        return {
            "ALL": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": {"ALL": {"periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6}]}},
            }
        }

    return {
        "version": 1,
        "code": "FLAT",
        "name": "Flat rate",
        "utility": "Example Utility",
        "currency": "USD",
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
        "energy_charges": {"ALL": {"rates": {"ALL": buy}}},
        "seasons": seasons(),
        "sell_tariff": {
            "name": "Flat rate export",
            "energy_charges": {"ALL": {"rates": {"ALL": sell}}},
            "seasons": seasons(),
        },
    }
