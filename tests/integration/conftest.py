"""Integration fixtures: the simulator on free loopback ports and the gateway wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.core.config import Config
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.site import Site
from gateway.web.app import create_app
from gateway.web.keys import SITES
from gateway.web.server import GatewayRunner
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from tests.helpers import SITE_ID, eventually, gateway_config, token


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    """One simulated home (site 1001's twin) with a SunSpec hybrid inverter on a free port."""
    config = SimulatorConfig(
        control=ControlConfig(port=0),
        tick_s=0.05,
        homes=[HomeConfig(id="home-1001", initial_soc_pct=60, devices=[
            SimDeviceConfig(id="inverter", kind="sunspec", port=0, serial_number="SIM1001")])],
    )
    async with Simulator(config) as simulator:
        yield simulator


@dataclass
class RunningGateway:
    """A gateway serving on a free loopback port."""

    url: str
    app: web.Application
    config: Config

    @property
    def site(self) -> Site:
        return self.app[SITES][SITE_ID]


GatewayFactory = Callable[..., AbstractAsyncContextManager[RunningGateway]]


@pytest.fixture
def start_gateway(sim: Simulator, tmp_path: Path) -> GatewayFactory:
    """Start (and stop) a gateway against ``sim``; can be entered again to test a restart."""

    @asynccontextmanager
    async def _start(
        config: Config | None = None, *, clock: Clock = utc_now, wait_online: bool = True,
    ) -> AsyncIterator[RunningGateway]:
        cfg = config or gateway_config(sim, tmp_path / "data")
        app = create_app(cfg, clock=clock)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        try:
            host, port = runner.addresses[0][:2]
            running = RunningGateway(f"http://{host}:{port}", app, cfg)
            if wait_online:
                await eventually(lambda: not running.site.offline())
                # and the first reconciliation has put the desired settings on the device
                await eventually(lambda: running.site.applied is not None)
            yield running
        finally:
            await runner.cleanup()

    return _start


@pytest_asyncio.fixture
async def gateway(start_gateway: GatewayFactory) -> AsyncIterator[RunningGateway]:
    """A running gateway with site 1001 online."""
    async with start_gateway() as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def auth() -> dict[str, str]:
    """Headers with a token carrying both scopes for every site."""
    return {"Authorization": f"Bearer {token()}"}
