"""History: the cost of the worst history queries against a one-day query, in the same run.

Run: ``.venv/bin/python -m bench.history [--days N] [--reps R]``

The simulator and the gateway are separate processes (``bench._simproc``, ``bench._gwproc``);
the gateway's storage is seeded first with N days of 5-minute buckets for site 1001 through
the real ``HistoryStore``. Each query is asked R times in a row (the concurrent row: R rounds
of three at once) while a prober asks ``GET /status`` every 20 ms and the gateway samples
its devices' poll age. The table gives the time to the last body byte, the body size, the worst
``/status`` latency, the worst poll age and the gateway's RSS after the row, with HA's one-day
backfill query as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import psutil

from bench._common import (
    FIRST_SITE_ID,
    Helper,
    bench_token,
    helper,
    machine,
    print_table,
    quiet_logging,
)
from gateway.core.history import BUCKET, MAX_ENTRIES, Bucket, FlowEnergy, bucket_start
from gateway.runtime.storage import Storage
from gateway.runtime.storage.history import HistoryStore

SITE_TZ = ZoneInfo("Europe/Berlin")  # bench_config's zone
# The request (filed 2026-11-29), its end kept ahead of the seeded data.
WINDOW_1970 = (f"start_date=1970-01-01T00:00:00Z"
               f"&end_date={datetime.now(UTC).year + 1}-11-29T00:00:00Z")


async def seed(data_dir: Path, days: int) -> None:
    """``days`` of 5-minute buckets up to an hour ago, with a daily solar profile."""
    profile = []
    for minute in range(0, 24 * 60, 5):
        sun = max(0.0, 1.0 - abs(minute / 60 - 13) / 6)
        profile.append(FlowEnergy(solar_to_home=40 * sun, solar_to_battery=60 * sun,
                                  solar_to_grid=90 * sun, battery_to_home=0 if sun else 25,
                                  grid_to_home=0 if sun else 15))
    now = datetime.now(UTC)
    first = bucket_start(now - timedelta(days=days))
    count = int((bucket_start(now - timedelta(hours=1)) - first) / BUCKET)
    async with Storage.in_data_dir(data_dir) as storage:
        store = HistoryStore(storage)
        for chunk in range(0, count, 20_000):
            starts = [first + i * BUCKET for i in range(chunk, min(chunk + 20_000, count))]
            await store.add_buckets(FIRST_SITE_ID, [
                Bucket(s, profile[(s.hour * 60 + s.minute) // 5]) for s in starts])


def queries() -> list[tuple[str, str, int]]:
    """(label, path relative to the site, how many at once)."""
    yesterday = datetime.now(SITE_TZ).date() - timedelta(days=1)
    end = datetime.combine(yesterday, datetime.max.time().replace(microsecond=0), SITE_TZ)
    backfill = f"end_date={end.isoformat()}".replace("+", "%2B")
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    largest = (f"time_zone=UTC&start_date={top - timedelta(hours=MAX_ENTRIES):%Y-%m-%dT%H:%M:%SZ}"
               f"&end_date={top:%Y-%m-%dT%H:%M:%SZ}")
    energy = "calendar_history?kind=energy&period="
    return [
        ("one day (HA backfill), the baseline", f"{energy}day&{backfill}", 1),
        ("today (HA poll)", f"{energy}day", 1),
        *[(f"1970 window, period={p}", f"{energy}{p}&{WINDOW_1970}", 1)
          for p in ("day", "week", "month", "year", "lifetime")],
        ("widest window (0002..9998), period=day",
         f"{energy}day&start_date=0002-01-01T00:00:00Z&end_date=9998-12-31T23:59:59Z", 1),
        (f"largest answer allowed ({MAX_ENTRIES} hours)", f"{energy}day&{largest}", 1),
        ("backup, 1970 window", f"calendar_history?kind=backup&period=day&{WINDOW_1970}", 1),
        ("3 at once: 1970 window, period=day", f"{energy}day&{WINDOW_1970}", 3),
        ("3 at once: 1970 window, period=month", f"{energy}month&{WINDOW_1970}", 3),
    ]


async def measure(http: aiohttp.ClientSession, gw: Helper, path: str, at_once: int,
                  reps: int) -> dict[str, Any]:
    """R rounds of ``at_once`` concurrent requests, with /status probed all along."""
    url = gw.hello["url"]
    headers = {"Authorization": f"Bearer {bench_token()}"}
    done = asyncio.Event()
    status_s: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            async with http.get(f"{url}/status") as resp:
                await resp.read()
            status_s.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    async def one() -> tuple[int, int, float]:
        started = time.perf_counter()
        async with http.get(f"{url}/api/1/energy_sites/{FIRST_SITE_ID}/{path}",
                            headers=headers) as resp:
            body = await resp.read()
        return resp.status, len(body), time.perf_counter() - started

    await gw.ask("start")
    prober = asyncio.create_task(probe())
    results = []
    try:
        for _ in range(reps):
            results += await asyncio.gather(*(one() for _ in range(at_once)))
    finally:
        done.set()
        await prober
    polls = await gw.ask("stop")
    return {
        "status": "/".join(sorted({str(s) for s, _, _ in results})),
        "bytes": max(n for _, n, _ in results),
        "ms_p50": statistics.median(t for _, _, t in results) * 1000,
        "ms_max": max(t for _, _, t in results) * 1000,
        "status_max_ms": max(status_s, default=float("nan")) * 1000,
        "poll_age_max_s": float("nan") if polls["age_max_s"] is None else polls["age_max_s"],
        "missed_polls": polls["missed_polls"],
        "rss_mib": psutil.Process(gw.pid).memory_info().rss / 2**20,
    }


async def run(days: int, reps: int) -> None:
    """Seed, start simulator and gateway, measure every query, print the table."""
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        await seed(data, days)
        print(f"seeded {days} days of 5-minute buckets in {time.perf_counter() - started:.1f} s")
        async with helper("bench._simproc", "--homes", "1") as sim:
            eps = Path(tmp) / "endpoints.json"
            eps.write_bytes(orjson.dumps(sim.hello["endpoints"]))
            async with helper("bench._gwproc", "--endpoints", str(eps), "--data-dir", str(data),
                              log_path=Path(tmp) / "gateway.log") as gw:
                gw.hello["pid"] = gw.pid
                await gw.ask("wait_online")
                timeout = aiohttp.ClientTimeout(total=600)
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    rows = []
                    baseline = float("nan")
                    for label, path, at_once in queries():
                        r = await measure(http, gw, path, at_once, reps)
                        if not rows:
                            baseline = r["ms_p50"]
                        rows.append([label, r["status"], r["bytes"], r["ms_p50"], r["ms_max"],
                                     r["ms_p50"] / baseline, r["status_max_ms"],
                                     r["poll_age_max_s"], r["missed_polls"], r["rss_mib"]])
    print_table(f"History queries ({days} days of data, {reps} rounds each, polls at 1 Hz)", [
        "query", "status", "body bytes", "ms p50", "ms max", "x one day", "/status max ms",
        "poll age max s", "missed polls", "gateway RSS MiB"], rows)


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=400, help="days of history to seed")
    parser.add_argument("--reps", type=int, default=5, help="rounds of each query")
    args = parser.parse_args()
    quiet_logging()
    asyncio.run(run(args.days, args.reps))


if __name__ == "__main__":
    main()
