"""Command-line entry of the simulator: start it, print where everything listens, run forever."""

from __future__ import annotations

import asyncio

from simulator.config import SimulatorConfig
from simulator.runtime import Simulator


async def serve(config: SimulatorConfig) -> None:
    """Run the simulator until cancelled, printing one line per device and the control URL.

    Device lines read "home-1001/inverter sunspec modbus-tcp 127.0.0.1:15020 unit 1"; the last
    line reads "control http://127.0.0.1:PORT".
    """
    async with Simulator(config) as sim:
        for ref, ep in sim.endpoints.items():
            print(f"{ref} {ep.kind} modbus-tcp {ep.host}:{ep.port} unit {ep.unit_id}", flush=True)  # noqa: T201
        print(f"control {sim.control_url}", flush=True)  # noqa: T201
        await asyncio.Event().wait()
