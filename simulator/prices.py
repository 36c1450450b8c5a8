"""A day-ahead style dynamic price feed in simulated time, served by the control API (docs/simulator.md)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FEES_PER_KWH: Final = 0.15
"""Grid fees and taxes added to the spot price to make the buy price."""
MAX_HOURS: Final = 72
PUBLISH_HOUR_UTC: Final = 12
"""Tomorrow's prices appear at this hour (UTC), as a day-ahead auction's do."""

FeedMode = Literal["normal", "gap", "non_numeric", "wrong_unit", "stale", "down"]


def spot_price(hour_start: datetime, seed: int = 0) -> float:
    """Spot price per kWh for the hour starting at ``hour_start`` (UTC): cheap nights, a morning
    and a larger evening peak, a midday solar dip that goes below zero on some days, noise."""
    utc = hour_start.astimezone(UTC)
    day_rng = random.Random(seed * 100_003 + utc.toordinal())  # noqa: S311 - simulation noise
    level = day_rng.uniform(0.06, 0.14)
    dip = day_rng.uniform(0.0, 0.3)
    h = utc.hour + 1  # roughly Central European local time
    morning = 0.05 * math.exp(-0.5 * ((h - 8) / 1.5) ** 2)
    evening = 0.10 * math.exp(-0.5 * ((h - 19) / 2.0) ** 2)
    solar = dip * math.exp(-0.5 * ((h - 13) / 2.2) ** 2)
    noise = random.Random(seed * 7919 + int(utc.timestamp()) // 3600).gauss(0, 0.012)  # noqa: S311
    return round(level + morning + evening - solar + noise, 4)


def price_feed(now: datetime, *, seed: int = 0, mode: FeedMode = "normal") -> dict[str, Any]:
    """The feed body at simulated ``now``: hourly prices from the current hour to the end of
    tomorrow (after the daily publication) or of today (before it), in EUR/kWh."""
    utc = now.astimezone(UTC)
    first = utc.replace(minute=0, second=0, microsecond=0)
    days = 2 if utc.hour >= PUBLISH_HOUR_UTC else 1
    end = utc.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days)
    if mode == "stale":
        first, end = first - timedelta(hours=30), first - timedelta(hours=6)
    hours = min(MAX_HOURS, int((end - first).total_seconds() // 3600))
    prices: list[dict[str, Any]] = []
    for i in range(hours):
        start = first + timedelta(hours=i)
        spot = spot_price(start, seed)
        entry: dict[str, Any] = {
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "buy": round(spot + FEES_PER_KWH, 4),
            "sell": spot,
        }
        if mode == "wrong_unit":
            # EUR/MWh figures under a per-kWh label: what a misconfigured adapter sends.
            entry["buy"], entry["sell"] = entry["buy"] * 1000, spot * 1000
        prices.append(entry)
    if mode == "gap" and len(prices) > 3:
        del prices[2]
    if mode == "non_numeric" and prices:
        prices[1 if len(prices) > 1 else 0]["buy"] = "n/a"
    return {"unit": "EUR/kWh", "source": "simulator", "prices": prices}


class _FeedMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: FeedMode = "normal"
    seed: int = Field(default=0, ge=0, le=2**31)


PRICE_STATE: Final = web.AppKey("price_feed_state", dict)


def add_price_routes(app: web.Application, now: Callable[[], datetime]) -> None:
    """``GET /prices`` (the feed) and ``POST /prices {"mode": ..., "seed": ...}`` (make it
    misbehave for tests and demos); ``now`` returns the simulated time."""
    app[PRICE_STATE] = {"mode": "normal", "seed": 0}

    async def get_prices(request: web.Request) -> web.Response:
        state = request.app[PRICE_STATE]
        if state["mode"] == "down":
            return web.json_response({"error": "price feed down (simulated)"}, status=503)
        return web.json_response(price_feed(now(), seed=state["seed"], mode=state["mode"]))

    async def set_prices(request: web.Request) -> web.Response:
        try:
            body = _FeedMode.model_validate_json(await request.read())
        except ValidationError as exc:
            return web.json_response({"error": exc.errors()[0]["msg"]}, status=400)
        request.app[PRICE_STATE].update(mode=body.mode, seed=body.seed)
        return web.json_response(request.app[PRICE_STATE])

    app.router.add_get("/prices", get_prices)
    app.router.add_post("/prices", set_prices)
