"""/health: fields that never contradict each other, through connect, drop and reconnect, day or night."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from gateway.core.config import Config, DeviceConfig, GatewaySection, SiteConfig
from gateway.web.app import create_app
from simulator import HomeConfig, Simulator, SimulatorConfig, VictronGxConfig
from tests.helpers import SECRET, SITE_ID, eventually, gateway_config
from tests.integration.conftest import GatewayFactory


def consistent(status: str, device: dict[str, Any]) -> None:
    """The rules docs/api.md (/health) states, on one device entry."""
    quality, connected = device["quality"], device["connected"]
    assert quality in {"fresh", "stale", "offline"}, device
    if quality == "fresh":
        assert connected, device
    if quality == "offline":
        assert not connected, device
    assert connected == (device["failures"] == 0 and quality != "offline"), device
    assert (device["last_error"] is None) == (device["failures"] == 0), device
    if device["data_age_s"] is None:
        assert quality == "offline", device
    assert (status == "ok") == (quality == "fresh"), (status, device)


@asynccontextmanager
async def serve(config: Config) -> AsyncIterator[str]:
    """A gateway for ``config`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Health:
    """Samples /health for one device, checking every sample."""

    def __init__(self, http: aiohttp.ClientSession, url: str, site_id: int, device: str) -> None:
        self.http, self.url, self.site_id, self.device = http, url, site_id, device
        self.samples: list[dict[str, Any]] = []

    async def __call__(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/health") as resp:
            assert resp.status == 200
            body = await resp.json()
        entry: dict[str, Any] = body["sites"][str(self.site_id)]["devices"][self.device]
        consistent(body["status"], entry)
        self.samples.append(entry)
        return entry


async def test_health_fields_agree_through_connect_drop_and_reconnect(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    # Issue 9 defect 8: /health showed quality "fresh" with connected false. Two polls (+0.5 s)
    # of 0.5 s leave a 1.5 s window after the last good read, so the first failed poll lands in it.
    config = gateway_config(sim, tmp_path / "data", poll_interval_s=0.5, stale_after_s=30)
    device = sim.homes["home-1001"].device("inverter")
    async with start_gateway(config, wait_online=False) as gateway, aiohttp.ClientSession() as http:
        health = Health(http, gateway.url, SITE_ID, "inverter")
        await eventually(health, lambda e: e["connected"] and e["quality"] == "fresh")  # connect
        await device.apply_faults(refuse_connections=True)
        await device.drop_connections()
        lost = await eventually(health, lambda e: not e["connected"])  # drop
        assert lost["quality"] == "stale"  # the last values are served, but not as fresh ones
        assert lost["failures"] >= 1
        await eventually(health, lambda e: e["failures"] >= 2, timeout=15)  # still away
        await device.apply_faults(refuse_connections=False)
        back = await eventually(health, lambda e: e["connected"] and e["quality"] == "fresh",
                                timeout=15)  # reconnect  # fmt: skip
        assert back["last_error"] is None
    seen = [(s["quality"], s["connected"]) for s in health.samples]
    assert ("stale", False) in seen
    assert seen[-1] == ("fresh", True)


async def test_a_quiet_night_keeps_a_victron_site_fresh(tmp_path: Path) -> None:
    # Issue 9 defect 8 as the user saw it: a GX at night went "stale" every stale_after_s and the
    # gateway reconnected it again and again. Physics at 60x: 4 s here are 4 simulated minutes.
    night = datetime(2026, 1, 15, 2, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    sim_config = SimulatorConfig(
        start=night, clock_speed=60, tick_s=0.05,
        homes=[HomeConfig(id="home-1002", time_zone="Europe/Amsterdam", base_load_w=0,
                          devices=[VictronGxConfig(id="gx", kind="victron_gx")])],
    )  # fmt: skip
    async with Simulator(sim_config) as sim:
        ep = sim.endpoint("home-1002/gx")
        device = DeviceConfig.model_validate({
            "name": "gx", "type": "victron_gx", "poll_interval_s": 0.5, "options": {
                "host": ep.host, "port": ep.port, "keepalive_s": 0.3, "probe_timeout_s": 1.5,
                "connect_timeout_s": 2.0, "capacity_wh": 13500},
        })  # fmt: skip
        config = Config(
            gateway=GatewaySection(port=0, data_dir=tmp_path / "data", jwt_secret=SECRET,
                                   reconcile_interval_s=0.5),
            sites=[SiteConfig(energy_site_id=1002, name="Lake Cabin", time_zone="Europe/Amsterdam",
                              devices=[device])],
        )  # fmt: skip
        async with serve(config) as url, aiohttp.ClientSession() as http:
            health = Health(http, url, 1002, "gx")
            first = await eventually(health, lambda e: e["connected"] and e["quality"] == "fresh")
            loop = asyncio.get_running_loop()
            started = loop.time()
            entry = first
            while loop.time() - started < 4.0:
                entry = await health()
                assert (entry["quality"], entry["connected"], entry["failures"]) == ("fresh", True, 0)
                await asyncio.sleep(0.1)
            assert entry["polls"] > first["polls"] + 5
        physics = sim.homes["home-1002"].physics
        assert (physics.at - night).total_seconds() > 180
        assert physics.truth().solar_w == 0
