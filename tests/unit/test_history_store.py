"""HistoryStore: energy buckets and outages survive in SQLite, without blocking the loop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.history import Bucket, FlowEnergy, Outage, sum_by_entry
from gateway.runtime.storage import Storage, StorageError
from gateway.runtime.storage.history import HistoryStore
from gateway.runtime.storage.schema import SCHEMA_VERSION

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
E1 = FlowEnergy(1, 2, 3, 4, 5, 6, 7)


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[HistoryStore]:
    """The history rows of an open storage at ``path``."""
    async with Storage(path) as storage:
        yield HistoryStore(storage)


async def test_buckets_round_trip_and_add_on_conflict(tmp_path: Path) -> None:
    async with opened(tmp_path / "sub" / "history.db") as store:
        await store.add_buckets(1001, [Bucket(T0, E1), Bucket(T0 + timedelta(minutes=5), E1)])
        await store.add_buckets("1001", [Bucket(T0, E1.scaled(0.5))])
        await store.add_buckets(1002, [Bucket(T0, FlowEnergy(grid_to_home=9))])
        await store.add_buckets(1001, [])
        got = await store.buckets(1001, T0, T0 + timedelta(minutes=10))
        assert got == [
            Bucket(T0, FlowEnergy(1.5, 3, 4.5, 6, 7.5, 9, 10.5)),
            Bucket(T0 + timedelta(minutes=5), E1),
        ]
        assert all(b.start.tzinfo is UTC for b in got)
        # Half-open range: the end is excluded.
        assert len(await store.buckets(1001, T0, T0 + timedelta(minutes=5))) == 1
        assert await store.buckets(1001, T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)) == []
        assert await store.buckets(1002, T0, T0 + timedelta(days=1)) == [
            Bucket(T0, FlowEnergy(grid_to_home=9))
        ]


async def test_store_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    storage = Storage(path)
    await storage.open()
    store = HistoryStore(storage)
    await store.add_buckets(7, [Bucket(T0, E1)])
    assert await store.open_outage(7, T0)
    await storage.close()

    storage = Storage(path)
    await storage.open()
    try:
        store = HistoryStore(storage)
        assert await store.buckets(7, T0, T0 + timedelta(hours=1)) == [Bucket(T0, E1)]
        assert await store.current_outage(7) == Outage(start=T0)
        assert await storage.schema_version() == SCHEMA_VERSION
    finally:
        await storage.close()

    def journal_mode() -> str:
        with sqlite3.connect(path) as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

    assert await asyncio.to_thread(journal_mode) == "wal"


async def test_outages_open_close_and_query(tmp_path: Path) -> None:
    async with opened(tmp_path / "h.db") as store:
        assert await store.close_outage(1, T0) is False
        assert await store.open_outage(1, T0)
        assert await store.open_outage(1, T0 + timedelta(minutes=1)) is False  # already open
        assert await store.open_outage(2, T0)  # other sites are independent
        assert await store.close_outage(1, T0 + timedelta(hours=1))
        assert await store.current_outage(1) is None
        assert await store.current_outage(2) == Outage(start=T0)
        assert await store.open_outage(1, T0 + timedelta(hours=3))

        day = (T0 - timedelta(hours=12), T0 + timedelta(hours=12))
        assert await store.outages(1, *day) == [
            Outage(T0, T0 + timedelta(hours=1)),
            Outage(T0 + timedelta(hours=3)),
        ]
        # Overlap: an outage that started before the range but lasted into it is returned.
        assert await store.outages(1, T0 + timedelta(minutes=30), T0 + timedelta(hours=2)) == [
            Outage(T0, T0 + timedelta(hours=1))
        ]
        assert await store.outages(1, T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == []
        assert await store.outages(2, *day) == [Outage(T0)]


async def test_close_never_ends_an_outage_before_it_started(tmp_path: Path) -> None:
    async with opened(tmp_path / "h.db") as store:
        await store.open_outage(1, T0)
        await store.close_outage(1, T0 - timedelta(seconds=5))
        (outage,) = await store.outages(1, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
        assert outage.end == T0


async def test_bad_inputs_are_rejected(tmp_path: Path) -> None:
    async with opened(tmp_path / "h.db") as store:
        with pytest.raises(ValueError, match="5-minute aligned"):
            await store.add_buckets(1, [Bucket(T0 + timedelta(seconds=1), E1)])
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.open_outage(1, datetime(2024, 1, 1))  # noqa: DTZ001


async def test_closed_store_refuses_work_and_can_reopen(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "h.db")
    store = HistoryStore(storage)
    with pytest.raises(StorageError, match="not open"):
        await store.buckets(1, T0, T0)
    await storage.open()
    await storage.open()  # idempotent
    await storage.close()
    await storage.close()  # idempotent
    with pytest.raises(StorageError, match="not open"):
        await store.add_buckets(1, [Bucket(T0, E1)])
    await storage.open()  # and again
    try:
        await store.add_buckets(1, [Bucket(T0, E1)])
    finally:
        await storage.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with Storage(path):
        pass

    def bump() -> None:
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        conn.close()

    await asyncio.to_thread(bump)
    with pytest.raises(StorageError, match="newer"):
        await Storage(path).open()


async def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    async with opened(tmp_path / "h.db") as store:
        one = FlowEnergy(solar_to_home=1)
        await asyncio.gather(*(store.add_buckets(1, [Bucket(T0, one)]) for _ in range(50)))
        (bucket,) = await store.buckets(1, T0, T0 + timedelta(minutes=5))
        assert bucket.energy.solar_to_home == 50


async def test_energy_by_entry_sums_in_sql_what_the_pure_code_sums(tmp_path: Path) -> None:
    rng = random.Random(9)
    day = T0.replace(hour=0)
    buckets = [
        Bucket(day + timedelta(minutes=5 * i), FlowEnergy(*(rng.uniform(0, 50) for _ in range(7))))
        for i in range(288 * 3)
        if rng.random() > 0.1  # some gaps
    ]
    async with opened(tmp_path / "h.db") as store:
        assert await store.first_bucket_start(1001) is None
        await store.add_buckets(1001, buckets)
        await store.add_buckets(1002, [Bucket(day, FlowEnergy(grid_to_home=1e6))])  # not 1001's
        assert await store.first_bucket_start(1001) == buckets[0].start
        for edges in (
            [day + timedelta(hours=h) for h in range(73)],  # hourly, all of it
            # a fractional first edge, an empty entry and a last edge beyond the data
            [day + timedelta(hours=2, seconds=1.5), day + timedelta(hours=3),
             day + timedelta(hours=3, minutes=1), day + timedelta(days=5)],
            [day - timedelta(days=1), day],  # before the data
            [day],  # no entries at all
        ):
            got = await store.energy_by_entry(1001, edges)
            want = sum_by_entry(buckets, edges)
            assert len(got) == len(want) == len(edges) - 1
            for g, w in zip(got, want, strict=True):
                assert g.values() == pytest.approx(w.values())


async def test_outages_started_stops_at_the_limit(tmp_path: Path) -> None:
    async with opened(tmp_path / "h.db") as store:
        for i in range(5):
            await store.open_outage(1, T0 + timedelta(hours=i))
            await store.close_outage(1, T0 + timedelta(hours=i, minutes=10))
        await store.open_outage(1, T0 + timedelta(hours=9))  # still open
        await store.open_outage(2, T0)
        got = await store.outages_started(1, None, T0 + timedelta(days=1), limit=100)
        assert [o.start for o in got] == [T0 + timedelta(hours=h) for h in (0, 1, 2, 3, 4, 9)]
        assert got[-1].end is None
        assert len(await store.outages_started(1, None, T0 + timedelta(days=1), limit=3)) == 3
        # [start, end): only outages that start inside, not one that started before and lasts
        inside = await store.outages_started(
            1, T0 + timedelta(minutes=5), T0 + timedelta(hours=3), limit=100)
        assert [o.start for o in inside] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


async def test_hourly_totals_serve_any_entry_edges(tmp_path: Path) -> None:
    # Local hours of a +05:30 zone start at :30 UTC; explicit windows start at any second.
    rng = random.Random(3)
    day = T0.replace(hour=0)
    buckets = [Bucket(day + timedelta(minutes=5 * i), FlowEnergy(*(rng.random() for _ in range(7))))
               for i in range(288 * 2)]
    half_hours = [day + timedelta(minutes=30 + 60 * h) for h in range(47)]
    odd = [day + timedelta(seconds=s) for s in (0, 1, 299, 3599, 3600, 3601, 7300, 86400 * 2)]
    async with opened(tmp_path / "h.db") as store:
        await store.add_buckets(1, buckets)
        for edges in (half_hours, odd):
            got = await store.energy_by_entry(1, edges)
            want = sum_by_entry(buckets, edges)
            for g, w in zip(got, want, strict=True):
                assert g.values() == pytest.approx(w.values())
