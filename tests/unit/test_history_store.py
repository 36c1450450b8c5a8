"""HistoryStore: energy buckets and outages survive in SQLite, without blocking the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.history import Bucket, FlowEnergy, Outage
from gateway.history_store import SCHEMA_VERSION, HistoryStore, HistoryStoreError

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
E1 = FlowEnergy(1, 2, 3, 4, 5, 6, 7)


async def test_buckets_round_trip_and_add_on_conflict(tmp_path: Path) -> None:
    async with HistoryStore(tmp_path / "sub" / "history.db") as store:
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
    store = HistoryStore(path)
    await store.open()
    await store.add_buckets(7, [Bucket(T0, E1)])
    assert await store.open_outage(7, T0)
    await store.close()

    store = HistoryStore(path)
    await store.open()
    try:
        assert await store.buckets(7, T0, T0 + timedelta(hours=1)) == [Bucket(T0, E1)]
        assert await store.current_outage(7) == Outage(start=T0)
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()

    def journal_mode() -> str:
        with sqlite3.connect(path) as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

    assert await asyncio.to_thread(journal_mode) == "wal"


async def test_outages_open_close_and_query(tmp_path: Path) -> None:
    async with HistoryStore(tmp_path / "h.db") as store:
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
    async with HistoryStore(tmp_path / "h.db") as store:
        await store.open_outage(1, T0)
        await store.close_outage(1, T0 - timedelta(seconds=5))
        (outage,) = await store.outages(1, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
        assert outage.end == T0


async def test_bad_inputs_are_rejected(tmp_path: Path) -> None:
    async with HistoryStore(tmp_path / "h.db") as store:
        with pytest.raises(ValueError, match="5-minute aligned"):
            await store.add_buckets(1, [Bucket(T0 + timedelta(seconds=1), E1)])
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.open_outage(1, datetime(2024, 1, 1))  # noqa: DTZ001


async def test_closed_store_refuses_work_and_can_reopen(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    with pytest.raises(HistoryStoreError, match="not open"):
        await store.buckets(1, T0, T0)
    await store.open()
    await store.open()  # idempotent
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(HistoryStoreError, match="not open"):
        await store.add_buckets(1, [Bucket(T0, E1)])


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    async with HistoryStore(path):
        pass

    def bump() -> None:
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        conn.close()

    await asyncio.to_thread(bump)
    with pytest.raises(HistoryStoreError, match="newer"):
        await HistoryStore(path).open()


async def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    async with HistoryStore(tmp_path / "h.db") as store:
        one = FlowEnergy(solar_to_home=1)
        await asyncio.gather(*(store.add_buckets(1, [Bucket(T0, one)]) for _ in range(50)))
        (bucket,) = await store.buckets(1, T0, T0 + timedelta(minutes=5))
        assert bucket.energy.solar_to_home == 50
