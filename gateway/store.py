"""SQLite persistence of desired settings and the command journal, off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS site_settings (
    energy_site_id INTEGER PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    energy_site_id INTEGER NOT NULL,
    command TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    detail TEXT NOT NULL DEFAULT '',
    finished_at TEXT
);
"""


class Store:
    """One SQLite database (WAL) owned by one worker thread; every call is awaited, never blocking."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def open(self) -> None:
        """Create the data directory and schema if missing."""

        def _open() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            db.executescript(_SCHEMA)
            if db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._executor, _open)

    async def close(self) -> None:
        """Close the database and its worker thread."""
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._executor.shutdown(wait=False)

    async def load_settings(self, energy_site_id: int) -> dict[str, Any] | None:
        """The persisted desired settings of a site, or None when never set."""

        def _load(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT settings FROM site_settings WHERE energy_site_id = ?", (energy_site_id,)
            ).fetchone()
            return None if row is None else dict(orjson.loads(row[0]))

        return await self._run(_load)

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

        await self._run(_save)

    async def journal(
        self, energy_site_id: int, command: str, body: dict[str, Any], now: datetime
    ) -> int:
        """Record a received command; returns its journal id."""
        blob = orjson.dumps(body).decode()

        def _add(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO command_journal (energy_site_id, command, body, received_at) "
                "VALUES (?, ?, ?, ?)",
                (energy_site_id, command, blob, now.isoformat()),
            )
            return int(cur.lastrowid or 0)

        return await self._run(_add)

    async def finish(self, journal_id: int, status: str, detail: str, now: datetime) -> None:
        """Record how a journaled command ended (``confirmed``, ``offline``, ``not_confirmed`` ...)."""

        def _finish(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE command_journal SET status = ?, detail = ?, finished_at = ? WHERE id = ?",
                (status, detail, now.isoformat(), journal_id),
            )

        await self._run(_finish)

    async def commands(self, energy_site_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent journal entries of a site, newest first."""

        def _list(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT id, command, body, received_at, status, detail, finished_at "
                "FROM command_journal WHERE energy_site_id = ? ORDER BY id DESC LIMIT ?",
                (energy_site_id, limit),
            ).fetchall()
            keys = ("id", "command", "body", "received_at", "status", "detail", "finished_at")
            return [dict(zip(keys, r, strict=True)) for r in rows]

        return await self._run(_list)
