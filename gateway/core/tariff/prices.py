"""Price lookup in a validated tariff: the price, period and season at a moment, and price levels."""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from gateway.core.tariff.wire import LEAP_YEAR, MINUTES_PER_DAY, TariffContentV2

CHEAP_FRACTION: Final = 0.25
"""A buy price within this fraction of the day's spread above the day's minimum is cheap."""
EXPENSIVE_FRACTION: Final = 0.5
"""A price more than this fraction of the day's spread above the day's minimum is expensive."""
PRICE_EPSILON: Final = 1e-9
"""Prices closer than this are equal (they are floats summed from the client's decimals)."""


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
class Schedule:
    """One side (buy or sell) of a validated tariff resolved to lookup tables."""

    day_season: tuple[str, ...]  # leap-year day index (0 = Jan 1) -> season name
    week: Mapping[str, tuple[str, ...]]  # season -> minute of week (0 = Mon 00:00) -> period
    prices: Mapping[tuple[str, str], tuple[float, str]]  # (season, period) -> (price, source path)
    day_range: Mapping[tuple[str, int], tuple[float, float]]  # (season, weekday) -> (min, max)

    def resolve(self, moment: datetime) -> tuple[str, str, float]:
        """(season, period, price) at the site-local ``moment``."""
        season = self.day_season[day_index(moment.month, moment.day)]
        minute = moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute
        period = self.week[season][minute]
        return season, period, self.prices[(season, period)][0]

    def range_on(self, moment: datetime) -> tuple[float, float]:
        """(lowest, highest) price over the site-local calendar day of ``moment``."""
        season = self.day_season[day_index(moment.month, moment.day)]
        return self.day_range[(season, moment.weekday())]


class Tariff:
    """A validated ``tariff_content_v2``: the wire dict as sent, plus price lookup.

    Build it with :func:`gateway.core.tariff.parse_tariff`. Every method taking ``now`` expects an
    aware datetime already converted to the site's local zone (the tariff itself carries no zone).
    """

    __slots__ = ("_buy", "_content", "_key", "_sell", "_wire")

    def __init__(
        self,
        content: TariffContentV2,
        wire: dict[str, Any],
        buy: Schedule,
        sell: Schedule | None,
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


def day_index(month: int, day: int) -> int:
    """Index of ``month``/``day`` in the tariff year (0 = Jan 1; Feb 29 is day 59)."""
    return date(LEAP_YEAR, month, day).timetuple().tm_yday - 1


def _level(price: float, day_range: tuple[float, float]) -> PriceLevel:
    low, high = day_range
    spread = high - low
    if spread <= PRICE_EPSILON:
        return PriceLevel.NORMAL
    if price <= low + CHEAP_FRACTION * spread + PRICE_EPSILON:
        return PriceLevel.CHEAP
    if price > low + EXPENSIVE_FRACTION * spread + PRICE_EPSILON:
        return PriceLevel.EXPENSIVE
    return PriceLevel.NORMAL


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError("now must be an aware datetime in the site's local zone")
