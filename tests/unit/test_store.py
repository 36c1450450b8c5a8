"""The storage's per-site rows: bounded journal entries, interrupted commands, retention, the
version-1 migration and learned device identities (a real SQLite file per test)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest_asyncio

from drivers.base import Capability, DeviceInfo
from gateway.core.tariff import parse_tariff
from gateway.runtime.devices import identity_from_json, identity_json
from gateway.runtime.site import journal_changes
from gateway.runtime.storage import Storage
from gateway.runtime.storage.sites import (
    JOURNAL_CHANGES_MAX_BYTES,
    SiteStore,
    bounded_changes,
    keep_journal,
    retention_cutoff,
)
from tests.helpers import eventually
from tests.samples import pge_like_sample

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE = 1001


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SiteStore]:
    async with Storage(tmp_path / "gateway.sqlite3") as storage:
        yield SiteStore(storage)


def test_a_tariff_is_journaled_as_a_short_summary_not_the_body() -> None:
    tariff = parse_tariff(pge_like_sample())
    entry = journal_changes({"tariff": tariff})
    summary = entry["tariff"]
    assert set(summary) == {"name", "code", "sha256", "bytes"}
    assert len(summary["sha256"]) == 16
    assert summary["bytes"] > len(bounded_changes(entry))  # far smaller than what was sent
    assert journal_changes({"backup_reserve_pct": 53}) == {"backup_reserve_pct": 53}


def test_journal_text_is_bounded_whatever_it_is_given() -> None:
    text = bounded_changes({"note": "x" * 100_000, "backup_reserve_pct": 5})
    assert len(text.encode()) <= JOURNAL_CHANGES_MAX_BYTES
    assert orjson.loads(text)["fields"] == ["backup_reserve_pct", "note"]


async def test_pending_entries_are_closed_as_interrupted(store: SiteStore) -> None:
    done = await store.journal(SITE, "backup", {"backup_reserve_pct": 40}, NOW)
    await store.finish(done, "confirmed", "", NOW)
    await store.journal(SITE, "backup", {"backup_reserve_pct": 41}, NOW)
    assert await store.close_interrupted(NOW + timedelta(minutes=1)) == 1
    assert [(e["changes"]["backup_reserve_pct"], e["status"]) for e in await store.commands(SITE)] \
        == [(41, "interrupted"), (40, "confirmed")]
    assert await store.close_interrupted(NOW) == 0


async def test_retention_prunes_entries_received_before_the_cutoff(store: SiteStore) -> None:
    for days_ago in (200, 91, 89, 0):
        await store.journal(SITE, "backup", {"backup_reserve_pct": days_ago},
                            NOW - timedelta(days=days_ago))
    # an hour inside retention, from a clock in UTC-12: as text it would sort before the cutoff
    west = timezone(timedelta(hours=-12))
    await store.journal(SITE, "backup", {"backup_reserve_pct": 1},
                        (NOW - timedelta(days=90) + timedelta(hours=1)).astimezone(west))
    assert retention_cutoff(NOW, 90) == NOW - timedelta(days=90)
    assert await store.prune_journal(retention_cutoff(NOW, 90)) == 2
    assert sorted(e["changes"]["backup_reserve_pct"] for e in await store.commands(SITE)) \
        == [0, 1, 89]


async def test_keep_journal_prunes_at_start_and_then_periodically(store: SiteStore) -> None:
    now = [NOW]
    await store.journal(SITE, "backup", {"backup_reserve_pct": 1}, NOW - timedelta(days=100))
    await store.journal(SITE, "backup", {"backup_reserve_pct": 2}, NOW - timedelta(days=80))
    task = asyncio.create_task(keep_journal(store, 90, lambda: now[0], every_s=0.05))
    try:
        await eventually(lambda: store.commands(SITE), lambda es: len(es) == 1)  # at start
        now[0] = NOW + timedelta(days=20)  # time passes: the second entry ages out
        await eventually(lambda: store.commands(SITE), lambda es: es == [])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_version_1_database_is_migrated_and_its_bodies_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"

    def make_v1() -> None:
        db = sqlite3.connect(path)
        db.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE command_journal (
                id INTEGER PRIMARY KEY AUTOINCREMENT, energy_site_id INTEGER NOT NULL,
                command TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending', detail TEXT NOT NULL DEFAULT '',
                finished_at TEXT);
        """)
        db.execute("INSERT INTO command_journal (energy_site_id, command, body, received_at) "
                   "VALUES (1001, 'backup', '{\"backup_reserve_percent\": 7}', ?)",
                   (NOW.isoformat(),))
        db.execute("INSERT INTO command_journal (energy_site_id, command, body, received_at) "
                   "VALUES (1001, 'time_of_use_settings', ?, ?)",
                   (orjson.dumps({"tou_settings": {"x": "y" * 50_000}}).decode(), NOW.isoformat()))
        db.commit()
        db.close()

    await asyncio.to_thread(make_v1)
    async with Storage(path) as storage:
        store = SiteStore(storage)
        entries = await store.commands(SITE)
        assert entries[1]["changes"] == {"backup_reserve_percent": 7}
        assert set(entries[0]["changes"]) == {"dropped_bytes"}
        await store.save_identity(SITE, "inverter", {"type": "sunspec"}, NOW)  # new table exists


async def test_learned_identities_round_trip(store: SiteStore) -> None:
    info = DeviceInfo(manufacturer="Sim", model="HY-5", serial_number="S1", firmware_version="1",
                      battery_capacity_wh=10_000.0, max_charge_w=5000.0)
    caps = frozenset({Capability.BATTERY, Capability.BACKUP_RESERVE})
    await store.save_identity(SITE, "inverter", identity_json("sunspec", info, caps), NOW)
    learned = await store.load_identities(SITE)
    assert identity_from_json("sunspec", learned["inverter"]) == (info, caps)
    # learned for another device type under the same name: not this device
    assert identity_from_json("victron_gx", learned["inverter"]) is None
    # a newer gateway's capability names are skipped, not fatal
    newer = {**learned["inverter"], "capabilities": ["battery", "teleport"]}
    assert identity_from_json("sunspec", newer) == (info, frozenset({Capability.BATTERY}))
    assert identity_from_json("sunspec", {"type": "sunspec", "info": {}, "capabilities": []}) \
        is None
