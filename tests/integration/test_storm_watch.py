"""Storm watch end to end: each alert source raises and clears storm mode, seen in the simulator's truth."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from structlog.testing import capture_logs

from gateway.core.config import Config
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, STORM_ADMIN_SCOPE
from simulator import HomeTruth, Simulator
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.integration.brokers import free_port, mosquitto_path, mqtt_broker
from tests.integration.conftest import GatewayFactory, RunningGateway
from tests.integration.secure_broker import (
    PASSWORD,
    make_pki,
    password_file,
    secured_mosquitto,
)
from tests.integration.secure_broker import USER as BROKER_USER

HOME = "home-1001"
SITE = f"/api/1/energy_sites/{SITE_ID}"
ADMIN = {"Authorization": f"Bearer {token((READ_SCOPE, STORM_ADMIN_SCOPE))}"}
USER = {"Authorization": f"Bearer {token((READ_SCOPE, COMMAND_SCOPE))}"}


def storm_config(sim: Simulator, data_dir: Path, storm_watch: dict[str, Any]) -> Config:
    """The test site at its home's position, following ``storm_watch``."""
    config = gateway_config(sim, data_dir)
    lat, lon = sim.homes[HOME].position
    site = config.sites[0].model_validate({
        **config.sites[0].model_dump(), "latitude": lat, "longitude": lon,
        "storm_watch": storm_watch})
    return config.model_copy(update={"sites": [site]})


def nws(sim: Simulator, **extra: Any) -> dict[str, Any]:
    return {"nws": {"base_url": sim.control_url, "poll_interval_s": 0.1, "timeout_s": 0.5,
                    "user_agent": "energy-gateway tests", **extra}}


async def control(http: aiohttp.ClientSession, sim: Simulator, method: str, path: str,
                  body: dict[str, Any] | None = None) -> Any:
    async with http.request(method, f"{sim.control_url}{path}", json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def api(http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str, *,
              headers: dict[str, str] = ADMIN, body: dict[str, Any] | None = None,
              ) -> tuple[int, Any]:
    async with http.request(method, f"{gw.url}{path}", headers=headers, json=body) as resp:
        return resp.status, await resp.json()


async def storm_active(http: aiohttp.ClientSession, gw: RunningGateway) -> bool:
    status, body = await api(http, gw, "GET", f"{SITE}/live_status")
    assert status == 200, body
    return bool(body["response"]["storm_mode_active"])


def same_second(a: str, b: str) -> bool:
    """Two RFC 3339 instants within the second (bodies carry whole seconds)."""
    return abs((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds()) < 1


def truth(sim: Simulator) -> HomeTruth:
    return sim.homes[HOME].truth()


def charging_to_full(sim: Simulator) -> bool:
    """The simulated battery holds a 100 % reserve, may charge from the grid, and charges."""
    t = truth(sim)
    return t.reserve_pct == 100 and t.grid_charging and t.battery_w < -1000


def back_to_user_mode(sim: Simulator) -> bool:
    t = truth(sim)
    return t.reserve_pct == 20 and not t.grid_charging


async def grid_charging_off(http: aiohttp.ClientSession, gw: RunningGateway) -> None:
    status, body = await api(http, gw, "POST", f"{SITE}/grid_import_export", headers=USER,
                             body={"disallow_charge_from_grid_with_solar_installed": True})
    assert status == 200, body


async def test_the_nws_feed_raises_and_clears_storm_mode(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    """The real NWS client against the simulator's feed: the battery charges to full from the
    grid although grid charging is off, and the user's mode resumes when the alert is gone."""
    async with start_gateway(storm_config(sim, tmp_path / "data", nws(sim))) as gw:
        await grid_charging_off(http, gw)
        await eventually(lambda: gw.site.storm.sources["nws"].status == "ok")
        assert not await storm_active(http, gw)
        with capture_logs() as logs:
            raised = await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                                   {"event": "Tornado Warning", "duration_s": 3600})
            await eventually(lambda: storm_active(http, gw))
            await eventually(lambda: charging_to_full(sim))
            # the watch's pass logs it and records the episode
            started = await eventually(
                lambda: [e for e in logs if e["event"] == "storm.mode_started"])
        _, status = await api(http, gw, "GET", f"{SITE}/storm_alert", headers=USER)
        (alert,) = status["response"]["alerts"]
        assert (alert["event"], alert["source"], alert["id"]) == (
            "Tornado Warning", "nws", raised["id"])
        assert same_second(alert["ends"], raised["ends"])
        assert status["response"]["storm_mode_active"] is True
        assert status["response"]["active_since"] is not None
        assert [(e["alert"], e["source"]) for e in logs if e["event"] == "storm.alert_active"] \
            == [("Tornado Warning", "nws")]
        assert (started[0]["alert"], started[0]["ends"]) == ("Tornado Warning", raised["ends"])

        await control(http, sim, "DELETE", f"/homes/{HOME}/alerts")
        await eventually(lambda: back_to_user_mode(sim))
        assert not await storm_active(http, gw)
        # the history says which alert, from which source, from when to when
        _, status = await eventually(lambda: api(http, gw, "GET", f"{SITE}/storm_alert"),
                                     lambda r: r[1]["response"]["episodes"][0]["ended"])
        (episode,) = status["response"]["episodes"]
        assert (episode["event"], episode["source"]) == ("Tornado Warning", "nws")
        assert same_second(episode["alert_ends"], raised["ends"])
        assert episode["started"] <= episode["ended"]


async def test_an_event_outside_the_configured_set_does_not_count(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    config = storm_config(sim, tmp_path / "data", nws(sim, events=["Hurricane Warning"]))
    async with start_gateway(config) as gw:
        await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                      {"event": "Tornado Warning", "duration_s": 3600})
        polls = gw.site.storm.sources["nws"].last_ok_at
        # a few answers listing the tornado warning: none counts
        await eventually(lambda: gw.site.storm.sources["nws"].last_ok_at != polls)
        await eventually(lambda: gw.site.storm.sources["nws"].last_ok_at != polls)
        assert not await storm_active(http, gw)
        await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                      {"event": "Hurricane Warning", "duration_s": 3600})
        await eventually(lambda: storm_active(http, gw))


@pytest.mark.parametrize("mode", ["garbage", "not_geojson", "huge", "error", "slow"])
async def test_a_bad_feed_is_reported_and_never_clears_an_active_alert(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
    mode: str,
) -> None:
    async with start_gateway(storm_config(sim, tmp_path / "data", nws(sim))) as gw:
        await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                      {"event": "Hurricane Warning", "duration_s": 3600})
        await eventually(lambda: storm_active(http, gw))
        with capture_logs() as logs:
            await control(http, sim, "POST", "/alerts/feed", {"mode": mode, "delay_s": 2})
            await control(http, sim, "DELETE", f"/homes/{HOME}/alerts")  # unseen: the feed fails
            nws_state = gw.site.storm.sources["nws"]
            await eventually(lambda: nws_state.failures >= 2, timeout=15)
            health = await eventually(lambda: _health(http, gw),
                                      lambda h: h["status"] == "degraded")
        source = health["sites"][str(SITE_ID)]["storm_watch"]["sources"]["nws"]
        assert source["status"] == "failing", source
        assert source["last_error"], source
        assert await storm_active(http, gw)
        assert charging_to_full(sim)
        failed = [e for e in logs if e["event"] == "storm.source_failed"]
        assert len(failed) == 1, failed  # once per change of state, not once per poll
        assert failed[0]["source"] == "nws"
        assert failed[0]["holding"][0]["alert"] == \
            "Hurricane Warning"

        await control(http, sim, "POST", "/alerts/feed", {"mode": "ok"})
        await eventually(lambda: storm_active(http, gw), lambda active: not active, timeout=15)
        assert (await _health(http, gw))["sites"][str(SITE_ID)]["storm_watch"]["sources"][
            "nws"]["status"] == "ok"


async def _health(http: aiohttp.ClientSession, gw: RunningGateway) -> Any:
    async with http.get(f"{gw.url}/health") as resp:
        return await resp.json()


async def test_a_restart_mid_storm_keeps_the_storm(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    config = storm_config(sim, tmp_path / "data", nws(sim))
    async with start_gateway(config) as gw:
        await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                      {"event": "Winter Storm Warning", "duration_s": 3600})
        await eventually(lambda: storm_active(http, gw))
        since = await eventually(lambda: gw.site.storm.episode)  # recorded by the watch's pass
    # the feed is down when the gateway comes back: the kept alert holds until its ends
    await control(http, sim, "POST", "/alerts/feed", {"mode": "error"})
    async with start_gateway(config) as gw:
        assert gw.site.storm.active(datetime.now(UTC))
        assert await storm_active(http, gw)
        await eventually(lambda: charging_to_full(sim))
        assert gw.site.storm.episode == since  # the same episode, resumed
        await control(http, sim, "DELETE", f"/homes/{HOME}/alerts")
        await control(http, sim, "POST", "/alerts/feed", {"mode": "ok"})
        await eventually(lambda: back_to_user_mode(sim))


async def test_the_mqtt_topic_raises_and_clears_storm_mode(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    async with mqtt_broker() as broker:
        topic = "home/storm_alert"
        config = storm_config(sim, tmp_path / "data", {
            "mqtt": {"host": broker.host, "port": broker.port, "topic": topic}})
        async with start_gateway(config) as gw, \
                aiomqtt.Client(broker.host, broker.port, identifier="storm-test") as client:
            await grid_charging_off(http, gw)
            await eventually(lambda: gw.site.storm.sources["mqtt"].status == "ok", timeout=15)
            await client.publish(topic, b"true", qos=1)
            await eventually(lambda: storm_active(http, gw))
            await eventually(lambda: charging_to_full(sim))
            with capture_logs() as logs:
                await client.publish(topic, b"{not json", qos=1)
                refused = await eventually(lambda: [
                    e for e in logs if e["event"] == "storm.mqtt_message_refused"])
            assert refused[0]["topic"] == topic
            assert await storm_active(http, gw)  # a bad message changes nothing
            await client.publish(topic, b"false", qos=1)
            await eventually(lambda: back_to_user_mode(sim))

            ends = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            await client.publish(topic, f'{{"event": "Hurricane Watch", "ends": "{ends}"}}'.encode(),
                                 qos=1)
            await eventually(lambda: storm_active(http, gw))
            _, status = await api(http, gw, "GET", f"{SITE}/storm_alert")
            (alert,) = status["response"]["alerts"]
            assert (alert["event"], alert["source"]) == ("Hurricane Watch", "mqtt")
            assert same_second(alert["ends"], ends)
            await client.publish(topic, b'{"active": false}', qos=1)
            await eventually(lambda: storm_active(http, gw), lambda active: not active)


async def test_the_admin_call_needs_its_own_scope(
    gateway: RunningGateway, sim: Simulator, http: aiohttp.ClientSession,
) -> None:
    path = f"{SITE}/storm_alert"
    status, body = await api(http, gateway, "POST", path, headers=USER,
                             body={"event": "Tornado Warning"})
    assert (status, body["error"]) == (403, "Unauthorized missing scopes")  # energy_cmds is not it
    other = {"Authorization": f"Bearer {token((STORM_ADMIN_SCOPE,), sites=[SITE_ID + 1])}"}
    assert (await api(http, gateway, "POST", path, headers=other, body={}))[0] == 404
    for bad in ({"duration_s": 5}, {"event": ""}, {"colour": "red"},
                {"ends": "2020-01-01T00:00:00+00:00"}, {"ends": "tomorrow"}):
        status, body = await api(http, gateway, "POST", path, body=bad)
        assert status == 400, (bad, body)
    assert not await storm_active(http, gateway)

    status, body = await api(http, gateway, "POST", path,
                             body={"event": "Tornado Warning", "duration_s": 3600})
    assert status == 200, body
    (alert,) = body["response"]["alerts"]
    assert (alert["event"], alert["source"]) == ("Tornado Warning", "admin")
    assert await storm_active(http, gateway)
    await eventually(lambda: charging_to_full(sim))

    assert (await api(http, gateway, "DELETE", path, headers=USER))[0] == 403
    status, body = await api(http, gateway, "DELETE", path)
    assert (status, body["response"]["alerts"]) == (200, [])
    await eventually(lambda: back_to_user_mode(sim))


async def test_an_alert_ends_by_itself_at_its_ends(
    sim: Simulator, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
) -> None:
    """No source clears it: the gateway's clock passing ``ends`` does."""
    offset = timedelta()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC) + offset  # noqa: E731
    async with start_gateway(clock=clock) as gw:
        status, _ = await api(http, gw, "POST", f"{SITE}/storm_alert",
                              body={"event": "Wind Advisory", "duration_s": 600})
        assert status == 200
        await eventually(lambda: charging_to_full(sim))
        offset = timedelta(seconds=601)
        await eventually(lambda: back_to_user_mode(sim))
        assert not await storm_active(http, gw)


async def test_an_outage_during_a_storm_shows_the_pre_charge_in_backup_history(
    gateway: RunningGateway, sim: Simulator, http: aiohttp.ClientSession,
) -> None:
    status, _ = await api(http, gateway, "POST", f"{SITE}/storm_alert",
                          body={"event": "Hurricane Warning", "duration_s": 7200})
    assert status == 200
    await eventually(lambda: gateway.site.storm.episode is not None)
    await control(http, sim, "POST", f"/homes/{HOME}/grid", {"up": False})

    async def backup() -> Any:
        return (await api(http, gateway, "GET",
                          f"{SITE}/calendar_history?kind=backup&period=day"))[1]

    body = await eventually(backup, lambda b: b["response"]["events"])
    (event,) = body["response"]["events"]
    storm = event["storm_watch"]
    assert (storm["event"], storm["source"]) == ("Hurricane Warning", "admin")
    assert datetime.fromisoformat(storm["since"]) <= datetime.fromisoformat(event["timestamp"])
    await control(http, sim, "POST", f"/homes/{HOME}/grid", {"up": True})


async def test_a_devices_own_storm_bit_is_a_source_where_configured(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    config = gateway_config(sim, tmp_path / "data")
    site = config.sites[0]
    device = site.devices[0].model_validate({
        **site.devices[0].model_dump(), "options": {
            **site.devices[0].options.model_dump(), "storm_alert": {"evtvnd1_bit": 0}}})
    config = config.model_copy(update={"sites": [site.model_copy(update={"devices": [device]})]})
    async with start_gateway(config) as gw:
        sim.homes[HOME].set_storm_alert(True)  # the inverter's vendor bit
        await eventually(lambda: storm_active(http, gw))
        await eventually(lambda: charging_to_full(sim))
        _, status = await api(http, gw, "GET", f"{SITE}/storm_alert")
        assert [a["source"] for a in status["response"]["alerts"]] == ["device:inverter"]
        sim.homes[HOME].set_storm_alert(False)
        await eventually(lambda: back_to_user_mode(sim))


async def test_an_unreachable_feed_is_shown_in_health_and_logged_once(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with capture_logs() as logs:
        config = storm_config(sim, tmp_path / "data", nws(sim, base_url=closed))
        async with start_gateway(config) as gw:
            await eventually(lambda: gw.site.storm.sources["nws"].failures >= 3, timeout=15)
            health = await _health(http, gw)
    source = health["sites"][str(SITE_ID)]["storm_watch"]["sources"]["nws"]
    assert (health["status"], source["status"]) == ("degraded", "failing")
    assert "ClientConnectorError" in source["last_error"]
    assert len([e for e in logs if e["event"] == "storm.source_failed"]) == 1


async def test_alerts_run_in_simulated_time(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    """The gateway on the simulator's clock: a 30-minute warning at 1800x passes in a second."""
    config = storm_config(sim, tmp_path / "data", nws(sim))
    async with start_gateway(config, clock=sim.clock.now) as gw:
        raised = await control(http, sim, "POST", f"/homes/{HOME}/alerts",
                               {"event": "Severe Thunderstorm Warning", "duration_s": 1800})
        await eventually(lambda: storm_active(http, gw))
        with capture_logs() as logs:
            await control(http, sim, "POST", "/clock", {"speed": 1800})
            await eventually(lambda: storm_active(http, gw), lambda active: not active)
            await control(http, sim, "POST", "/clock", {"speed": 1})
            # logged by the watch's next pass (live_status reads the alerts' ends at once)
            ended = await eventually(lambda: [e for e in logs if e["event"] == "storm.alert_ended"])
        assert ended[0]["ends"] == raised["ends"]
        assert sim.clock.now() >= datetime.fromisoformat(raised["ends"])


@pytest.mark.skipif(mosquitto_path() is None, reason="needs the mosquitto binary (a password file)")
async def test_the_mqtt_source_logs_in_to_a_secured_broker(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    async with secured_mosquitto(tmp_path, make_pki(tmp_path), password_file(tmp_path)) as broker:
        topic = "home/storm_alert"
        config = storm_config(sim, tmp_path / "data", {"mqtt": {
            "host": broker.host, "port": broker.plain_port, "topic": topic,
            "username": BROKER_USER, "password": PASSWORD}})
        with capture_logs() as logs:
            async with start_gateway(config) as gw, aiomqtt.Client(
                    broker.host, broker.plain_port, username=BROKER_USER, password=PASSWORD) as client:
                await eventually(lambda: gw.site.storm.sources["mqtt"].status == "ok", timeout=15)
                await client.publish(topic, b"true", qos=1)
                await eventually(lambda: storm_active(http, gw))
                health = await _health(http, gw)
        assert PASSWORD not in repr(logs)
        assert PASSWORD not in repr(health)


async def test_a_rate_limited_feed_is_asked_again_no_sooner_than_its_retry_after(
    sim: Simulator, start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession,
) -> None:
    async with start_gateway(storm_config(sim, tmp_path / "data", nws(sim))) as gw:
        nws_state = gw.site.storm.sources["nws"]
        await eventually(lambda: nws_state.status == "ok")
        # polled every 0.1 s; the feed now refuses with Retry-After: 3 (seconds)
        before = (await control(http, sim, "POST", "/alerts/feed",
                                {"mode": "rate_limited", "delay_s": 3}))["requests"]
        await eventually(lambda: nws_state.failures >= 1, timeout=10)
        assert "retry after 3 s" in (nws_state.last_error or "")
        # without the header the backoff (0.2, 0.4, 0.8 s ...) would ask ~4 times in 2 s
        await asyncio.sleep(2.0)  # a window in which no request may come, not a wait for state
        during = (await control(http, sim, "POST", "/alerts/feed",
                                {"mode": "rate_limited", "delay_s": 3}))["requests"]
        assert during - before <= 2, during - before  # the refused one (and one in flight)
        await control(http, sim, "POST", "/alerts/feed", {"mode": "ok"})
        await eventually(lambda: nws_state.status == "ok", timeout=15)
