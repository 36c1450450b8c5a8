"""The simulator's weather alerts: raised per home on the control API, served in the NWS shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest_asyncio

from gateway.core.storm import DEFAULT_EVENTS, nws_point, parse_nws
from simulator import HomeConfig, SimDeviceConfig, Simulator, SimulatorConfig
from simulator.config import ControlConfig

UA = {"User-Agent": "energy-gateway tests"}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    """Two homes far apart, the clock frozen (alerts end in simulated time)."""
    dev = [SimDeviceConfig(id="inverter", kind="sunspec", port=0)]
    config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0, clock_speed=0, homes=[
        HomeConfig(id="a", latitude=30.0, longitude=-90.0, devices=dev),
        HomeConfig(id="b", latitude=40.0, longitude=-100.0, devices=dev)])
    async with Simulator(config) as simulator:
        yield simulator


async def test_a_raised_alert_is_in_the_feed_of_its_homes_point_until_it_ends(sim: Simulator) -> None:
    async with aiohttp.ClientSession(base_url=sim.control_url, headers=UA) as http:
        async with http.post("/homes/a/alerts", json={"event": "Tornado Warning",
                                                       "duration_s": 600}) as resp:
            assert resp.status == 201
            raised = await resp.json()
        assert datetime.fromisoformat(raised["onset"]) == sim.clock.now()

        async with http.get("/alerts/active", params={"point": nws_point(30.01, -90.0)}) as resp:
            assert (resp.status, resp.content_type) == (200, "application/geo+json")
            feed = await resp.read()
        (props,) = [f["properties"] for f in (await resp.json(content_type=None))["features"]]
        assert (props["event"], props["status"], props["messageType"], props["id"]) == (
            "Tornado Warning", "Actual", "Alert", raised["id"])
        assert props["ends"] == raised["ends"]
        # what the gateway's parser makes of it
        (alert,) = parse_nws(feed, now=sim.clock.now(), events=DEFAULT_EVENTS).alerts
        assert alert.ends == datetime.fromisoformat(raised["ends"])

        async with http.get("/alerts/active", params={"point": "40,-100"}) as resp:
            assert (await resp.json(content_type=None))["features"] == []  # home b: no alert

        sim.clock.advance(601)  # simulated time passes its end
        async with http.get("/alerts/active", params={"point": "30,-90"}) as resp:
            assert (await resp.json(content_type=None))["features"] == []
        async with http.get("/homes/a/alerts") as resp:
            assert await resp.json() == []


async def test_clearing_and_bad_requests(sim: Simulator) -> None:
    async with aiohttp.ClientSession(base_url=sim.control_url, headers=UA) as http:
        for body in ({"event": "Tornado Warning"}, {"event": "", "duration_s": 5},
                     {"event": "x", "duration_s": 0}, {"event": "x", "duration_s": 5, "y": 1}):
            async with http.post("/homes/a/alerts", json=body) as resp:
                assert resp.status == 400, body
                assert "error" in await resp.json()
        async with http.post("/homes/nope/alerts", json={"event": "x", "duration_s": 5}) as resp:
            assert resp.status == 404
        async with http.post("/homes/a/alerts", json={"event": "Wind Advisory", "duration_s": 60,
                                                       "status": "Test"}):
            pass
        async with http.delete("/homes/a/alerts") as resp:
            assert await resp.json() == {"cleared": 1}
        async with http.get("/alerts/active", params={"point": "north"}) as resp:
            assert resp.status == 400
            assert (await resp.json(content_type=None))["title"] == "Bad Request"
        async with http.post("/alerts/feed", json={"mode": "sideways"}) as resp:
            assert resp.status == 400


async def test_the_feed_refuses_requests_without_a_user_agent(sim: Simulator) -> None:
    async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as http, \
            http.get(f"{sim.control_url}/alerts/active", params={"point": "30,-90"}) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
