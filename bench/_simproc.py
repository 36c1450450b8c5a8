"""Bench helper process: N simulated homes, one SunSpec device each, on ephemeral loopback ports.

Prints one JSON line ``{"control_url", "endpoints": [{"host", "port", "unit_id"}], "start_s"}``,
then serves until its stdin closes (or a ``quit`` line arrives). ``requests`` answers
``{"requests": [n, ...]}``: the Modbus requests each device has received, in endpoint order.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from bench._common import raise_fd_limit
from gateway.runtime.logs import configure_logging
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from simulator.devices.sunspec import SunSpecDevice


def _cache_images(ttl_s: float) -> None:
    """Serve each device's register image from a cache at most ``ttl_s`` old.

    The simulator encodes the whole image on every read; at hundreds of devices that costs more
    than the gateway under test. A short cache keeps the protocol real and frees the CPU. A write
    drops the device's entry: a real device reads back what it was just told at once, and a stale
    image would hold every command's read-back until the entry expires (it made a command after
    another on the same device look ~0.5 s slow).
    """
    original = SunSpecDevice.image
    original_action = SunSpecDevice._action
    cache: dict[int, tuple[float, list[int]]] = {}

    def image(self: SunSpecDevice) -> list[int]:
        now = time.monotonic()
        hit = cache.get(id(self))
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = original(self)
        cache[id(self)] = (now, value)
        return value

    async def action(self: SunSpecDevice, *args: Any) -> Any:
        result = await original_action(self, *args)
        if args[-1] is not None:  # set_values: a write
            cache.pop(id(self), None)
        return result

    SunSpecDevice.image = image  # type: ignore[method-assign]
    SunSpecDevice._action = action  # type: ignore[method-assign,assignment]


async def _stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


async def main(homes: int, tick_s: float) -> None:
    """Start the simulator, announce its endpoints, serve until told to stop."""
    config = SimulatorConfig(
        control=ControlConfig(port=0), tick_s=tick_s,
        homes=[HomeConfig(id=f"home-{i}", seed=i, initial_soc_pct=60, devices=[
            SimDeviceConfig(id="inverter", kind="sunspec", port=0, serial_number=f"SIM{i:05d}")])
            for i in range(homes)],
    )
    started = time.perf_counter()
    async with Simulator(config) as sim:
        endpoints = [{"host": e.host, "port": e.port, "unit_id": e.unit_id}
                     for e in sim.endpoints.values()]
        _emit({"control_url": sim.control_url, "endpoints": endpoints,
               "start_s": round(time.perf_counter() - started, 2)})
        lines = await _stdin_lines()
        while True:
            line = (await lines.readline()).strip()
            if not line or line == b"quit":
                break
            if line == b"requests":
                _emit({"requests": [home.device("inverter").stats.requests
                                    for home in sim.homes.values()]})
                continue
            _emit({"error": f"unknown command {line.decode()!r}"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--homes", type=int, default=1)
    parser.add_argument("--tick-s", type=float, default=0.1, help="physics step period (s)")
    parser.add_argument("--image-cache-s", type=float, default=0.0,
                        help="serve register images from a cache this old at most (0 = off)")
    args = parser.parse_args()
    raise_fd_limit()
    # stdout carries the JSON protocol: every log line goes to stderr.
    configure_logging("json", "WARNING")
    if args.image_cache_s > 0:
        _cache_images(args.image_cache_s)
    asyncio.run(main(args.homes, args.tick_s))
