"""The planner end to end: the simulator's price feed in, a plan out on /plan, bad feeds rejected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from structlog.testing import capture_logs

from gateway.core.config import Config
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.conftest import GatewayFactory

PLAN = f"/api/1/energy_sites/{SITE_ID}/plan"


def planner_config(sim: Simulator, data_dir: Path) -> Config:
    data = gateway_config(sim, data_dir).model_dump(mode="json", exclude_unset=True)
    site = data["sites"][0]
    site.update(latitude=52.52, longitude=13.40, planner={
        "horizon_h": 12, "step_min": 15, "pv_kw": 8, "round_trip_efficiency": 0.85,
        "price_feed": {"url": f"{sim.control_url}/prices", "refresh_s": 1, "timeout_s": 2},
    })
    return Config.model_validate(data)


async def get_json(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Any:
    async with http.get(url, **kwargs) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def autonomous(http: aiohttp.ClientSession, url: str,
                     headers: dict[str, str]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Switch the gateway's site to ``autonomous``; a reader of its plan's ``response``."""
    async with http.post(f"{url}/api/1/energy_sites/{SITE_ID}/operation", headers=headers,
                         json={"default_real_mode": "autonomous"}) as resp:
        assert resp.status == 200, await resp.text()

    async def plan() -> dict[str, Any]:
        body: dict[str, Any] = (await get_json(http, url + PLAN, headers=headers))["response"]
        return body

    return plan


async def test_autonomous_plans_from_the_price_feed_and_rejects_bad_ones(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with start_gateway(planner_config(sim, tmp_path / "data")) as gw, aiohttp.ClientSession() as http:
        idle = await get_json(http, gw.url + PLAN, headers=headers)
        assert idle["response"]["status"] == "inactive"
        plan = await autonomous(http, gw.url, headers)

        body = await eventually(plan, lambda b: b["status"] == "planned", timeout=20)
        from gateway.web.keys import GATEWAY

        problem = gw.app[GATEWAY].planners[SITE_ID].problem
        assert problem is not None
        assert problem.battery.round_trip_efficiency == 0.85  # the site's, not a constant
        feed = await get_json(http, f"{sim.control_url}/prices")
        first = feed["prices"][0]
        assert body["steps"][0]["buy_price"] == first["buy"]
        assert body["steps"][0]["sell_price"] == first["sell"]
        assert len(body["steps"]) >= 4
        assert body["action"] is not None
        assert body["feeds"] == {"price_feed": None}
        assert body["expected_cost"] <= body["self_consumption_cost"] + 0.05
        for step in body["steps"]:
            assert step["soc_pct"] >= 20 - 1e-6  # the default reserve
        # The device got the plan's setpoints, never below the user's reserve.
        assert gw.site.applied is not None
        assert gw.site.applied.reserve_pct >= 20

        with capture_logs() as logs:
            async with http.post(f"{sim.control_url}/prices", json={"mode": "wrong_unit"}) as resp:
                assert resp.status == 200
            rejected = await eventually(plan, lambda b: b["feeds"]["price_feed"] is not None, timeout=20)
            assert "wrong unit" in rejected["feeds"]["price_feed"]
            assert rejected["status"] == "planned"  # on the last good prices
            async with http.post(f"{sim.control_url}/prices", json={"mode": "down"}) as resp:
                assert resp.status == 200
            down = await eventually(plan, lambda b: "503" in (b["feeds"]["price_feed"] or ""), timeout=20)
            assert down["status"] == "planned"
        events = [e for e in logs if e.get("event") == "planner.feed_rejected"]
        assert [e["feed"] for e in events][:2] == ["price_feed", "price_feed"]
        assert all(sim.control_url not in str(e) for e in events)  # URLs may carry keys


async def test_autonomous_without_prices_falls_back_to_self_consumption_and_says_so(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    with capture_logs() as logs:
        async with start_gateway() as gw, aiohttp.ClientSession() as http:
            plan = await autonomous(http, gw.url, headers)

            body = await eventually(plan, lambda b: b["status"] == "fallback", timeout=20)
            assert body["action"]["kind"] == "self_consumption"
            assert "no prices" in body["reason"]
            await eventually(lambda: gw.site.applied is not None and gw.site.applied.battery_w is None)
    fallbacks = [e for e in logs if e.get("event") == "planner.fallback"]
    assert fallbacks
    assert "no prices" in fallbacks[0]["reason"]


async def test_what_the_planner_learned_survives_a_restart(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    from gateway.runtime.storage import Storage
    from gateway.web.keys import GATEWAY

    config = planner_config(sim, tmp_path / "data")
    evening = [300.0] * 72 + [2500.0] * 24  # a home that cooks and heats after 18:00
    async with start_gateway(config) as gw:
        planner = gw.app[GATEWAY].planners[SITE_ID]
        planner.learned.load.learn_day(2, evening)
        planner.learned.pv_correction.learn_day(measured_wh=20_000, clear_sky_wh=40_000)
        await planner.save()
        learned = planner.learned.load.profile(2)
    async with start_gateway(config) as gw:
        planner = gw.app[GATEWAY].planners[SITE_ID]
        await eventually(lambda: planner.learned.load.days == 1)
        assert planner.learned.load.profile(2) == learned
        assert planner.learned.pv_correction.factor == 0.5
    # a state it cannot read: logged, and the planner starts from the day-one profile
    async with Storage.in_data_dir(tmp_path / "data") as storage:
        await storage.write(lambda db: db.execute(
            "UPDATE planner_state SET state = '{\"v\": 1, \"load\": {\"slots\": 7}}'"))
    with capture_logs() as logs:
        async with start_gateway(config) as gw:
            await eventually(lambda: [e for e in logs if e["event"] == "planner.state_unreadable"])
            assert gw.app[GATEWAY].planners[SITE_ID].learned.load.days == 0


async def test_autonomous_plans_from_prices_pushed_over_mqtt(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    import aiomqtt

    from tests.integration.brokers import mqtt_broker

    headers = {"Authorization": f"Bearer {token()}"}
    topic = "prices/day-ahead/DE-LU"
    async with mqtt_broker() as broker, aiohttp.ClientSession() as http:
        data = planner_config(sim, tmp_path / "data").model_dump(mode="json", exclude_unset=True)
        planner = data["sites"][0]["planner"]
        del planner["price_feed"]
        planner["price_feed_mqtt"] = {"host": broker.host, "port": broker.port, "topic": topic}
        feed = await get_json(http, f"{sim.control_url}/prices")  # the simulator's day-ahead JSON
        async with start_gateway(Config.model_validate(data)) as gw, aiomqtt.Client(
                broker.host, broker.port) as publisher:
            plan = await autonomous(http, gw.url, headers)

            # no prices yet, no tariff: self-consumption, saying why
            assert (await eventually(plan, lambda b: b["status"] == "fallback"))["action"]["kind"] \
                == "self_consumption"
            await publisher.publish(topic, orjson.dumps(feed), qos=1, retain=True)
            body = await eventually(plan, lambda b: b["status"] == "planned", timeout=20)
            assert body["steps"][0]["buy_price"] == feed["prices"][0]["buy"]
            assert body["feeds"] == {"price_feed": None}
            # a message it cannot use: named, and planning goes on with the last good prices
            await publisher.publish(topic, b'{"unit": "EUR/MWh", "prices": [', qos=1, retain=True)
            bad = await eventually(plan, lambda b: b["feeds"]["price_feed"] is not None, timeout=20)
            assert "not JSON" in bad["feeds"]["price_feed"]
            assert bad["status"] == "planned"
