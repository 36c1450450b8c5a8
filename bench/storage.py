"""Storage: a command's writes while the worst history query runs, one thread vs a reader.

Run: ``.venv/bin/python -m bench.storage [--days N] [--reps R]``

Seeds a storage with N days of 5-minute buckets (as ``bench.history``), finds the slowest
``energy_by_entry`` among the worst queries an answer may need, then times a command's storage
writes (journal entry, settings, outcome: what ``Site.command`` awaits before and after the
device) R times while that query runs, in two arrangements of the same ``Storage``: history
reads on the writer's own thread (one connection for everything), and on the read-only
connection the storage gives them. The baseline is the same writes with no query running.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import FIRST_SITE_ID, machine, median, percentile, print_table
from gateway.core.history import BUCKET, MAX_ENTRIES, Bucket, FlowEnergy, bucket_start
from gateway.runtime.storage import Storage
from gateway.runtime.storage.history import HistoryStore
from gateway.runtime.storage.sites import SiteStore


async def seed(storage: Storage, days: int) -> datetime:
    """``days`` of 5-minute buckets up to an hour ago; returns the first bucket's start."""
    profile = [FlowEnergy(solar_to_home=40 * max(0.0, 1 - abs(m / 60 - 13) / 6), grid_to_home=15)
               for m in range(0, 24 * 60, 5)]
    now = datetime.now(UTC)
    first = bucket_start(now - timedelta(days=days))
    count = int((bucket_start(now - timedelta(hours=1)) - first) / BUCKET)
    store = HistoryStore(storage)
    for chunk in range(0, count, 20_000):
        starts = [first + i * BUCKET for i in range(chunk, min(chunk + 20_000, count))]
        await store.add_buckets(FIRST_SITE_ID, [
            Bucket(s, profile[(s.hour * 60 + s.minute) // 5]) for s in starts])
    return first


def candidate_edges(first: datetime) -> dict[str, list[datetime]]:
    """Entry edges of the heaviest answers there are (MAX_ENTRIES entries, or all the data)."""
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hourly = [top - timedelta(hours=MAX_ENTRIES - i) for i in range(MAX_ENTRIES + 1)]
    return {
        f"{MAX_ENTRIES} UTC hours": hourly,
        # local hours of a +05:30 zone: every entry is summed from twelve 5-minute rows
        f"{MAX_ENTRIES} +05:30 hours": [e - timedelta(minutes=30) for e in hourly],
        "every day of the data": [first + timedelta(days=d)
                                  for d in range((top - first).days + 2)],
        "lifetime (one entry)": [first, top],
    }


async def command_writes(sites: SiteStore, n: int) -> float:
    """The storage part of one command: journal, settings, outcome (seconds)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    journal_id = await sites.journal(FIRST_SITE_ID, "backup", {"backup_reserve_pct": n % 100}, now)
    await sites.save_settings(FIRST_SITE_ID, {"backup_reserve_pct": n % 100}, now)
    await sites.finish(journal_id, "confirmed", "", now)
    return time.perf_counter() - started


async def during_query(storage: Storage, edges: list[datetime], reps: int) -> dict[str, Any]:
    """Command writes issued while the query runs (the query asked for first, as in a storm)."""
    history, sites = HistoryStore(storage), SiteStore(storage)
    latencies, query_s = [], []
    for n in range(reps):
        started = time.perf_counter()
        query = asyncio.create_task(history.energy_by_entry(FIRST_SITE_ID, edges))
        await asyncio.sleep(0)  # the query is submitted before the command arrives
        latencies.append(await command_writes(sites, n))
        await query
        query_s.append(time.perf_counter() - started)
    return {"cmd_p50": median(latencies) * 1000, "cmd_max": max(latencies) * 1000,
            "cmd_p90": percentile(latencies, 90) * 1000, "query": median(query_s) * 1000}


async def run(days: int, reps: int) -> None:
    """Seed, pick the slowest query, measure both arrangements, print the table."""
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        async with Storage.in_data_dir(Path(tmp)) as storage:
            started = time.perf_counter()
            first = await seed(storage, days)
            print(f"seeded {days} days of 5-minute buckets in {time.perf_counter() - started:.1f} s")
            history = HistoryStore(storage)
            timings = {}
            for label, edges in candidate_edges(first).items():
                began = time.perf_counter()
                await history.energy_by_entry(FIRST_SITE_ID, edges)
                timings[label] = time.perf_counter() - began
                print(f"  {label}: {timings[label] * 1000:.0f} ms")
            worst = max(timings, key=lambda k: timings[k])
            edges = candidate_edges(first)[worst]
            sites = SiteStore(storage)
            idle = [await command_writes(sites, n) for n in range(reps)]
            reader = await during_query(storage, edges, reps)
            try:  # the same storage with every read on the writer's thread
                storage.read = storage.write  # type: ignore[method-assign]
                shared = await during_query(storage, edges, reps)
            finally:
                del storage.read  # the class's own again
    rows = [
        ["no query running (baseline)", "-", median(idle) * 1000, percentile(idle, 90) * 1000,
         max(idle) * 1000],
        ["query on the writer's thread", shared["query"], shared["cmd_p50"], shared["cmd_p90"],
         shared["cmd_max"]],
        ["query on the read-only connection", reader["query"], reader["cmd_p50"],
         reader["cmd_p90"], reader["cmd_max"]],
    ]
    print_table(f"A command's storage writes during the slowest history query ({worst}; "
                f"{days} days, {reps} reps)",
                ["arrangement", "query ms", "cmd p50 ms", "cmd p90 ms", "cmd max ms"], rows)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=430)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.days, args.reps))


if __name__ == "__main__":
    main()
