"""Run one hub replica until stopped: its app on the configured (or overridden) port."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.core.config.hub import HubConfig
from gateway.hub.app import create_hub_app
from gateway.web.server import GatewayRunner


async def serve_hub(config: HubConfig, stop: asyncio.Event, *, port: int | None = None) -> None:
    """Serve the hub until ``stop`` is set (``port`` overrides ``hub.port``: two replicas, one file)."""
    app = create_hub_app(config)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.hub.host, config.hub.port if port is None else port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        print(f"energy-gateway hub serving http://{host}:{bound}", flush=True)  # noqa: T201
        await stop.wait()
    finally:
        await runner.cleanup()
