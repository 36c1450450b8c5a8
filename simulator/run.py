"""Command-line entry of the simulator: start it, print where everything listens, run forever."""

from __future__ import annotations

import asyncio

from simulator.config import SimulatorConfig
from simulator.runtime import Simulator


async def serve(config: SimulatorConfig) -> None:
    """Run the simulator until cancelled, printing one line per device and the control URL.

    Device lines read "home-1001/inverter sunspec modbus-tcp 127.0.0.1:15020 unit 1" (the brand
    twins alike: "home-2001/inverter sungrow_sh modbus-tcp ..."), or "home-1001/gx victron_gx mqtt
    127.0.0.1:1883", "home-1001/battery mqtt_battery mqtt 127.0.0.1:1883" for MQTT faces, the
    latter being the broker it connects to; "home-1001/charger ocpp_charger ocpp1.6
    ws://127.0.0.1:9000", the central system it dials; the last line reads
    "control http://127.0.0.1:PORT".
    """
    async with Simulator(config) as sim:
        for ref, ep in sim.endpoints.items():
            if ep.kind in ("sunspec", "sungrow_sh", "huawei_sun2000"):
                line = f"{ref} {ep.kind} modbus-tcp {ep.host}:{ep.port} unit {ep.unit_id}"
            elif ep.kind == "ocpp_charger":  # a client: the central system it dials
                line = f"{ref} {ep.kind} ocpp1.6 ws://{ep.host}:{ep.port}"
            else:
                line = f"{ref} {ep.kind} mqtt {ep.host}:{ep.port}"
            print(line, flush=True)  # noqa: T201
        print(f"control {sim.control_url}", flush=True)  # noqa: T201
        await asyncio.Event().wait()
