"""Scale: N simulated SunSpec devices polled at 1 Hz by one gateway process.

Run: ``.venv/bin/python -m bench.scale [--quick | --full] [--devices 100,250] [--profile DIR]``

Per N: the simulator runs in its own process (one home per device), the gateway in another. After
every device is online and a settle period, a window measures the gateway process's CPU (cores,
from /proc via psutil), poll age (now minus the telemetry timestamp, sampled at random instants
for every device), polls done vs due and missed polls, and the gateway's RSS.

Baseline: the idle CPU of the same gateway process shape is ~0, so CPU is reported as cores and
as cores per 100 devices; the ratio column is against one core (the 500-device target).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench._common import helper, machine, print_table, quiet_logging


async def measure(n: int, *, window_s: float, settle_s: float, tmpdir: Path, profile: Path | None,
                  image_cache_s: float) -> dict[str, Any]:
    """One scale point."""
    sim_args = ["--homes", str(n), "--tick-s", "1.0", "--image-cache-s", str(image_cache_s)]
    async with helper("bench._simproc", *sim_args, log_path=tmpdir / f"sim-{n}.log") as sim:
        eps = tmpdir / f"endpoints-{n}.json"
        eps.write_bytes(orjson.dumps(sim.hello["endpoints"]))
        args = ["--endpoints", str(eps), "--data-dir", str(tmpdir / f"data-{n}")]
        if profile is not None:
            args += ["--profile", str((profile / f"scale-{n}.txt").resolve())]
        async with helper("bench._gwproc", *args, log_path=tmpdir / f"gateway-{n}.log") as gw:
            online = await gw.ask("wait_online", timeout_s=600)
            await asyncio.sleep(settle_s)
            gw_proc, sim_proc = psutil.Process(gw.pid), psutil.Process(sim.pid)
            await gw.ask("start")
            g0, s0 = gw_proc.cpu_times(), sim_proc.cpu_times()
            await asyncio.sleep(window_s)
            g1, s1 = gw_proc.cpu_times(), sim_proc.cpu_times()
            rss = gw_proc.memory_info().rss
            window = await gw.ask("stop")
    elapsed = window["elapsed_s"]
    return {
        "n": n,
        "online_s": online["online_s"],
        "gw_cpu": ((g1.user - g0.user) + (g1.system - g0.system)) / window_s,
        "sim_cpu": ((s1.user - s0.user) + (s1.system - s0.system)) / window_s,
        "age_p50": window["age_p50_s"],
        "age_p99": window["age_p99_s"],
        "polls_ratio": window["polls"] / (n * elapsed),
        "missed": window["missed_polls"],
        "rss_mb": rss / 2**20,
    }


async def run(devices: list[int], window_s: float, settle_s: float, profile: Path | None,
              image_cache_s: float, *, keep: Path | None = None) -> None:
    """Measure every scale point and print the table."""
    print(f"machine: {machine()}")
    print(f"window {window_s:g} s after {settle_s:g} s settle; poll interval 1 s; "
          f"simulator image cache {image_cache_s:g} s")
    rows = []
    knee = None
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in devices:
            r = await measure(n, window_s=window_s, settle_s=settle_s, tmpdir=keep or Path(tmp),
                              profile=profile,
                                image_cache_s=image_cache_s)
            ok = r["gw_cpu"] <= 1.0 and r["age_p99"] < 2.0 and r["missed"] == 0 and r["polls_ratio"] > 0.97
            if not ok and knee is None:
                knee = n
            rows.append([n, r["online_s"], r["gw_cpu"], r["gw_cpu"] / n * 100, f"{r['gw_cpu']:.2f}x",
                         r["sim_cpu"], r["age_p50"], r["age_p99"], f"{r['polls_ratio']:.3f}",
                         r["missed"], r["rss_mb"], "yes" if ok else "NO"])
            print(f"  N={n}: gateway {r['gw_cpu']:.2f} cores, poll age p99 {r['age_p99']:.2f} s, "
                  f"missed {r['missed']}", flush=True)
    print_table("Scale at 1 Hz polling", [
        "devices", "online in s", "gateway CPU (cores)", "cores / 100 dev", "vs 1 core",
        "simulator CPU", "poll age p50 s", "poll age p99 s", "polls done / due", "missed polls",
        "gateway RSS MB", "within targets"], rows)
    print("\ntargets: 500 devices within one core, poll age p99 < 2 s, no missed polls")
    print(f"knee: {'beyond ' + str(devices[-1]) if knee is None else f'first miss at {knee} devices'}")


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="100, 250, 500 devices; 10 s windows")
    mode.add_argument("--full", action="store_true", help="100 .. 1500 devices; 60 s windows")
    parser.add_argument("--devices", default=None, help="comma-separated device counts")
    parser.add_argument("--window-s", type=float, default=None)
    parser.add_argument("--image-cache-s", type=float, default=0.5,
                        help="simulator register-image cache (frees CPU for the gateway; 0 = off)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="directory for pyinstrument profiles of the gateway, one per N")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the processes' logs and data in this directory")
    args = parser.parse_args()
    quiet_logging()
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.quick:
        devices, window, settle = [100, 250, 500], 10.0, 3.0
    elif args.full:
        devices, window, settle = [100, 250, 500, 750, 1000, 1500], 60.0, 10.0
    else:
        devices, window, settle = [100, 250, 500, 1000], 15.0, 5.0
    if args.devices:
        devices = [int(x) for x in args.devices.split(",")]
    if args.keep is not None:
        args.keep = args.keep.resolve()
        args.keep.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(devices, args.window_s or window, settle, args.profile, args.image_cache_s,
                    keep=args.keep))


if __name__ == "__main__":
    main()
