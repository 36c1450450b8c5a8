"""The planner's rows: what each site's planner learned, as one JSON document per site."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from gateway.runtime.storage.db import Storage


class PlannerStore:
    """Learned planner state on the storage's writer (one short statement per call)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def load(self, site_id: int) -> Any:
        """The site's saved state (decoded JSON), or None when none was saved or it is unreadable."""

        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT state FROM planner_state WHERE site_id = ?",
                             (site_id,)).fetchone()
            return None if row is None else str(row[0])

        text = await self._storage.read(query)
        if text is None:
            return None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return None

    async def save(self, site_id: int, state: dict[str, Any], now_s: float) -> None:
        """Replace the site's saved state."""
        text = orjson.dumps(state).decode()
        await self._storage.write(lambda db: db.execute(
            "INSERT INTO planner_state (site_id, state, saved_at) VALUES (?, ?, ?) "
            "ON CONFLICT (site_id) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
            (site_id, text, now_s)))
