"""live_status throughput: requests/s through the gateway vs a bare aiohttp handler, same run.

Run: ``.venv/bin/python -m bench.live_status [--quick | --full] [--profile FILE]``

The simulator, the gateway, the bare server and the load generator are separate processes. The
bare handler serves a JSON object of the same size as the gateway's live_status answer. Rounds
alternate (bare, gateway, bare, ...) and the median of each is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import psutil

from bench._common import (
    FIRST_SITE_ID,
    ROOT,
    bench_token,
    helper,
    machine,
    median,
    print_table,
    quiet_logging,
)


async def load(url: str, path: str, token: str, connections: int, *, duration_s: float,
               server_pid: int) -> dict[str, Any]:
    """One load-generator run; adds the server process's CPU share over the run."""
    parts = urlsplit(url)
    server = psutil.Process(server_pid)
    cpu0 = server.cpu_times()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench._loadgen", "--host", parts.hostname or "127.0.0.1",
        "--port", str(parts.port), "--path", path, "--token", token,
        "--connections", str(connections), "--duration-s", str(duration_s),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    cpu1 = server.cpu_times()
    result: dict[str, Any] = orjson.loads(out)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    result["rps"] = result["requests"] / result["elapsed_s"]
    result["server_cpu"] = busy / result["elapsed_s"]
    return result


async def run(rounds: int, duration_s: float, connections: list[int], profile: Path | None) -> None:
    """Measure and print the table."""
    print(f"machine: {machine()}")
    token = bench_token()
    path = f"/api/1/energy_sites/{FIRST_SITE_ID}/live_status"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        tmpdir = Path(tmp)
        async with helper("bench._simproc", "--homes", "1", log_path=tmpdir / "sim.log") as sim:
            (tmpdir / "endpoints.json").write_bytes(orjson.dumps(sim.hello["endpoints"]))
            args = ["--endpoints", str(tmpdir / "endpoints.json"), "--data-dir", str(tmpdir / "data")]
            if profile is not None:
                args += ["--profile", str(profile)]
            async with helper("bench._gwproc", *args, log_path=tmpdir / "gateway.log") as gw:
                await gw.ask("wait_online")
                async with aiohttp.ClientSession() as http, http.get(
                        gw.hello["url"] + path, headers={"Authorization": f"Bearer {token}"}) as resp:
                    raw = await resp.read()
                    assert resp.status == 200, raw  # noqa: S101 - a bench precondition
                (tmpdir / "body.json").write_bytes(raw)
                print(f"live_status answer: {len(raw)} bytes of JSON")
                async with helper("bench._bareproc", "--body", str(tmpdir / "body.json")) as bare:
                    for conns in connections:
                        for server in (bare, gw):  # warm-up
                            await load(server.hello["url"], path, token, conns, duration_s=1.0,
                                       server_pid=server.pid)
                        results: dict[str, list[dict[str, Any]]] = {"bare": [], "gateway": []}
                        if profile is not None:
                            await gw.ask("start")
                        for _ in range(rounds):
                            for name, server in (("bare", bare), ("gateway", gw)):
                                results[name].append(await load(
                                    server.hello["url"], path, token, conns,
                                    duration_s=duration_s, server_pid=server.pid))
                        if profile is not None:
                            await gw.ask("stop")
                        bare_rps = median([r["rps"] for r in results["bare"]])
                        gw_rps = median([r["rps"] for r in results["gateway"]])
                        errors = sum(r["errors"] for rs in results.values() for r in rs)
                        rows.append([conns, bare_rps, median([r["server_cpu"] for r in results["bare"]]),
                                     gw_rps, median([r["server_cpu"] for r in results["gateway"]]),
                                     f"{gw_rps / bare_rps:.2f}x", errors])
    print_table(f"live_status throughput (req/s, median of {rounds} x {duration_s:g} s rounds)",
                ["connections", "bare rps", "bare cpu", "gateway rps", "gateway cpu",
                 "gateway / bare", "errors"], rows)
    print("(cpu = server process CPU in cores over the run; 1.0 = one core saturated)")
    worst = min(float(r[5].rstrip("x")) for r in rows)
    print(f"\ntarget >= 0.6x the bare handler: {worst:.2f}x -> {'PASS' if worst >= 0.6 else 'FAIL'}")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 rounds of 3 s at 8 connections")
    mode.add_argument("--full", action="store_true", help="5 rounds of 10 s at 1, 8 and 32 connections")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a pyinstrument profile of the gateway process here")
    args = parser.parse_args()
    quiet_logging()
    if args.profile is not None:
        args.profile = args.profile.resolve()
    if args.quick:
        asyncio.run(run(3, 3.0, [8], args.profile))
    elif args.full:
        asyncio.run(run(5, 10.0, [1, 8, 32], args.profile))
    else:
        asyncio.run(run(5, 5.0, [8, 32], args.profile))


if __name__ == "__main__":
    main()
