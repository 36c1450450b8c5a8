"""Forecasts for the planner: clear-sky PV, learned load and PV profiles, price and PV feeds."""

from gateway.core.forecast.feeds import FeedError, PriceFeed, PvFeed, parse_price_feed, parse_pv_feed
from gateway.core.forecast.horizon import Learned, PvSite, build_horizon, pv_forecast_w, step_start
from gateway.core.forecast.profiles import DailyProfile, PvCorrection, default_load_w, no_default
from gateway.core.forecast.solar import clear_sky_fraction, mean_clear_sky_fraction, solar_elevation_deg

__all__ = [
    "DailyProfile",
    "FeedError",
    "Learned",
    "PriceFeed",
    "PvCorrection",
    "PvFeed",
    "PvSite",
    "build_horizon",
    "clear_sky_fraction",
    "default_load_w",
    "mean_clear_sky_fraction",
    "no_default",
    "parse_price_feed",
    "parse_pv_feed",
    "pv_forecast_w",
    "solar_elevation_deg",
    "step_start",
]
