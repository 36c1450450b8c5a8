"""Bench helper process: one home per family (SunSpec, Sungrow, Huawei), two twins each (driver, baseline).

Prints ``{"control_url", "devices": {"<family>/<role>": {"host", "port", "unit_id", "home"}}}``,
then serves until stdin closes. ``--huawei-delay-s`` is the Huawei twin's deliberate answer delay.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from gateway.runtime.logs import configure_logging
from simulator import (
    HomeConfig,
    HuaweiSun2000Config,
    SimDeviceConfig,
    Simulator,
    SimulatorConfig,
    SungrowShConfig,
)
from simulator.config import ControlConfig, DeviceConfig


def _devices(family: str, huawei_delay_s: float, sungrow_delay_s: float) -> list[DeviceConfig]:
    if family == "sunspec":
        return [SimDeviceConfig(id=r, kind="sunspec") for r in ("driver", "bare")]
    if family == "sungrow_sh_rt":
        return [SungrowShConfig(id=r, kind="sungrow_sh", answer_delay_s=sungrow_delay_s)
                for r in ("driver", "bare")]
    return [HuaweiSun2000Config(id=r, kind="huawei_sun2000", settle_s=1.0, answer_delay_s=huawei_delay_s)
            for r in ("driver", "bare")]


async def main(huawei_delay_s: float, sungrow_delay_s: float) -> None:
    """Start the twins, announce them, serve until stdin closes."""
    families = ("sunspec", "sungrow_sh_rt", "huawei_sun2000")
    config = SimulatorConfig(
        control=ControlConfig(port=0), tick_s=0.1,
        homes=[HomeConfig(id=f, devices=_devices(f, huawei_delay_s, sungrow_delay_s)) for f in families],
    )  # fmt: skip
    async with Simulator(config) as sim:
        devices: dict[str, Any] = {}
        for ref, ep in sim.endpoints.items():
            home, role = ref.split("/")
            devices[f"{home}/{role}"] = {"host": ep.host, "port": ep.port, "unit_id": ep.unit_id,
                                          "home": home, "device": role}
        sys.stdout.buffer.write(orjson.dumps({"control_url": sim.control_url, "devices": devices}) + b"\n")
        sys.stdout.flush()
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while (await reader.readline()).strip() not in (b"", b"quit"):
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--huawei-delay-s", type=float, default=0.03)
    parser.add_argument("--sungrow-delay-s", type=float, default=0.0)
    args = parser.parse_args()
    configure_logging("json", "WARNING")  # stdout carries the JSON protocol
    asyncio.run(main(args.huawei_delay_s, args.sungrow_delay_s))
