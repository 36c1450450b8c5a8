"""Simulated weather alerts: raised per home on the control API, served as an NWS-compatible feed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.clock import SimClock

#: How near a home must be to the asked point (degrees of latitude and of longitude) to be in it:
#: the feed's stand-in for the NWS forecast zone a point falls in.
ZONE_DEG: Final = 0.05
MAX_ALERTS_PER_HOME: Final = 50
GEO_JSON: Final = "application/geo+json"
FeedMode = Literal["ok", "garbage", "huge", "error", "slow", "not_geojson", "rate_limited"]
_IDS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SimAlert:
    """One raised alert, its times in simulated time."""

    id: str
    event: str
    sent: datetime
    onset: datetime
    ends: datetime
    severity: str
    headline: str
    status: str
    message_type: str

    def active(self, now: datetime) -> bool:
        """Whether the feed lists it at ``now`` (the real API lists alerts until they end)."""
        return now < self.ends

    def feature(self, home_id: str) -> dict[str, Any]:
        """The alert as a GeoJSON feature of the NWS ``/alerts`` shape."""
        url = f"https://api.weather.gov/alerts/{self.id}"
        return {
            "id": url, "type": "Feature", "geometry": None,
            "properties": {
                "@id": url, "@type": "wx:Alert", "id": self.id,
                "areaDesc": f"Simulated zone of {home_id}", "geocode": {}, "affectedZones": [],
                "references": [], "sent": self.sent.isoformat(),
                "effective": self.sent.isoformat(), "onset": self.onset.isoformat(),
                "expires": self.ends.isoformat(), "ends": self.ends.isoformat(),
                "status": self.status, "messageType": self.message_type, "category": "Met",
                "severity": self.severity, "certainty": "Likely", "urgency": "Immediate",
                "event": self.event, "sender": "w-nws.webmaster@noaa.gov",
                "senderName": "energy-gateway simulator", "headline": self.headline,
                "description": f"{self.event} (simulated).", "instruction": None,
                "response": "Prepare", "parameters": {},
            },
        }


class AlertHome(Protocol):
    """What the feed needs of a home: its id, position and raised alerts."""

    @property
    def id(self) -> str: ...
    @property
    def position(self) -> tuple[float, float]: ...
    @property
    def alerts(self) -> list[SimAlert]: ...


class RaiseBody(BaseModel):
    """``POST /homes/{id}/alerts``."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=100)
    duration_s: float = Field(gt=0, le=30 * 86_400)
    onset_in_s: float = Field(0, ge=0, le=30 * 86_400)
    severity: str = Field("Severe", max_length=20)
    headline: str | None = Field(None, max_length=200)
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    message_type: Literal["Alert", "Update", "Cancel"] = "Alert"


def raise_alert(home: AlertHome, body: RaiseBody, now: datetime) -> SimAlert:
    """Add an alert to ``home`` (the oldest goes beyond ``MAX_ALERTS_PER_HOME``)."""
    onset = now + timedelta(seconds=body.onset_in_s)
    alert = SimAlert(
        id=f"urn:oid:2.49.0.1.840.0.sim.{home.id}.{next(_IDS)}", event=body.event, sent=now,
        onset=onset, ends=onset + timedelta(seconds=body.duration_s), severity=body.severity,
        headline=body.headline or f"{body.event} issued for {home.id}",
        status=body.status, message_type=body.message_type)
    home.alerts.append(alert)
    del home.alerts[:-MAX_ALERTS_PER_HOME]
    return alert


def parse_point(text: str) -> tuple[float, float]:
    """``LAT,LON`` as the API takes it; ValueError naming what is wrong."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("point must be 'latitude,longitude'")
    lat, lon = float(parts[0]), float(parts[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("point is outside the world")
    return lat, lon


def feed(homes: Iterable[AlertHome], point: tuple[float, float], now: datetime) -> dict[str, Any]:
    """The ``/alerts/active?point=`` answer: every active alert of the homes in the point's zone."""
    lat, lon = point
    features = [a.feature(h.id) for h in homes
                if abs(h.position[0] - lat) <= ZONE_DEG and abs(h.position[1] - lon) <= ZONE_DEG
                for a in h.alerts if a.active(now)]
    return {
        "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld",
                     {"@version": "1.1", "wx": "https://api.weather.gov/ontology#"}],
        "type": "FeatureCollection", "features": features,
        "title": f"Current watches, warnings, and advisories for {lat} N, {lon} W",
        "updated": now.isoformat(),
    }


def alert_json(alert: SimAlert) -> dict[str, Any]:
    """An alert as the control API shows it."""
    return {"id": alert.id, "event": alert.event, "onset": alert.onset.isoformat(),
            "ends": alert.ends.isoformat(), "status": alert.status,
            "message_type": alert.message_type, "severity": alert.severity}


class FeedFaults:
    """How the feed misbehaves (``POST /alerts/feed``): for testing clients against bad feeds."""

    def __init__(self) -> None:
        self.mode: FeedMode = "ok"
        self.delay_s = 5.0  # how long a "slow" answer takes; a rate limit's Retry-After (real s)
        self.requests = 0

    async def answer(self, body: dict[str, Any]) -> web.StreamResponse:
        """The feed's answer under the current mode."""
        mode = self.mode
        if mode == "error":
            return _problem(500, "Unexpected Problem", "simulated server error")
        if mode == "rate_limited":  # what api.weather.gov answers a client that polls too often
            response = _problem(429, "Too Many Requests", "simulated rate limit")
            response.headers["Retry-After"] = str(round(self.delay_s))
            return response
        if mode == "garbage":
            return web.Response(body=b'{"type": "FeatureCollection", "features": [', content_type=GEO_JSON)
        if mode == "not_geojson":
            return web.Response(body=b'{"hello": "world"}', content_type=GEO_JSON)
        if mode == "huge":
            return web.Response(body=b" " * 3_000_000 + orjson.dumps(body), content_type=GEO_JSON)
        if mode == "slow":
            await asyncio.sleep(self.delay_s)  # then answers: a client's timeout comes first
        return web.Response(body=orjson.dumps(body), content_type=GEO_JSON)


def _problem(status: int, title: str, detail: str) -> web.Response:
    # The API answers errors as RFC 7807 problem details.
    return web.Response(status=status, content_type="application/problem+json", body=orjson.dumps(
        {"type": "https://api.weather.gov/problems/" + title.replace(" ", ""), "title": title,
         "status": status, "detail": detail}))


class FeedTarget(Protocol):
    """What the alert routes drive (a Simulator)."""

    @property
    def clock(self) -> SimClock: ...
    @property
    def homes(self) -> Mapping[str, Any]: ...


class _FeedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: FeedMode
    delay_s: float = Field(5.0, gt=0, le=60)


def add_alert_routes(app: web.Application, target: FeedTarget) -> None:
    """``POST|GET|DELETE /homes/{id}/alerts``, ``GET /alerts/active?point=``, ``POST /alerts/feed``."""
    faults = FeedFaults()

    def home_of(request: web.Request) -> Any:
        home = target.homes.get(request.match_info["home_id"])
        if home is None:
            raise web.HTTPNotFound(text=orjson.dumps(
                {"error": f"unknown home {request.match_info['home_id']!r}"}).decode(),
                content_type="application/json")
        return home

    async def post(request: web.Request) -> web.Response:
        home = home_of(request)
        try:
            body = RaiseBody.model_validate(await request.json())
        except ValueError as exc:  # JSON errors and ValidationError alike
            return _bad(exc)
        alert = raise_alert(home, body, target.clock.now())
        return web.json_response(alert_json(alert), status=201)

    async def listing(request: web.Request) -> web.Response:
        home = home_of(request)
        now = target.clock.now()
        return web.json_response([alert_json(a) for a in home.alerts if a.active(now)])

    async def clear(request: web.Request) -> web.Response:
        home = home_of(request)
        cleared = len(home.alerts)
        home.alerts.clear()
        return web.json_response({"cleared": cleared})

    async def active(request: web.Request) -> web.StreamResponse:
        faults.requests += 1
        if not request.headers.get("User-Agent", "").strip():
            return _problem(403, "Forbidden", "a User-Agent header is required")
        try:
            point = parse_point(request.query.get("point", ""))
        except ValueError as exc:
            return _problem(400, "Bad Request", f"point: {exc}")
        return await faults.answer(feed(target.homes.values(), point, target.clock.now()))

    async def set_feed(request: web.Request) -> web.Response:
        try:
            body = _FeedBody.model_validate(await request.json())
        except ValueError as exc:
            return _bad(exc)
        faults.mode, faults.delay_s = body.mode, body.delay_s
        return web.json_response({"mode": faults.mode, "delay_s": faults.delay_s,
                                  "requests": faults.requests})

    app.router.add_post("/homes/{home_id}/alerts", post)
    app.router.add_get("/homes/{home_id}/alerts", listing)
    app.router.add_delete("/homes/{home_id}/alerts", clear)
    app.router.add_get("/alerts/active", active)
    app.router.add_post("/alerts/feed", set_feed)


def _bad(exc: ValueError) -> web.Response:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return web.json_response({"error": f"{where}: {first['msg']}"}, status=400)
    return web.json_response({"error": f"body is not JSON: {exc}"}, status=400)
