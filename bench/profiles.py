"""Per family: verified command latency, poll cost and transactions, against a bare pymodbus write + read.

Run: ``.venv/bin/python -m bench.profiles [--quick] [-n N] [--huawei-delay-s 0.03]``

The twins run in their own process (``bench._brandsim``), two per family: the driver under test
talks to one, a bare pymodbus client to the other (a Huawei serves one client at a time). For each
family the driver's ``apply()`` of a backup reserve (what the command pipeline calls, without
HTTP) and its ``read()`` (one poll) are timed in blocks interleaved with the baseline: a bare
pymodbus FC6 write of the reserve register plus an FC3 read of it. Transactions are counted on
the device side (the twin's request counter through the simulator's control API), not by the
driver. The Huawei twin answers every request after a deliberate delay (``--huawei-delay-s``,
30 ms by default, what real SDongles take): its figures show that delay, per transaction.
Then a gateway process (``bench._gwproc``, one site per family, polls every 2 s) answers
``POST backup`` for each family, timed against the same baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pymodbus.client import AsyncModbusTcpClient

from bench._common import FIRST_SITE_ID, bench_token, helper, machine, percentile, print_table, quiet_logging
from drivers.base import Driver, Setpoints
from drivers.registry import DRIVERS
from drivers.sunspec.driver import SunSpecDriver
from drivers.sunspec.options import SunSpecOptions
from drivers.transport import ModbusPool, MqttPool, Transports

BLOCK = 20


@dataclass(frozen=True)
class Family:
    """How the bench drives one family: driver options and the baseline's reserve register."""

    kind: str
    options: dict[str, Any]
    reserve_address: int | None  # None: found through the SunSpec driver's map
    raw_per_pct: int = 1


FAMILIES = {
    "sunspec": Family("sunspec", {}, None),
    "sungrow_sh_rt": Family("profile", {"profile": "sungrow_sh_rt"}, 13099),
    "huawei_sun2000": Family("profile", {"profile": "huawei_sun2000"}, 47102, raw_per_pct=10),
}


class Bare:
    """A bare pymodbus client: write the reserve register, read it back, check it."""

    def __init__(self, ep: dict[str, Any], address: int, raw_per_pct: int) -> None:
        self.client = AsyncModbusTcpClient(ep["host"], port=ep["port"], timeout=3.0, retries=0,
                                           reconnect_delay=0)  # fmt: skip
        self.unit, self.address, self.raw_per_pct = ep["unit_id"], address, raw_per_pct

    async def connect(self, settle_s: float) -> None:
        await self.client.connect()
        await asyncio.sleep(settle_s)  # a Huawei ignores requests right after a connect

    async def write_read(self, pct: int) -> None:
        raw = pct * self.raw_per_pct
        response = await self.client.write_register(self.address, raw, device_id=self.unit)
        if response.isError():
            raise RuntimeError(f"write failed: {response}")
        back = await self.client.read_holding_registers(self.address, count=1, device_id=self.unit)
        if back.isError() or back.registers[0] != raw:
            raise RuntimeError(f"read-back of {raw} at {self.address} failed: {back}")


async def requests(http: aiohttp.ClientSession, control: str, ep: dict[str, Any]) -> int:
    async with http.get(f"{control}/homes/{ep['home']}/devices/{ep['device']}/stats") as resp:
        return int((await resp.json())["requests"])


async def timed(fn: Callable[[int], Awaitable[None]], n: int, start: int, out: list[float]) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        await fn(start + i)
        out.append((time.perf_counter() - t0) * 1000)


async def bench_family(name: str, fam: Family, devices: dict[str, Any], control: str, n: int) -> list[Any]:
    """The rows of one family."""
    ep, bare_ep = devices[f"{name}/driver"], devices[f"{name}/bare"]
    transports = Transports(modbus=ModbusPool(timeout_s=3.0), mqtt=MqttPool())
    cls = DRIVERS[fam.kind]
    options = cls.options_model.model_validate(
        {**fam.options, "host": ep["host"], "port": ep["port"], "unit_id": ep["unit_id"],
         "timeout_s": 3.0})  # fmt: skip
    driver: Driver = cls(name, options, transports)
    try:
        await driver.connect()
        bare = Bare(bare_ep, await _reserve_address(name, fam, bare_ep), fam.raw_per_pct)
        await bare.connect(1.1 if name == "huawei_sun2000" else 0.0)
        held = await driver.read_back()

        async def command(i: int) -> None:
            await driver.apply(Setpoints(reserve_pct=20 + i % 60, grid_charging=held.grid_charging,
                                         export_limit_w=held.export_limit_w))  # fmt: skip

        async def poll(_: int) -> None:
            await driver.read()

        async def baseline(i: int) -> None:
            await bare.write_read(20 + i % 60)

        times: dict[str, list[float]] = {"baseline": [], "command": [], "poll": []}
        counts = {"command": 0, "poll": 0}
        for fn in (baseline, command, poll):
            await timed(fn, 5, 0, [])  # warm-up
        async with aiohttp.ClientSession() as http:
            done = 0
            while done < n:
                await timed(baseline, BLOCK, done, times["baseline"])
                await poll(0)  # the driver's cache holds the current state, as after a poll
                before = await requests(http, control, ep)
                await timed(command, BLOCK, done, times["command"])
                counts["command"] += await requests(http, control, ep) - before
                before = await requests(http, control, ep)
                await timed(poll, BLOCK, done, times["poll"])
                counts["poll"] += await requests(http, control, ep) - before
                done += BLOCK
        bare.client.close()
    finally:
        await driver.close()
        await transports.close()
    base = percentile(times["baseline"], 50)
    cmd, pol = percentile(times["command"], 50), percentile(times["poll"], 50)
    return [name, len(times["command"]), base, cmd, percentile(times["command"], 95),
            f"{cmd / base:.2f}x", f"{counts['command'] / len(times['command']):.2f}", pol,
            f"{counts['poll'] / len(times['poll']):.2f}"]  # fmt: skip


async def bench_gateway(devices: dict[str, Any], control: str, tmp: Path, n: int) -> list[Any]:
    """``POST backup`` through a gateway process, one site per family, against the baseline."""
    endpoints = []
    for name, fam in FAMILIES.items():
        ep = devices[f"{name}/driver"]
        endpoints.append({"host": ep["host"], "port": ep["port"], "unit_id": ep["unit_id"],
                          "type": fam.kind, "options": dict(fam.options)})  # fmt: skip
    (tmp / "endpoints.json").write_bytes(orjson.dumps(endpoints))
    args = ["--endpoints", str(tmp / "endpoints.json"), "--data-dir", str(tmp / "data"),
            "--poll-s", "2", "--log-level", "WARNING"]  # fmt: skip
    rows = []
    async with helper("bench._gwproc", *args, log_path=tmp / "gateway.log") as gw:
        await gw.ask("wait_online")
        headers = {"Authorization": f"Bearer {bench_token()}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for i, (name, fam) in enumerate(FAMILIES.items()):
                bare_ep = devices[f"{name}/bare"]
                bare = Bare(bare_ep, await _reserve_address(name, fam, bare_ep), fam.raw_per_pct)
                await bare.connect(1.1 if name == "huawei_sun2000" else 0.0)
                url = f"{gw.hello['url']}/api/1/energy_sites/{FIRST_SITE_ID + i}/backup"

                async def command(pct: int, url: str = url) -> None:
                    async with http.post(url, json={"backup_reserve_percent": 20 + pct % 60}) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{resp.status}: {body!r}")

                async def baseline(pct: int, bare: Bare = bare) -> None:
                    await bare.write_read(20 + pct % 60)

                times: dict[str, list[float]] = {"baseline": [], "command": []}
                done = 0
                while done < n:
                    await timed(baseline, BLOCK, done, times["baseline"])
                    await timed(command, BLOCK, done, times["command"])
                    done += BLOCK
                bare.client.close()
                base, cmd = percentile(times["baseline"], 50), percentile(times["command"], 50)
                rows.append([name, n, base, cmd, percentile(times["command"], 95), f"{cmd / base:.2f}x"])
    return rows


async def _reserve_address(name: str, fam: Family, ep: dict[str, Any]) -> int:
    if fam.reserve_address is not None:
        return fam.reserve_address
    transports = Transports(modbus=ModbusPool(timeout_s=3.0), mqtt=MqttPool())
    driver = SunSpecDriver(name, SunSpecOptions(host=ep["host"], port=ep["port"], unit_id=ep["unit_id"]),
                           transports)  # fmt: skip
    try:
        await driver.connect()
        assert driver.map is not None  # noqa: S101
        location = driver.map.find(124)
        assert location is not None  # noqa: S101
        return location.address + 7  # MinRsvPct (ID, L, then point 5), SF 0 here
    finally:
        await driver.close()
        await transports.close()


async def run(n: int, huawei_delay_s: float) -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-profiles-") as tmp:
        async with helper("bench._brandsim", "--huawei-delay-s", str(huawei_delay_s),
                          log_path=Path(tmp) / "sim.log") as sim:  # fmt: skip
            rows = [await bench_family(name, fam, sim.hello["devices"], sim.hello["control_url"], n)
                    for name, fam in FAMILIES.items()]  # fmt: skip
            http_rows = await bench_gateway(sim.hello["devices"], sim.hello["control_url"], Path(tmp), n)
    print_table(
        f"Backup reserve command and poll per family (ms; the Huawei twin answers each request "
        f"after {huawei_delay_s * 1000:g} ms)",
        ["family", "n", "baseline p50", "command p50", "command p95", "command / baseline",
         "transactions per command", "poll p50", "transactions per poll"],
        rows,
    )  # fmt: skip
    print_table(
        "POST backup through the gateway per family (ms, verified on the device)",
        ["family", "n", "baseline p50", "POST backup p50", "POST backup p95", "p50 / baseline"],
        http_rows,
    )
    print("\nbaseline: bare pymodbus FC6 write of the reserve register + FC3 read of it (2 transactions)")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 commands per family")
    parser.add_argument("-n", type=int, default=None, help="commands per family (default 300)")
    parser.add_argument("--huawei-delay-s", type=float, default=0.03)
    args = parser.parse_args()
    n = args.n or (100 if args.quick else 300)
    quiet_logging()
    asyncio.run(run(n, args.huawei_delay_s))


if __name__ == "__main__":
    main()
