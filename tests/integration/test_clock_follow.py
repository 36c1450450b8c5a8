"""The gateway following the simulator's clock over sockets: history, tariff, speed, a source gone."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from gateway.core.config import ClockSection, Config
from gateway.runtime.clock import ClockSourceError, FollowedClock, InProcessClock, Timebase
from gateway.web.app import create_app
from gateway.web.keys import GATEWAY, SITES
from gateway.web.server import GatewayRunner
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from tests.helpers import SITE_ID, eventually, gateway_config, token
from tests.log_capture import real_logging
from tests.samples import pge_like_sample

BERLIN = ZoneInfo("Europe/Berlin")
SPEED = 240.0


def sim_config(start: datetime, speed: float = SPEED, *, homes: bool = True,
               control_port: int = 0) -> SimulatorConfig:
    return SimulatorConfig(
        control=ControlConfig(port=control_port), start=start, clock_speed=speed, tick_s=0.05,
        homes=[HomeConfig(id="home-1001", initial_soc_pct=60, devices=[
            SimDeviceConfig(id="inverter", kind="sunspec", port=0)])] if homes else [],
    )


def following(config: Config, url: str) -> Config:
    """``config`` with ``gateway.clock`` following the simulator at ``url``."""
    clock = ClockSection(source="simulator", url=url, sync_interval_s=0.2, timeout_s=0.5)
    return config.model_copy(update={"gateway": config.gateway.model_copy(update={"clock": clock})})


@asynccontextmanager
async def serving(config: Config, timebase: Timebase | None = None) -> AsyncIterator[
        tuple[str, web.Application]]:
    app = create_app(config, timebase=timebase)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        site = app[SITES][SITE_ID]
        await eventually(lambda: not site.offline() and site.applied is not None)
        yield f"http://{host}:{port}", app
    finally:
        await runner.cleanup()


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers={"Authorization": f"Bearer {token()}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> None:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token()}"}) as resp:
        assert resp.status in (200, 201), await resp.text()


def gap_s(a: datetime, b: datetime) -> float:
    return abs((a - b).total_seconds())


async def test_history_and_live_status_follow_the_simulated_day(tmp_path: Path) -> None:
    start = datetime(2026, 7, 15, 3, 3, tzinfo=BERLIN)  # a summer night, whatever the real date
    async with Simulator(sim_config(start)) as sim, aiohttp.ClientSession() as http:
        config = following(gateway_config(sim, tmp_path / "data"), sim.control_url)
        async with serving(config) as (url, app):
            gateway = app[GATEWAY]
            assert gap_s(gateway.clock(), sim.clock.now()) < 10  # 10 domain s: < 0.05 s real
            base = f"{url}/api/1/energy_sites/{SITE_ID}"
            live = (await get(http, f"{base}/live_status"))["response"]
            assert gap_s(datetime.fromisoformat(live["timestamp"]), sim.clock.now()) < 30
            # two 5-minute bucket boundaries pass in about 2 real seconds
            await eventually(lambda: sim.clock.now() >= start + timedelta(minutes=8), timeout=15)
            energy = (await get(http, f"{base}/calendar_history?kind=energy&period=day"))
            series = energy["response"]["time_series"]
            # the simulated day, from the hour of its first data to the hour holding now
            assert [e["timestamp"] for e in series] == ["2026-07-15T03:00:00+02:00"]
            hour = series[0]
            # ~7 simulated minutes of a night home: its base load, from the grid or the battery
            assert 10 < hour["total_home_usage"] < 200, hour
            health = await get(http, f"{url}/health")
            assert health["status"] == "ok"
            clock = health["clock"]
            assert (clock["source"], clock["state"], clock["speed"]) == ("simulator", "ok", SPEED)
            assert clock["url"] == sim.control_url
            assert clock["now"].startswith("2026-07-15T01:")  # UTC


@pytest.mark.parametrize(("hour", "charging"), [(3, True), (18, False)])
async def test_the_tariff_period_is_the_simulated_one(tmp_path: Path, hour: int,
                                                      charging: bool) -> None:
    start = datetime(2026, 7, 15, hour, 0, tzinfo=BERLIN)
    async with Simulator(sim_config(start)) as sim, aiohttp.ClientSession() as http:
        config = following(gateway_config(sim, tmp_path / "data"), sim.control_url)
        async with serving(config) as (url, _):
            base = f"{url}/api/1/energy_sites/{SITE_ID}"
            await post(http, f"{base}/time_of_use_settings",
                       {"tou_settings": {"tariff_content_v2": pge_like_sample()}})
            await post(http, f"{base}/operation", {"default_real_mode": "autonomous"})
            command = sim.homes["home-1001"].truth().battery_command_w
            assert command is not None
            assert (command < 0) is charging  # off-peak at 3:00 charges; on-peak at 18:00 not
            # The command's device-side revert timer (60 s) runs in simulated time: the gateway
            # refreshes it in simulated time too, so it never lapses at 240x.
            until = sim.clock.now() + timedelta(minutes=3)

            def held() -> bool:
                assert sim.homes["home-1001"].truth().battery_command_w is not None, "lapsed"
                return sim.clock.now() >= until

            await eventually(held, timeout=10)


async def test_a_speed_change_reaches_the_gateway(tmp_path: Path) -> None:
    start = datetime(2026, 7, 15, 12, 0, tzinfo=BERLIN)
    async with Simulator(sim_config(start, speed=1.0)) as sim, aiohttp.ClientSession() as http:
        config = following(gateway_config(sim, tmp_path / "data"), sim.control_url)
        async with serving(config) as (url, app):
            timebase = app[GATEWAY].timebase
            assert timebase.speed == 1.0
            with real_logging("json", "INFO") as logs:
                async with http.post(f"{sim.control_url}/clock", json={"speed": 600}) as resp:
                    assert resp.status == 200
                await eventually(lambda: timebase.speed == 600.0)
            events = [json.loads(line) for line in logs.getvalue().splitlines()]
            assert any(e["event"] == "clock.speed_changed" and e["speed"] == 600.0
                       and e["was"] == 1.0 for e in events), events
            # after the next read the gateway's time is the simulator's again: a few ms of a
            # round trip at 600x are a few domain seconds
            synced = timebase.status().last_sync_age_s
            await eventually(lambda: (timebase.status().last_sync_age_s or 0) < (synced or 0))
            assert gap_s(timebase.now(), sim.clock.now()) < 10
            # and the history buckets of the next simulated minutes fill at that pace
            later = sim.clock.now() + timedelta(minutes=11)
            await eventually(lambda: sim.clock.now() >= later, timeout=5)
            health = await get(http, f"{url}/health")
            assert health["clock"]["speed"] == 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_source_that_goes_away_is_logged_and_shown_and_time_runs_on(
    tmp_path: Path,
) -> None:
    start = datetime(2026, 7, 15, 12, 0, tzinfo=BERLIN)
    port = free_port()
    async with Simulator(sim_config(start, speed=1.0)) as homes, aiohttp.ClientSession() as http:
        source = Simulator(sim_config(start, speed=60.0, homes=False, control_port=port))
        await source.start()
        try:
            config = following(gateway_config(homes, tmp_path / "data"), source.control_url)
            async with serving(config) as (url, app):
                timebase = app[GATEWAY].timebase
                with real_logging("json", "INFO") as logs:
                    await source.stop()
                    health = await eventually(lambda: get(http, f"{url}/health"),
                                              lambda h: h["status"] == "degraded")
                    assert health["clock"]["state"] == "unreachable"
                    assert "ClientConnectorError" in health["clock"]["error"]
                    assert health["sites"][str(SITE_ID)]["devices"]["inverter"]["connected"]
                    # domain time runs on at the last speed, and the API still answers
                    before = timebase.now()
                    await eventually(lambda: gap_s(timebase.now(), before) >= 30)
                    live = await get(http, f"{url}/api/1/energy_sites/{SITE_ID}/live_status")
                    assert gap_s(datetime.fromisoformat(live["response"]["timestamp"]),
                                 timebase.now()) < 30
                    # the source comes back 30 s behind (a restarted simulator): followed
                    # again, and the gateway's time stands still until the source passes it
                    source = Simulator(sim_config(timebase.now() - timedelta(seconds=30),
                                                  speed=60.0, homes=False, control_port=port))
                    await source.start()
                    seen = [timebase.now()]

                    def back_in_step() -> bool:
                        seen.append(timebase.now())
                        return (timebase.status().state == "ok"
                                and gap_s(timebase.now(), source.clock.now()) < 5)

                    await eventually(back_in_step)
                    assert seen == sorted(seen)  # never backwards
                    health = await get(http, f"{url}/health")
                    assert (health["status"], health["clock"]["error"]) == ("ok", None)
                events = [json.loads(line) for line in logs.getvalue().splitlines()]
                gone = [e for e in events if e["event"] == "clock.source_unreachable"]
                assert len(gone) == 1, gone  # once per change of state, not once per read
                assert gone[0]["url"] == source.control_url
                assert any(e["event"] == "clock.source_back" for e in events)
                assert any(e["event"] == "clock.source_behind" and e["behind_s"] > 20
                           for e in events), events
        finally:
            await source.stop()


async def test_a_source_that_never_answers_stops_the_start() -> None:
    timebase = FollowedClock(f"http://127.0.0.1:{free_port()}", sync_interval_s=0.1,
                             timeout_s=0.2, start_timeout_s=0.3)
    with pytest.raises(ClockSourceError, match=r"did not answer within 0.3 s \(Client"):
        await timebase.start()


async def test_the_demo_hands_its_simulator_clock_in_process(tmp_path: Path) -> None:
    start = datetime(2026, 7, 15, 12, 0, tzinfo=BERLIN)
    async with Simulator(sim_config(start, speed=1.0)) as sim, aiohttp.ClientSession() as http:
        clock = sim.clock
        timebase = InProcessClock(clock.now, lambda: clock.speed)
        async with serving(gateway_config(sim, tmp_path / "data"), timebase) as (url, app):
            assert app[GATEWAY].timebase is timebase
            async with http.post(f"{sim.control_url}/clock", json={"speed": 300}) as resp:
                assert resp.status == 200
            assert timebase.speed == 300.0  # at once: the same object
            health = await get(http, f"{url}/health")
            assert (health["clock"]["source"], health["clock"]["speed"]) == ("in_process", 300.0)
            live = await get(http, f"{url}/api/1/energy_sites/{SITE_ID}/live_status")
            assert gap_s(datetime.fromisoformat(live["response"]["timestamp"]),
                         sim.clock.now()) < 60


@pytest.mark.parametrize(("status", "body", "error"), [
    (500, b'{"now": "2026-07-15T12:00:00+00:00", "speed": 1}', "GET /clock answered HTTP 500"),
    (200, b"<html>", "GET /clock did not answer JSON"),
    (200, b'{"now": "2026-07-15T12:00:00", "speed": 1}', "'now' has no UTC offset"),
    (200, b'{"now": "2026-07-15T12:00:00Z", "speed": -5}', "speed -5 is outside 0..100000"),
    (200, b"[" + b"1," * 5000 + b"1]", "answered more than 4096 bytes"),
])
async def test_an_answer_that_cannot_be_used_counts_as_unreachable(
    status: int, body: bytes, error: str,
) -> None:
    # A clock source the simulator cannot play: one that answers, but wrongly.
    answers = [(200, b'{"now": "2026-07-15T12:00:00+00:00", "speed": 60}')]

    async def clock(_: web.Request) -> web.Response:
        code, text = answers[-1]
        return web.Response(status=code, body=text, content_type="application/json")

    app = web.Application()
    app.router.add_get("/clock", clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    timebase = FollowedClock(f"http://{host}:{port}", sync_interval_s=0.05, timeout_s=0.5)
    try:
        await timebase.start()
        assert timebase.status().state == "ok"
        before = timebase.now()
        answers.append((status, body))
        status_now = await eventually(timebase.status, lambda s: s.state == "unreachable")
        assert status_now.error is not None
        assert error in status_now.error
        assert timebase.degraded
        assert timebase.now() > before  # runs on at the last good speed
    finally:
        await timebase.stop()
        await runner.cleanup()
