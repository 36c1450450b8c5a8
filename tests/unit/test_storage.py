"""The one storage: a fresh start, a restart, migration from the two-file layout (nothing lost),
a newer database refused, the first-start time, and writes that never wait for history reads."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.history import Bucket, FlowEnergy, Outage, sum_by_entry
from gateway.runtime.storage import DB_NAME, Storage, StorageError
from gateway.runtime.storage.history import HistoryStore
from gateway.runtime.storage.schema import MIGRATIONS, SCHEMA_VERSION
from gateway.runtime.storage.sites import SiteStore
from gateway.runtime.storage.tokens import TokenRegistry
from tests.legacy_layout import (
    OLD_HISTORY_MIGRATIONS,
    T0,
    OldRows,
    dump,
    old_rows,
    write_old_gateway_db,
    write_old_history_db,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
E1 = FlowEnergy(1, 2, 3, 4, 5, 6, 7)
BUCKET_SPAN = timedelta(minutes=5)
_FLOWS = ("solar_to_home, solar_to_battery, solar_to_grid, battery_to_home, battery_to_grid, "
          "grid_to_home, grid_to_battery")


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _tables(path: Path) -> set[str]:
    return {r[0] for r in dump(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


async def test_a_fresh_start_creates_one_file_at_the_current_schema(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with Storage.in_data_dir(data) as storage:
        assert storage.migrated == list(range(1, SCHEMA_VERSION + 1))
        assert storage.taken_in is None
        assert await storage.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert await storage.first_started_at() is None  # no gateway has started on it yet
    path = data / DB_NAME
    assert await asyncio.to_thread(_tables, path) >= {
        "schema_version", "site_settings", "command_journal", "device_identity", "issued_tokens",
        "energy_5min", "energy_1h", "outages", "meta"}
    assert await asyncio.to_thread(dump, path, "PRAGMA journal_mode") == [("wal",)]
    assert await asyncio.to_thread(_names, data) == [DB_NAME]  # one file, no history file


async def test_a_restart_migrates_nothing_again_and_keeps_everything(tmp_path: Path) -> None:
    async with Storage.in_data_dir(tmp_path) as storage:
        first = await storage.note_start(NOW)
        await SiteStore(storage).save_settings(1001, {"backup_reserve_pct": 30}, NOW)
        await HistoryStore(storage).add_buckets(1001, [Bucket(T0, E1)])
    async with Storage.in_data_dir(tmp_path) as storage:
        assert storage.migrated == []
        assert storage.taken_in is None
        assert await SiteStore(storage).load_settings(1001) == {"backup_reserve_pct": 30}
        assert await HistoryStore(storage).buckets(1001, T0, T0 + BUCKET_SPAN) == [Bucket(T0, E1)]
        assert await storage.note_start(NOW + timedelta(days=9)) == first == NOW
        assert await storage.first_started_at() == NOW


async def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    async with Storage(path):
        pass

    def bump() -> None:
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        db.close()

    await asyncio.to_thread(bump)
    storage = Storage(path)
    with pytest.raises(StorageError) as refused:
        await storage.open()
    message = str(refused.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this gateway's ({SCHEMA_VERSION})" \
        in message
    assert "newer energy-gateway" in message
    with pytest.raises(StorageError, match="not open"):  # and it is not half open
        await storage.schema_version()
    assert await asyncio.to_thread(dump, path, "SELECT version FROM schema_version") \
        == [(SCHEMA_VERSION + 1,)]  # left as it was


def _new_rows(path: Path) -> OldRows:
    return OldRows(
        settings=dump(path, "SELECT * FROM site_settings"),
        journal=dump(path, "SELECT * FROM command_journal"),
        identities=dump(path, "SELECT * FROM device_identity"),
        # the columns the old layout had (a later migration added env, 'live' for these)
        tokens=dump(path, "SELECT jti, sub, scopes, sites, plan, issued_at, expires_at, "
                          "revoked_at FROM issued_tokens"),
        buckets=dump(path, f"SELECT site_id, start, {_FLOWS} FROM energy_5min"),  # noqa: S608
        hours=dump(path, f"SELECT site_id, hour, {_FLOWS} FROM energy_1h"),  # noqa: S608
        outages=dump(path, "SELECT site_id, started_at, ended_at FROM outages"),
    )


@pytest.mark.parametrize(("history_version", "crashed"), [(1, False), (2, False), (2, True)])
async def test_the_two_file_layout_is_migrated_into_one_file_and_nothing_is_lost(
    tmp_path: Path, history_version: int, crashed: bool
) -> None:
    data, twin = tmp_path / "data", tmp_path / "twin"
    # the same old files twice: one to migrate, one to read what they held (reading a crashed
    # file's WAL would fold it in and spoil the crash)
    for where in (data, twin):
        await asyncio.to_thread(write_old_gateway_db, where / DB_NAME)
    await asyncio.to_thread(write_old_history_db, data / "history.sqlite3", history_version,
                            crashed=crashed)
    await asyncio.to_thread(write_old_history_db, twin / "history.sqlite3", history_version)
    old = await asyncio.to_thread(old_rows, twin / DB_NAME, twin / "history.sqlite3")
    assert (len(old.buckets) > 600, len(old.outages), len(old.journal)) == (True, 4, 4)

    async with Storage.in_data_dir(data) as storage:
        # from the old gateway.sqlite3's version 2 to the current one
        assert storage.migrated == list(range(3, SCHEMA_VERSION + 1))
        assert storage.taken_in is not None
        assert (storage.taken_in.buckets, storage.taken_in.outages) == (len(old.buckets), 4)
        assert storage.taken_in.renamed_to == data / "history.sqlite3.migrated"
        # every row, through the query classes the gateway uses
        sites, history, registry = SiteStore(storage), HistoryStore(storage), TokenRegistry(storage)
        assert await sites.load_settings(1002) == {"backup_reserve_pct": 12}
        journal = await sites.commands(1001)
        assert [(e["status"], e["changes"]) for e in journal] == [
            ("pending", {"backup_reserve_pct": 43}), ("kept", {"backup_reserve_pct": 42}),
            ("rejected", {"backup_reserve_pct": 41}), ("confirmed", {"backup_reserve_pct": 40})]
        assert set(await sites.load_identities(1001)) == {"inverter"}
        assert await registry.revoked_jtis(T0.timestamp()) == {"jti-revoked"}
        assert [t.jti for t in await registry.unexpired(T0.timestamp())] \
            == ["jti-kept", "jti-revoked"]
        assert await history.current_outage(1001) == Outage(start=T0 + timedelta(hours=29))
        assert await history.current_outage(1002) is None
        day = [T0 + timedelta(hours=h) for h in range(31)]
        got = await history.energy_by_entry(1001, day)
        stored = [Bucket(datetime.fromtimestamp(r[1], UTC), FlowEnergy(*r[2:]))
                  for r in old.buckets if r[0] == "1001"]
        for g, w in zip(got, sum_by_entry(stored, day), strict=True):
            assert g.values() == pytest.approx(w.values())
        # a pending command of the old gateway is still pending: the Gateway closes it at start
        assert await sites.close_interrupted(NOW) == 1

    new = await asyncio.to_thread(_new_rows, data / DB_NAME)
    assert new.settings == old.settings
    assert new.journal[:3] == old.journal[:3]  # the fourth was closed as interrupted just now
    assert new.journal[3][:5] == old.journal[3][:5]
    assert new.identities == old.identities
    assert new.tokens == old.tokens
    assert new.buckets == old.buckets
    assert len(new.hours) == len(old.hours)
    for n, o in zip(new.hours, old.hours, strict=True):
        assert n[:2] == o[:2]
        assert n[2:] == pytest.approx(o[2:])
    assert new.outages == old.outages
    # the old history file is kept, renamed, whole
    assert await asyncio.to_thread(_names, data) == [DB_NAME, "history.sqlite3.migrated"]
    kept = data / "history.sqlite3.migrated"
    assert await asyncio.to_thread(dump, kept, "SELECT count(*) FROM energy_5min") \
        == [(len(old.buckets),)]


async def test_a_restart_after_the_migration_takes_nothing_in_twice(tmp_path: Path) -> None:
    await asyncio.to_thread(write_old_gateway_db, tmp_path / DB_NAME)
    await asyncio.to_thread(write_old_history_db, tmp_path / "history.sqlite3", 2)
    async with Storage.in_data_dir(tmp_path) as storage:
        before = await HistoryStore(storage).energy_by_entry(1001, [T0, T0 + timedelta(days=2)])
    # a crash between the copy and the rename leaves the old file where it was
    await asyncio.to_thread(shutil.copy, tmp_path / "history.sqlite3.migrated",
                            tmp_path / "history.sqlite3")
    async with Storage.in_data_dir(tmp_path) as storage:
        assert storage.migrated == []
        assert storage.taken_in is not None
        assert storage.taken_in.buckets == 0  # recognised: renamed, not added again
        after = await HistoryStore(storage).energy_by_entry(1001, [T0, T0 + timedelta(days=2)])
    assert after == before
    assert await asyncio.to_thread(_names, tmp_path) == [
        DB_NAME, "history.sqlite3.migrated", "history.sqlite3.migrated.1"]
    async with Storage.in_data_dir(tmp_path) as storage:  # and then: nothing to do at all
        assert (storage.migrated, storage.taken_in) == ([], None)


async def test_an_old_history_file_alone_is_taken_in(tmp_path: Path) -> None:
    await asyncio.to_thread(write_old_history_db, tmp_path / "history.sqlite3", 1)
    async with Storage.in_data_dir(tmp_path) as storage:
        assert storage.migrated == list(range(1, SCHEMA_VERSION + 1))
        assert storage.taken_in is not None
        assert await HistoryStore(storage).current_outage(1001) is not None


async def test_an_unknown_history_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    old = tmp_path / "history.sqlite3"
    await asyncio.to_thread(write_old_history_db, old, 2)

    def bump() -> None:
        db = sqlite3.connect(old)
        with db:
            db.execute("UPDATE schema_version SET version = 3")
        db.close()

    await asyncio.to_thread(bump)
    with pytest.raises(StorageError, match=r"history schema version 3, which this gateway does "
                                           r"not know .* move it out of gateway.data_dir"):
        await Storage.in_data_dir(tmp_path).open()
    assert await asyncio.to_thread(old.exists)


async def test_an_empty_history_file_is_put_aside(tmp_path: Path) -> None:
    await asyncio.to_thread((tmp_path / "history.sqlite3").write_bytes, b"")
    async with Storage.in_data_dir(tmp_path) as storage:
        assert storage.taken_in is not None
        assert (storage.taken_in.buckets, storage.taken_in.outages) == (0, 0)
    assert await asyncio.to_thread(_names, tmp_path) == [DB_NAME, "history.sqlite3.migrated"]


async def test_a_history_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    await asyncio.to_thread((tmp_path / "history.sqlite3").write_bytes, b"not sqlite" * 100)
    with pytest.raises(StorageError, match=r"history.sqlite3 is not a history database this "
                                           r"gateway knows .*move it out of gateway.data_dir"):
        await Storage.in_data_dir(tmp_path).open()


async def test_upgrade_fills_the_hourly_totals_from_existing_buckets(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    day = T0.replace(hour=0)
    buckets = [Bucket(day + timedelta(minutes=5 * i), E1.scaled(i)) for i in range(100)]

    def write_version_1() -> None:  # a history file as the previous gateway left it
        with sqlite3.connect(path) as conn:
            for statement in filter(str.strip, OLD_HISTORY_MIGRATIONS[0].split(";")):
                conn.execute(statement)
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (1)")
            conn.executemany(
                "INSERT INTO energy_5min VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [("1", int(b.start.timestamp()), *b.energy.values()) for b in buckets])
        conn.close()

    await asyncio.to_thread(write_version_1)
    async with Storage.in_data_dir(tmp_path) as storage:
        store = HistoryStore(storage)
        assert await storage.schema_version() == SCHEMA_VERSION
        edges = [day + timedelta(hours=h) for h in range(10)]
        got = await store.energy_by_entry(1, edges)
        for g, w in zip(got, sum_by_entry(buckets, edges), strict=True):
            assert g.values() == pytest.approx(w.values())
        # later writes keep both tables in step
        await store.add_buckets(1, [Bucket(day, E1)])
        (first_hour,) = await store.energy_by_entry(1, edges[:2])
        assert first_hour.values() == pytest.approx(
            (sum_by_entry(buckets, edges[:2])[0] + E1).values())


async def test_the_first_start_is_recorded_once(tmp_path: Path) -> None:
    async with Storage.in_data_dir(tmp_path) as storage:
        assert await storage.first_started_at() is None
        assert await storage.note_start(NOW) == NOW
        assert await storage.note_start(NOW + timedelta(hours=1)) == NOW
        assert await storage.first_started_at() == NOW
        assert (await storage.first_started_at() or NOW).tzinfo is not None


async def test_a_migrated_install_counts_its_oldest_fact_as_the_first_start(
    tmp_path: Path
) -> None:
    await asyncio.to_thread(write_old_gateway_db, tmp_path / DB_NAME)
    await asyncio.to_thread(write_old_history_db, tmp_path / "history.sqlite3", 2)
    async with Storage.in_data_dir(tmp_path) as storage:
        # the oldest fact is the first token, issued ten days before T0
        assert await storage.note_start(NOW) == T0 - timedelta(days=10)


async def test_two_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # the CLI and a starting gateway: two Storages on one file (here in one process)
    one, two = Storage.in_data_dir(tmp_path), Storage.in_data_dir(tmp_path)
    await asyncio.gather(one.open(), two.open())
    try:
        assert sorted([*one.migrated, *two.migrated]) == list(range(1, SCHEMA_VERSION + 1))
        assert await one.schema_version() == await two.schema_version() == SCHEMA_VERSION
    finally:
        await one.close()
        await two.close()


async def test_writes_run_in_the_order_they_were_asked(tmp_path: Path) -> None:
    async with Storage.in_data_dir(tmp_path) as storage:
        sites = SiteStore(storage)
        await asyncio.gather(*(sites.save_settings(1001, {"n": n}, NOW) for n in range(200)))
        assert await sites.load_settings(1001) == {"n": 199}


async def test_a_command_write_does_not_wait_for_a_long_history_read(tmp_path: Path) -> None:
    """The read-only connection: a history read that holds its thread for 0.5 s (a stand-in for
    the worst query, made slow on purpose so the machine's speed does not matter) leaves the
    writer free. Sharing one thread, the write would wait the whole 0.5 s; the bound, 0.25 s, is
    half of that, far above a write's milliseconds even on a loaded machine."""
    async with Storage.in_data_dir(tmp_path) as storage:
        sites = SiteStore(storage)
        started_reading = asyncio.Event()
        loop = asyncio.get_running_loop()

        def long_read(db: sqlite3.Connection) -> int:
            loop.call_soon_threadsafe(started_reading.set)
            time.sleep(0.5)  # on the reader's thread, not the loop
            return int(db.execute("SELECT count(*) FROM energy_5min").fetchone()[0])

        read = asyncio.create_task(storage.read(long_read))
        await started_reading.wait()
        began = time.perf_counter()
        await sites.save_settings(1001, {"backup_reserve_pct": 40}, NOW)
        waited = time.perf_counter() - began
        assert not read.done()
        assert await read == 0
        assert waited < 0.25, waited


async def test_the_reading_connection_cannot_write(tmp_path: Path) -> None:
    async with Storage.in_data_dir(tmp_path) as storage:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            await storage.read(lambda db: db.execute("DELETE FROM energy_5min"))
