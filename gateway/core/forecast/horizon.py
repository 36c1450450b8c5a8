"""The planner's horizon: prices, PV and load for each step ahead, from every source the site has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from gateway.core.forecast.feeds import PriceFeed, PvFeed
from gateway.core.forecast.profiles import DailyProfile, PvCorrection
from gateway.core.forecast.solar import mean_clear_sky_fraction
from gateway.core.planner import Horizon
from gateway.core.tariff import Tariff

MIN_STEPS: Final = 4
"""A horizon with prices for fewer steps than this is not worth planning."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PvSite:
    """Where the array is and how big: ``latitude``/``longitude`` None = no clear-sky model."""

    latitude: float | None
    longitude: float | None
    pv_w: float


@dataclass(slots=True)
class Learned:
    """What the site taught the forecasts so far (kept by the runtime, updated once a day)."""

    load: DailyProfile
    pv_profile: DailyProfile
    pv_correction: PvCorrection


def step_start(now: datetime, step_s: int) -> datetime:
    """Start of the step holding ``now`` (steps are aligned to the epoch, so to the hour)."""
    seconds = int(now.timestamp()) // step_s * step_s
    return datetime.fromtimestamp(seconds, UTC).astimezone(now.tzinfo)


def pv_forecast_w(site: PvSite, learned: Learned, start: datetime, step_s: int, tz: tzinfo) -> float:
    """Mean PV W expected over one step from the site's own model (no external feed)."""
    if site.latitude is None or site.longitude is None:
        return learned.pv_profile.at(start.astimezone(tz))
    share = mean_clear_sky_fraction(site.latitude, site.longitude, start, step_s)
    return share * site.pv_w * learned.pv_correction.factor_on(start.astimezone(tz).date())


def build_horizon(
    *,
    now: datetime,
    tz: tzinfo,
    step_s: int,
    steps: int,
    site: PvSite,
    learned: Learned,
    tariff: Tariff | None,
    price_feed: PriceFeed | None = None,
    pv_feed: PvFeed | None = None,
) -> Horizon | str:
    """The horizon from the step holding ``now``, or why there is none (no prices).

    Prices come from the dynamic feed where it covers a step, else from the tariff in force; the
    horizon ends at the first step neither covers. PV comes from the external feed when one is
    configured and still covers the step, else from clear-sky x size x learned correction.
    """
    first = step_start(now, step_s)
    solar, load, buy, sell = [], [], [], []
    for i in range(steps):
        start = first + timedelta(seconds=i * step_s)
        local = start.astimezone(tz)
        entry = price_feed.at(start) if price_feed is not None else None
        tariff_price = tariff.price_at(local) if tariff is not None else None
        if entry is not None:
            step_buy = entry.buy
            step_sell = (
                entry.sell
                if entry.sell is not None
                else (tariff_price.sell if tariff_price is not None else 0.0)
            )
        elif tariff_price is not None:
            step_buy, step_sell = tariff_price.buy, tariff_price.sell
        else:
            break
        buy.append(step_buy)
        sell.append(step_sell)
        if pv_feed is not None and start < pv_feed.points[-1][0]:
            mid, end = start + timedelta(seconds=step_s / 2), start + timedelta(seconds=step_s)
            solar.append((pv_feed.at(start) + 2 * pv_feed.at(mid) + pv_feed.at(end)) / 4)
        else:
            solar.append(pv_forecast_w(site, learned, start, step_s, tz))
        load.append(learned.load.at(local))
    if len(buy) < MIN_STEPS:
        return "no prices: neither a tariff nor a price feed covers the next steps"
    return Horizon(
        start=first, step_s=step_s, solar_w=tuple(solar), load_w=tuple(load), buy=tuple(buy), sell=tuple(sell)
    )
