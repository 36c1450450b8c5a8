"""Memory: the gateway process's RSS at 0, 100 and 1000 devices polled at 1 Hz.

Run: ``.venv/bin/python -m bench.memory [--quick | --full]``

"0 devices" is the gateway process with every module imported and no application (a config needs
at least one device): the baseline each per-device figure is taken against. RSS is read after all
devices are online, a settle period of polling and a ``gc.collect()``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import orjson
import psutil

from bench._common import helper, machine, print_table, quiet_logging


async def rss_at(n: int, settle_s: float, tmpdir: Path) -> tuple[float, float]:
    """(RSS, USS) in MiB of a gateway polling ``n`` simulated devices."""
    if n == 0:
        eps = tmpdir / "endpoints-0.json"
        eps.write_bytes(b"[]")
        async with helper("bench._gwproc", "--endpoints", str(eps), "--data-dir",
                          str(tmpdir / "data-0")) as gw:
            await asyncio.sleep(1.0)
            info = psutil.Process(gw.pid).memory_full_info()
            return info.rss / 2**20, info.uss / 2**20
    async with helper("bench._simproc", "--homes", str(n), "--tick-s", "1.0",
                      "--image-cache-s", "0.5") as sim:
        eps = tmpdir / f"endpoints-{n}.json"
        eps.write_bytes(orjson.dumps(sim.hello["endpoints"]))
        async with helper("bench._gwproc", "--endpoints", str(eps), "--data-dir",
                          str(tmpdir / f"data-{n}"), log_path=tmpdir / f"gateway-{n}.log") as gw:
            await gw.ask("wait_online", timeout_s=600)
            await asyncio.sleep(settle_s)
            await gw.ask("gc")
            info = psutil.Process(gw.pid).memory_full_info()
            return info.rss / 2**20, info.uss / 2**20


async def run(devices: list[int], settle_s: float) -> None:
    """Measure and print the table."""
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        results = {n: await rss_at(n, settle_s, Path(tmp)) for n in devices}
    base_rss = results[devices[0]][0]
    rows = []
    prev: tuple[int, float] | None = None
    for n, (rss, uss) in results.items():
        per = (rss - base_rss) * 1024 / n if n else float("nan")
        marginal = (rss - prev[1]) * 1024 / (n - prev[0]) if prev else float("nan")
        rows.append([n, rss, uss, rss - base_rss, per, marginal])
        prev = (n, rss)
    print_table(f"Gateway memory (MiB; after {settle_s:g} s of 1 Hz polling and gc)", [
        "devices", "RSS", "USS", "RSS over 0-device baseline", "KiB / device (vs baseline)",
        "KiB / device (vs previous row)"], rows)
    worst = max(r[4] for r in rows if r[0])
    print(f"\ntarget < 100 KB per device: {worst:.0f} KiB -> {'PASS' if worst * 1024 < 100_000 else 'FAIL'}")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="0, 100, 1000 devices; 5 s settle")
    mode.add_argument("--full", action="store_true", help="0, 100, 500, 1000, 2000 devices; 60 s settle")
    args = parser.parse_args()
    quiet_logging()
    if args.quick:
        asyncio.run(run([0, 100, 1000], 5.0))
    elif args.full:
        asyncio.run(run([0, 100, 500, 1000, 2000], 60.0))
    else:
        asyncio.run(run([0, 100, 1000], 20.0))


if __name__ == "__main__":
    main()
