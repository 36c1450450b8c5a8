"""Charging sessions in the storage: transactions opened and closed by charge points, history reads."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.charging.sessions import session_of
from gateway.core.history.charging import ChargeSession
from gateway.runtime.storage.db import Storage
from gateway.runtime.storage.schema import write_transaction


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction a charge point started and has not stopped (as stored)."""

    id: int
    site_id: str
    charge_point_id: str
    connector_id: int
    started_at: datetime
    meter_start_wh: float


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """What a StopTransaction did: ``known`` (the id exists), ``counted`` (it closed the
    transaction now; False for a replay of a stop already stored)."""

    known: bool
    counted: bool


class ChargeStore:
    """Transactions and sessions per site; ``site_id`` stored as text like the history's."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def start(
        self, *, site_id: int, charge_point_id: str, connector_id: int, id_tag: str,
        stamped_start: str, started_at: datetime, meter_start_wh: float,
    ) -> tuple[int, bool]:
        """Open a transaction; a replayed StartTransaction (same charge point, connector, stamp
        and meter) gets the id it had. Returns the id and whether it was new."""
        key = (charge_point_id, connector_id, stamped_start, meter_start_wh)

        def write(conn: sqlite3.Connection) -> tuple[int, bool]:
            with write_transaction(conn):
                row = conn.execute(
                    "SELECT id FROM charge_sessions WHERE charge_point_id = ? AND connector_id = ?"
                    " AND stamped_start = ? AND meter_start_wh = ?", key).fetchone()
                if row is not None:
                    return int(row[0]), False
                cur = conn.execute(
                    "INSERT INTO charge_sessions (site_id, charge_point_id, connector_id, id_tag,"
                    " stamped_start, started_at, meter_start_wh) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(site_id), charge_point_id, connector_id, id_tag, stamped_start,
                     started_at.timestamp(), meter_start_wh))
                return int(cur.lastrowid or 0), True

        return await self._storage.write(write)

    async def stop(
        self, *, charge_point_id: str, transaction_id: int, stopped_at: datetime,
        meter_stop_wh: float, reason: str,
    ) -> StopOutcome:
        """Close a transaction of this charge point once: a repeated stop changes nothing."""

        def write(conn: sqlite3.Connection) -> StopOutcome:
            with write_transaction(conn):
                row = conn.execute(
                    "SELECT stopped_at FROM charge_sessions WHERE id = ? AND charge_point_id = ?",
                    (transaction_id, charge_point_id)).fetchone()
                if row is None:
                    return StopOutcome(known=False, counted=False)
                if row[0] is not None:
                    return StopOutcome(known=True, counted=False)
                conn.execute(
                    "UPDATE charge_sessions SET stopped_at = ?, meter_stop_wh = ?, stop_reason = ?"
                    " WHERE id = ?", (stopped_at.timestamp(), meter_stop_wh, reason, transaction_id))
                return StopOutcome(known=True, counted=True)

        return await self._storage.write(write)

    async def open_transactions(self, charge_point_id: str) -> list[OpenTransaction]:
        """The transactions of this charge point that are not stopped yet."""

        def query(conn: sqlite3.Connection) -> list[tuple[int, str, str, int, float, float]]:
            return conn.execute(
                "SELECT id, site_id, charge_point_id, connector_id, started_at, meter_start_wh"
                " FROM charge_sessions WHERE charge_point_id = ? AND stopped_at IS NULL",
                (charge_point_id,)).fetchall()

        rows = await self._storage.read(query)
        return [OpenTransaction(r[0], r[1], r[2], r[3], datetime.fromtimestamp(r[4], UTC), r[5])
                for r in rows]

    async def sessions(
        self, site_id: int, start: datetime | None, end: datetime | None, *, limit: int,
    ) -> list[ChargeSession]:
        """Finished sessions of the site starting in ``[start, end)``, oldest first, at most
        ``limit``."""
        lo = float("-inf") if start is None else start.timestamp()
        hi = float("inf") if end is None else end.timestamp()

        def query(conn: sqlite3.Connection) -> list[tuple[float, float, float, float]]:
            return conn.execute(
                "SELECT started_at, stopped_at, meter_start_wh, meter_stop_wh FROM charge_sessions"
                " WHERE site_id = ? AND stopped_at IS NOT NULL AND started_at >= ?"
                " AND started_at < ? ORDER BY started_at LIMIT ?",
                (str(site_id), lo, hi, limit)).fetchall()

        rows = await self._storage.read(query)
        return [session_of(started=datetime.fromtimestamp(a, UTC),
                           stopped=datetime.fromtimestamp(b, UTC),
                           meter_start_wh=m0, meter_stop_wh=m1) for a, b, m0, m1 in rows]
