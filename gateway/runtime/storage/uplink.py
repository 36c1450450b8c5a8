"""The uplink's rows: command ids seen with their outcomes, and how far history has been sent."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from gateway.runtime.storage.db import Storage

#: Command ids are remembered this long (a hub retry arrives within minutes; a week is ample).
REMEMBER_S: Final = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class SeenCommand:
    """A command id the uplink has taken: its outcome once known, and whether it was sent."""

    command_id: str
    site_id: int
    command: str
    status: int | None
    body: str | None
    published: bool


class UplinkStore:
    """Command ids and history cursors on the storage's one writer."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def take(self, command_id: str, site_id: int, command: str, now_s: float) -> SeenCommand | None:
        """Record a new command id; the earlier record instead when the id was seen before."""

        def write(db: sqlite3.Connection) -> SeenCommand | None:
            row = db.execute("SELECT command_id, site_id, command, status, body, published "
                             "FROM uplink_commands WHERE command_id = ?", (command_id,)).fetchone()
            if row is not None:
                return SeenCommand(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
            db.execute("INSERT INTO uplink_commands (command_id, site_id, command, received_at) "
                       "VALUES (?, ?, ?, ?)", (command_id, site_id, command, now_s))
            return None

        return await self._storage.write(write)

    async def retake(self, command_id: str, status: int, now_s: float) -> bool:
        """Open an unsettled command again for a retry; False when another retry already did."""
        return bool(await self._storage.write(lambda db: db.execute(
            "UPDATE uplink_commands SET status = NULL, body = NULL, published = 0, received_at = ? "
            "WHERE command_id = ? AND status = ?", (now_s, command_id, status)).rowcount))

    async def finish(self, command_id: str, status: int, body: str) -> None:
        """The outcome of a command (not yet published)."""
        await self._storage.write(lambda db: db.execute(
            "UPDATE uplink_commands SET status = ?, body = ? WHERE command_id = ?",
            (status, body, command_id)))

    async def published(self, command_id: str) -> None:
        """The broker has the outcome (QoS 1 acknowledged)."""
        await self._storage.write(lambda db: db.execute(
            "UPDATE uplink_commands SET published = 1 WHERE command_id = ?", (command_id,)))

    async def unpublished(self, limit: int = 500) -> list[SeenCommand]:
        """Outcomes known but not yet acknowledged by the broker, oldest first."""

        def query(db: sqlite3.Connection) -> list[SeenCommand]:
            rows = db.execute(
                "SELECT command_id, site_id, command, status, body, published FROM uplink_commands "
                "WHERE status IS NOT NULL AND published = 0 ORDER BY received_at LIMIT ?",
                (limit,)).fetchall()
            return [SeenCommand(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

        return await self._storage.read(query)

    async def close_unfinished(self, status: int, body: str) -> int:
        """Give commands a crash interrupted an outcome (the journal says ``interrupted``)."""
        return await self._storage.write(lambda db: db.execute(
            "UPDATE uplink_commands SET status = ?, body = ? WHERE status IS NULL",
            (status, body)).rowcount)

    async def forget_before(self, cutoff_s: float) -> int:
        """Drop command ids received before ``cutoff_s``."""
        return await self._storage.write(lambda db: db.execute(
            "DELETE FROM uplink_commands WHERE received_at < ? AND published = 1",
            (cutoff_s,)).rowcount)

    async def history_sent_until(self, site_id: int) -> float | None:
        """Start of the first bucket not yet sent (None: nothing sent yet)."""

        def query(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT sent_until FROM uplink_history_sent WHERE site_id = ?",
                             (site_id,)).fetchone()
            return None if row is None else float(row[0])

        return await self._storage.read(query)

    async def history_sent(self, site_id: int, until_s: float) -> None:
        """Buckets before ``until_s`` are with the broker."""
        await self._storage.write(lambda db: db.execute(
            "INSERT INTO uplink_history_sent (site_id, sent_until) VALUES (?, ?) "
            "ON CONFLICT (site_id) DO UPDATE SET sent_until = excluded.sent_until",
            (site_id, until_s)))
