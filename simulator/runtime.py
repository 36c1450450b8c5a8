"""The Simulator: homes on one clock, their devices on Modbus TCP, the control API, the ticker."""

from __future__ import annotations

import asyncio
import contextlib
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from types import TracebackType

import structlog
from aiohttp import web

from simulator.clock import SimClock
from simulator.config import SimulatorConfig
from simulator.control import create_control_app
from simulator.home import SimHome

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a simulated device is reached: host, bound port, unit id, and its kind.

    kind "sunspec": Modbus TCP host/port/unit. "victron_gx": the GX's own MQTT broker (unit_id 0).
    "mqtt_battery": the external broker the battery connects to (unit_id 0). "ocpp_charger": the
    central system the charger dials (unit_id 0).
    """

    host: str
    port: int
    unit_id: int
    kind: str


def _load_zones(keys: Iterable[str]) -> dict[str, tzinfo]:
    # Reads tz files: call it in a worker thread, never on the event loop.
    return {key: zoneinfo.ZoneInfo(key) for key in keys}


class Simulator:
    """Simulated homes, their devices and the control API, all on loopback sockets.

    Use as `async with Simulator(config) as sim:`; after start, `endpoints` and `control_url`
    hold the bound addresses (ports 0 in the config become ephemeral ports).
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = SimClock(config.start or datetime.now(UTC), config.clock_speed)
        self.homes: dict[str, SimHome] = {h.id: SimHome(h, self.clock) for h in config.homes}
        self.endpoints: dict[str, Endpoint] = {}
        self.control_url = ""
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started: list[SimHome] = []

    def endpoint(self, ref: str) -> Endpoint:
        """Endpoint of device `ref` ("home-id/device-id"); KeyError if unknown or not started."""
        return self.endpoints[ref]

    async def start(self) -> None:
        """Bind every device and the control API, then start the ticker (if tick_s > 0)."""
        zones = await asyncio.to_thread(
            _load_zones, {h.config.time_zone for h in self.homes.values()}
        )
        for home in self.homes.values():
            home.set_time_zone(zones[home.config.time_zone])
        try:
            for home in self.homes.values():
                for device in home.devices.values():
                    await device.start()
                    self.endpoints[f"{home.id}/{device.id}"] = Endpoint(
                        device.host, device.port, device.unit_id, device.kind
                    )
            runner = web.AppRunner(create_control_app(self), access_log=None)
            await runner.setup()
            self._runner = runner
            control = self.config.control
            site = web.TCPSite(runner, control.host, control.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.control_url = f"http://{host}:{port}"
            if self.config.tick_s > 0:
                self._ticker = asyncio.create_task(self._tick(), name="simulator-ticker")
        except BaseException:
            await self.stop()
            raise
        log.info("simulator started", endpoints=len(self.endpoints), control=self.control_url)

    async def stop(self) -> None:
        """Stop the ticker, the control API and every device (safe to call twice)."""
        if self._ticker is not None:
            ticker, self._ticker = self._ticker, None
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for home in self.homes.values():
            for device in home.devices.values():
                await device.stop()
        self.endpoints.clear()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            for home in self.homes.values():
                try:
                    home.sync_to_clock()
                except Exception:
                    # One home's bug must not freeze every other home's physics.
                    log.exception("physics step failed", home=home.id)
