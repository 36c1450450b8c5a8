"""Verified command latency: POST backup through the gateway vs a bare pymodbus write + read-back.

Run: ``.venv/bin/python -m bench.command_latency [--quick | --full] [--profile FILE]``

The simulator runs in its own process, the gateway in another, the clients here. Gateway commands
and both baselines run in interleaved blocks in the same run, so machine noise hits them alike.
Transactions per command are counted by the simulated device itself (its Modbus request counter):
once for the SunSpec driver alone (``apply``, and ``read`` for a poll), once for the device behind
the gateway during the gateway's timed blocks (its polls included).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pymodbus.client import AsyncModbusTcpClient

from bench._common import (
    FIRST_SITE_ID,
    Helper,
    bench_token,
    helper,
    machine,
    percentile,
    print_table,
    quiet_logging,
)
from drivers.base import Setpoints
from drivers.sunspec.codec import ModelBlock, decode_model, model_def
from drivers.sunspec.driver import SunSpecDriver, SunSpecOptions
from drivers.transport import Transports

BLOCK = 100  # commands per interleaved block
GATEWAY = "gateway: POST backup (verified)"


class BareDevice:
    """A bare pymodbus client on the simulated device, with the addresses the gateway uses."""

    def __init__(self, host: str, port: int, unit_id: int) -> None:
        self.host, self.port, self.unit_id = host, port, unit_id
        self.client = AsyncModbusTcpClient(host, port=port, timeout=2.0, retries=0, reconnect_delay=0)
        self.controls: tuple[int, int] = (0, 0)  # one read spanning models 123 and 124
        self.read_124: tuple[int, int] = (0, 0)
        self.reserve_address = 0
        self._block124: ModelBlock | None = None

    async def setup(self) -> None:
        """Discover the map the way the gateway does, then keep only raw addresses."""
        transports = Transports()
        driver = SunSpecDriver("probe", SunSpecOptions(host=self.host, port=self.port,
                                                       unit_id=self.unit_id), transports)
        try:
            await driver.connect()
            assert driver.map is not None  # noqa: S101 - connect() sets it
            first, last = driver.map.find(123), driver.map.find(124)
            assert first is not None  # noqa: S101 - the simulator serves both
            assert last is not None  # noqa: S101 - the simulator serves both
            self.controls = (first.address, last.address + last.length + 2 - first.address)
            requests = last.requests()
            self.read_124 = (requests[0].address, requests[0].count)
            regs: list[int] = []
            for request in requests:
                regs += await self._read(request.address, request.count)
            block = decode_model(model_def(124), last.address, regs)
            self._block124 = block
            self.reserve_address = block.encode_raw("MinRsvPct", 0).address
        finally:
            await driver.close()
            await transports.close()
        await self.client.connect()

    def reserve_raw(self, pct: int) -> int:
        assert self._block124 is not None  # noqa: S101 - set by setup()
        return self._block124.raw_for("MinRsvPct", pct)

    async def _read(self, address: int, count: int) -> list[int]:
        if not self.client.connected:
            await self.client.connect()
        response = await self.client.read_holding_registers(address, count=count, device_id=self.unit_id)
        if response.isError():
            raise RuntimeError(f"read {address} failed: {response}")
        return list(response.registers)

    async def write_read(self, pct: int) -> None:
        """The issue's baseline: write MinRsvPct, read model 124 back, check the value."""
        raw = self.reserve_raw(pct)
        response = await self.client.write_register(self.reserve_address, raw, device_id=self.unit_id)
        if response.isError():
            raise RuntimeError(f"write failed: {response}")
        address, count = self.read_124
        regs = await self._read(address, count)
        if raw not in regs:
            raise RuntimeError("read-back does not hold the written value")

    async def same_transactions(self, pct: int) -> None:
        """What the gateway's driver does per command: write MinRsvPct, read 123+124 in one FC3."""
        await self.client.write_register(self.reserve_address, self.reserve_raw(pct),
                                         device_id=self.unit_id)
        await self._read(*self.controls)

    async def earlier_transactions(self, pct: int) -> None:
        """What the driver did per command before it kept 123+124 from the last reading: a
        pre-read of 123+124, the write, the read-back (3 transactions)."""
        await self._read(*self.controls)
        await self.same_transactions(pct)

    def close(self) -> None:
        self.client.close()


async def driver_transactions(sim: Helper, twin: dict[str, Any], index: int,
                              commands: int = 200) -> tuple[float, float]:
    """The SunSpec driver alone on an idle device: device requests per ``apply``, per ``read``."""

    async def requests() -> int:
        return int((await sim.ask("requests"))["requests"][index])

    transports = Transports()
    driver = SunSpecDriver("count", SunSpecOptions(host=twin["host"], port=twin["port"],
                                                   unit_id=twin["unit_id"]), transports)
    try:
        await driver.connect()
        await driver.read()  # a poll first, as the gateway's commands always follow one
        before = await requests()
        for i in range(commands):
            await driver.apply(Setpoints(reserve_pct=20 + i % 60, grid_charging=False))
        per_command = (await requests() - before) / commands
        before = await requests()
        for _ in range(commands // 10):
            await driver.read()
        per_poll = (await requests() - before) / (commands // 10)
    finally:
        await driver.close()
        await transports.close()
    return per_command, per_poll


async def run(n: int, profile: Path | None) -> None:
    """Measure ``n`` commands of each kind and print the table."""
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-cmd-") as tmp:
        tmpdir = Path(tmp)
        # Two identical simulated inverters: the gateway manages the first; the bare pymodbus
        # baselines write the second's reserve, which the gateway would otherwise see as drift
        # and set back while the baseline reads it (it re-applies on the next reading).
        async with helper("bench._simproc", "--homes", "2", log_path=tmpdir / "sim.log") as sim:
            endpoint, twin = sim.hello["endpoints"][:2]
            (tmpdir / "endpoints.json").write_bytes(orjson.dumps([endpoint]))
            args = ["--endpoints", str(tmpdir / "endpoints.json"), "--data-dir", str(tmpdir / "data")]
            if profile is not None:
                args += ["--profile", str(profile)]
            async with helper("bench._gwproc", *args, log_path=tmpdir / "gateway.log") as gw:
                await gw.ask("wait_online")
                bare = BareDevice(twin["host"], twin["port"], twin["unit_id"])
                await bare.setup()
                url = f"{gw.hello['url']}/api/1/energy_sites/{FIRST_SITE_ID}/backup"
                headers = {"Authorization": f"Bearer {bench_token()}"}
                async with aiohttp.ClientSession(headers=headers) as http:

                    async def command(pct: int) -> None:
                        async with http.post(url, json={"backup_reserve_percent": pct}) as resp:
                            body = await resp.read()
                            if resp.status != 200:
                                raise RuntimeError(f"{resp.status}: {body!r}")

                    kinds = {"baseline: pymodbus write + read": bare.write_read,
                             "pymodbus, the driver's transactions (write, read 123+124)":
                                 bare.same_transactions,
                             "pymodbus, the driver's earlier 3 (pre-read, write, read)":
                                 bare.earlier_transactions,
                             GATEWAY: command}
                    times: dict[str, list[float]] = {k: [] for k in kinds}
                    for fn in kinds.values():  # warm-up: connections, caches, JIT-free but lazy paths
                        for i in range(50):
                            await fn(20 + i % 60)
                    await gw.ask("start")
                    i = 0
                    gateway_requests = 0
                    while i < n:
                        for name, fn in kinds.items():
                            before = (await sim.ask("requests"))["requests"][0]
                            for j in range(BLOCK):
                                pct = 20 + (i + j) % 60
                                t0 = time.perf_counter()
                                await fn(pct)
                                times[name].append((time.perf_counter() - t0) * 1000)
                            if name == GATEWAY:
                                gateway_requests += (await sim.ask("requests"))["requests"][0] - before
                        i += BLOCK
                    window = await gw.ask("stop")
                bare.close()
                per_command, per_poll = await driver_transactions(sim, twin, 1)
    base = percentile(times["baseline: pymodbus write + read"], 50)
    rows = []
    for name, values in times.items():
        p50 = percentile(values, 50)
        rows.append([name, len(values), p50, percentile(values, 95), percentile(values, 99),
                     f"{p50 / base:.2f}x"])
    print_table("Verified command latency (ms)", ["what", "n", "p50", "p95", "p99", "p50 / baseline"],
                rows)
    gw_p50 = percentile(times[GATEWAY], 50)
    print_table("Modbus transactions (counted by the simulated device)", ["what", "per command"], [
        ["baseline: pymodbus write + read", 2],
        ["SunSpec driver apply() (backup reserve change)", f"{per_command:.2f}"],
        ["SunSpec driver read() (one poll, for comparison)", f"{per_poll:.2f}"],
        ["device behind the gateway, per POST backup (its polls included)",
         f"{gateway_requests / len(times[GATEWAY]):.2f}"],
    ])
    print(f"\ntarget p50 <= 3x baseline: {gw_p50 / base:.2f}x -> {'PASS' if gw_p50 <= 3 * base else 'FAIL'}")
    print(f"target p50 < 5 ms: {gw_p50:.2f} ms -> {'PASS' if gw_p50 < 5 else 'FAIL'}")
    if profile is not None:
        print(f"gateway profile (whole window, all kinds interleaved): {window.get('profile')}")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1,000 commands of each kind")
    mode.add_argument("--full", action="store_true", help="10,000 commands of each kind")
    parser.add_argument("-n", type=int, default=None, help="commands of each kind (default 3,000)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a pyinstrument profile of the gateway process here")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 10_000 if args.full else 3000)
    quiet_logging()
    asyncio.run(run(n, args.profile.resolve() if args.profile else None))


if __name__ == "__main__":
    main()
