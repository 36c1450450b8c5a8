"""Parsing and validating external feeds: dynamic prices and Forecast.Solar-style PV watts."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

import orjson

MAX_FEED_ENTRIES: Final = 2000
"""More entries than this (three weeks of 15-min prices) is not a price feed."""
MAX_PRICE_PER_KWH: Final = 5.0
"""A price beyond +/- this per kWh is taken for a unit mistake (EUR/MWh sent as EUR/kWh)."""
MAX_PV_W: Final = 1_000_000.0
"""A home PV forecast above this is not watts."""
PRICE_UNITS: Final[dict[str, float]] = {
    "EUR/kWh": 1.0,
    "EUR/MWh": 0.001,
    "ct/kWh": 0.01,
    "USD/kWh": 1.0,
    "USD/MWh": 0.001,
    "cent/kWh": 0.01,
    "GBP/kWh": 1.0,
    "p/kWh": 0.01,
    "per_kWh": 1.0,
    "per_MWh": 0.001,
}
"""Accepted ``unit`` values and the factor to the tariff's currency per kWh."""
MIN_STEP: Final = timedelta(minutes=5)
MAX_STEP: Final = timedelta(hours=1)


class FeedError(ValueError):
    """A feed's body cannot be used; the message names the feed and what is wrong."""

    def __init__(self, feed: str, problem: str) -> None:
        super().__init__(f"feed {feed!r}: {problem}")
        self.feed = feed
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One period of a dynamic price feed (prices per kWh; ``sell`` None = the tariff's)."""

    start: datetime
    end: datetime
    buy: float
    sell: float | None


@dataclass(frozen=True, slots=True)
class PriceFeed:
    """A validated, gap-free run of dynamic prices."""

    name: str
    entries: tuple[PriceEntry, ...]

    @property
    def end(self) -> datetime:
        """End of the last period."""
        return self.entries[-1].end

    def at(self, moment: datetime) -> PriceEntry | None:
        """The period holding ``moment``, or None outside the feed."""
        lo, hi = 0, len(self.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entries[mid].end <= moment:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.entries) and self.entries[lo].start <= moment:
            return self.entries[lo]
        return None


def _number(feed: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FeedError(feed, f"{where} is not a number: {value!r:.40}")
    return float(value)


def _moment(feed: str, value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise FeedError(feed, f"{where} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FeedError(feed, f"{where} is not an ISO 8601 time: {value!r:.40}") from None
    if moment.utcoffset() is None:
        raise FeedError(feed, f"{where} has no UTC offset: {value!r:.40}")
    return moment


MAX_MESSAGE_BYTES: Final = 2 * 1024 * 1024


def price_feed_message(feed: str, payload: bytes, now: datetime) -> PriceFeed:
    """A price feed pushed as one message (MQTT): the HTTP feed's JSON, at most 2 MB.

    Raises:
        FeedError: too large, not JSON, or what ``parse_price_feed`` refuses.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise FeedError(feed, f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise FeedError(feed, "message is not JSON") from None
    return parse_price_feed(feed, body, now)


def parse_price_feed(feed: str, body: Any, now: datetime) -> PriceFeed:
    """Validate a price feed body (docs/planner.md, "Dynamic price feed").

    ``{"unit": "EUR/MWh", "prices": [{"start": ISO, "end": ISO, "buy": n, "sell": n?}, ...]}``,
    periods of 5-60 min, contiguous, covering ``now``; negative prices are fine.

    Raises:
        FeedError: gaps, overlaps, non-numeric or implausible prices, unknown unit, stale.
    """
    if not isinstance(body, dict):
        raise FeedError(feed, "body is not a JSON object")
    unit = body.get("unit")
    if unit not in PRICE_UNITS:
        raise FeedError(feed, f"unknown unit {unit!r:.40}; expected one of {sorted(PRICE_UNITS)}")
    factor = PRICE_UNITS[unit]
    raw = body.get("prices")
    if not isinstance(raw, list) or not raw:
        raise FeedError(feed, "'prices' is missing or empty")
    if len(raw) > MAX_FEED_ENTRIES:
        raise FeedError(feed, f"{len(raw)} prices, more than {MAX_FEED_ENTRIES}")
    entries: list[PriceEntry] = []
    for i, item in enumerate(raw):
        where = f"prices[{i}]"
        if not isinstance(item, dict):
            raise FeedError(feed, f"{where} is not an object")
        start = _moment(feed, item.get("start"), f"{where}.start")
        end = _moment(feed, item.get("end"), f"{where}.end")
        if not MIN_STEP <= end - start <= MAX_STEP:
            raise FeedError(feed, f"{where} lasts {end - start}, not 5-60 minutes")
        buy = _number(feed, item.get("buy"), f"{where}.buy") * factor
        sell_raw = item.get("sell")
        sell = None if sell_raw is None else _number(feed, sell_raw, f"{where}.sell") * factor
        for price in (buy, sell):
            if price is not None and abs(price) > MAX_PRICE_PER_KWH:
                raise FeedError(feed, f"{where} price {price:g} per kWh is implausible (wrong unit?)")
        if entries and start != entries[-1].end:
            before = entries[-1].end.isoformat()
            raise FeedError(feed, f"gap or overlap between {before} and {start.isoformat()}")
        entries.append(PriceEntry(start=start, end=end, buy=buy, sell=sell))
    result = PriceFeed(name=feed, entries=tuple(entries))
    if result.end <= now:
        raise FeedError(feed, f"stale: its last price ended at {result.end.isoformat()}")
    if entries[0].start > now:
        raise FeedError(feed, f"starts in the future ({entries[0].start.isoformat()})")
    return result


@dataclass(frozen=True, slots=True)
class PvFeed:
    """A validated PV forecast: (instant, W) points, interpolated linearly, 0 outside."""

    name: str
    points: tuple[tuple[datetime, float], ...]

    def at(self, moment: datetime) -> float:
        """Forecast W at ``moment``."""
        pts = self.points
        if not pts or moment <= pts[0][0] or moment >= pts[-1][0]:
            return 0.0
        for (t0, w0), (t1, w1) in itertools.pairwise(pts):
            if t0 <= moment <= t1:
                span = (t1 - t0).total_seconds()
                return w0 if span <= 0 else w0 + (w1 - w0) * (moment - t0).total_seconds() / span
        return 0.0


def parse_pv_feed(feed: str, body: Any, tz: tzinfo, now: datetime) -> PvFeed:
    """Validate a Forecast.Solar-style body: ``{"result": {"watts": {"YYYY-MM-DD HH:MM:SS": W}}}``.

    Times without an offset are site-local (``tz``), as Forecast.Solar sends them.

    Raises:
        FeedError: not that shape, non-numeric or negative watts, nothing after ``now``.
    """
    result = body.get("result") if isinstance(body, dict) else None
    watts = result.get("watts") if isinstance(result, dict) else None
    if not isinstance(watts, dict) or not watts:
        raise FeedError(feed, "'result.watts' is missing or empty")
    if len(watts) > MAX_FEED_ENTRIES:
        raise FeedError(feed, f"{len(watts)} points, more than {MAX_FEED_ENTRIES}")
    points = []
    for key, value in watts.items():
        try:
            moment = datetime.fromisoformat(str(key))
        except ValueError:
            raise FeedError(feed, f"time {key!r:.40} is not ISO 8601") from None
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=tz)
        w = _number(feed, value, f"watts[{key!r:.40}]")
        if not 0 <= w <= MAX_PV_W:
            raise FeedError(feed, f"watts[{key!r:.40}] = {w:g} is not a plausible PV power")
        points.append((moment, w))
    points.sort(key=lambda p: p[0])
    if points[-1][0] <= now:
        raise FeedError(feed, f"stale: its last point is {points[-1][0].isoformat()}")
    return PvFeed(name=feed, points=tuple(points))
