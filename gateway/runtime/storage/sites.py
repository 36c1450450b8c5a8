"""Per-site rows of the storage: desired settings, the command journal, learned device identities."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import structlog

from gateway.runtime.storage.db import Storage
from gateway.runtime.storage.schema import JOURNAL_CHANGES_MAX_BYTES

log = structlog.get_logger("gateway.runtime.storage")

__all__ = ["INTERRUPTED", "JOURNAL_CHANGES_MAX_BYTES", "PRUNE_EVERY_S", "SiteStore",
           "bounded_changes", "keep_journal", "retention_cutoff"]

INTERRUPTED: Final = "interrupted"
#: The journal is pruned at startup and then this often (retention is counted in days).
PRUNE_EVERY_S: Final = 6 * 3600.0
_JOURNAL_KEYS: Final = ("id", "command", "changes", "received_at", "status", "detail",
                        "finished_at")


def _utc(now: datetime) -> str:
    # One zone for every stored instant, so ISO strings compare in time order (retention).
    return now.astimezone(UTC).isoformat()


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Journal entries received before this instant are past retention."""
    return now - timedelta(days=retention_days)


def bounded_changes(changes: Mapping[str, Any]) -> str:
    """The journal's JSON text for ``changes``: at most JOURNAL_CHANGES_MAX_BYTES.

    Callers pass summaries (a tariff as its hash); this is the last guard against a large value.
    """
    text = orjson.dumps(dict(changes), default=str).decode()
    if len(text.encode()) <= JOURNAL_CHANGES_MAX_BYTES:
        return text
    return orjson.dumps({"fields": sorted(changes)[:20], "dropped_bytes": len(text)}).decode()


class SiteStore:
    """Desired settings, the command journal and device identities, on the storage's writer.

    Each call is one short statement, run in the order asked (a command's journal entry and its
    settings are written before any device is touched).
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def load_settings(self, energy_site_id: int) -> dict[str, Any] | None:
        """The persisted desired settings of a site, or None when never set."""

        def _load(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT settings FROM site_settings WHERE energy_site_id = ?", (energy_site_id,)
            ).fetchone()
            return None if row is None else dict(orjson.loads(row[0]))

        return await self._storage.write(_load)

    async def save_settings(
        self, energy_site_id: int, settings: dict[str, Any], now: datetime
    ) -> None:
        """Persist a site's desired settings (before any device is touched)."""
        blob = orjson.dumps(settings).decode()

        def _save(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO site_settings VALUES (?, ?, ?) ON CONFLICT(energy_site_id) "
                "DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                (energy_site_id, blob, now.isoformat()),
            )

        await self._storage.write(_save)

    async def load_identities(self, energy_site_id: int) -> dict[str, dict[str, Any]]:
        """What earlier discoveries learned about a site's devices, by device name."""

        def _load(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            rows = db.execute(
                "SELECT device, identity FROM device_identity WHERE energy_site_id = ?",
                (energy_site_id,),
            ).fetchall()
            out: dict[str, dict[str, Any]] = {}
            for device, blob in rows:
                try:
                    data = orjson.loads(blob)
                except orjson.JSONDecodeError:
                    continue  # an unreadable row is as good as none: rediscovered on connect
                if isinstance(data, dict):
                    out[str(device)] = data
            return out

        return await self._storage.write(_load)

    async def save_identity(
        self, energy_site_id: int, device: str, identity: dict[str, Any], now: datetime
    ) -> None:
        """Persist what a discovery learned about a device (replacing the previous row)."""
        blob = orjson.dumps(identity).decode()

        def _save(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO device_identity VALUES (?, ?, ?, ?) "
                "ON CONFLICT(energy_site_id, device) DO UPDATE SET "
                "identity = excluded.identity, learned_at = excluded.learned_at",
                (energy_site_id, device, blob, _utc(now)),
            )

        await self._storage.write(_save)

    async def journal(
        self, energy_site_id: int, command: str, changes: Mapping[str, Any], now: datetime
    ) -> int:
        """Record a received command and the validated changes it asks for; returns its id."""
        blob = bounded_changes(changes)

        def _add(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO command_journal (energy_site_id, command, changes, received_at) "
                "VALUES (?, ?, ?, ?)",
                (energy_site_id, command, blob, _utc(now)),
            )
            return int(cur.lastrowid or 0)

        return await self._storage.write(_add)

    async def finish(self, journal_id: int, status: str, detail: str, now: datetime) -> None:
        """Record how a journaled command ended (``confirmed``, ``kept``, ``rejected``)."""

        def _finish(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE command_journal SET status = ?, detail = ?, finished_at = ? WHERE id = ?",
                (status, detail, _utc(now), journal_id),
            )

        await self._storage.write(_finish)

    async def close_interrupted(self, now: datetime) -> int:
        """Close every ``pending`` entry as ``interrupted`` (at startup: their process died).

        Returns how many were closed.
        """

        def _close(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE command_journal SET status = ?, detail = ?, finished_at = ? "
                "WHERE status = 'pending'",
                (INTERRUPTED, "the gateway stopped before the command finished", _utc(now)),
            )
            return int(cur.rowcount)

        return await self._storage.write(_close)

    async def prune_journal(self, before: datetime) -> int:
        """Delete journal entries received before ``before``; returns how many."""
        cutoff = _utc(before)

        def _prune(db: sqlite3.Connection) -> int:
            cur = db.execute("DELETE FROM command_journal WHERE received_at < ?", (cutoff,))
            return int(cur.rowcount)

        return await self._storage.write(_prune)

    async def commands(self, energy_site_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent journal entries of a site, newest first (``changes`` decoded)."""

        def _list(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT id, command, changes, received_at, status, detail, finished_at "
                "FROM command_journal WHERE energy_site_id = ? ORDER BY id DESC LIMIT ?",
                (energy_site_id, limit),
            ).fetchall()
            entries = [dict(zip(_JOURNAL_KEYS, r, strict=True)) for r in rows]
            for entry in entries:
                entry["changes"] = orjson.loads(entry["changes"])
            return entries

        return await self._storage.write(_list)


async def keep_journal(
    store: SiteStore, retention_days: int, clock: Callable[[], datetime], *,
    every_s: float = PRUNE_EVERY_S,
) -> None:
    """Prune the journal to ``retention_days`` now and then every ``every_s`` (runs until cancelled)."""
    while True:
        pruned = await store.prune_journal(retention_cutoff(clock(), retention_days))
        if pruned:
            log.info("journal.pruned", entries=pruned, retention_days=retention_days)
        await asyncio.sleep(every_s)
