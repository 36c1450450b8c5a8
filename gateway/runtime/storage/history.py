"""History rows of the storage: 5-minute energy buckets, hourly totals and grid outages."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from gateway.core.history import BUCKET, Bucket, FlowEnergy, Outage
from gateway.runtime.storage.db import Storage
from gateway.runtime.storage.schema import ENERGY_FLOWS, write_transaction


def _upsert_add(table: str, key: str) -> str:
    """Insert a row of energy, or add it to the row with the same key."""
    return (
        f"INSERT INTO {table} (site_id, {key}, {', '.join(ENERGY_FLOWS)}) "  # noqa: S608 - constants
        f"VALUES (?, ?, {', '.join('?' * len(ENERGY_FLOWS))}) "
        f"ON CONFLICT (site_id, {key}) DO UPDATE SET "
        + ", ".join(f"{flow} = {flow} + excluded.{flow}" for flow in ENERGY_FLOWS)
    )


_UPSERT_ADD: Final = _upsert_add("energy_5min", "start")
_UPSERT_ADD_HOUR: Final = _upsert_add("energy_1h", "hour")
_SELECT_BUCKETS: Final = f"""
    SELECT start, {", ".join(ENERGY_FLOWS)}
    FROM energy_5min WHERE site_id = ? AND start >= ? AND start < ? ORDER BY start
"""  # noqa: S608 - built from constants only
# Energy per entry, summed inside SQLite. Each entry arrives as [lo, a, b, hi] in one JSON
# array: its whole UTC hours [a, b) come from energy_1h, the ragged ends [lo, a) and [b, hi)
# from energy_5min. CROSS JOIN keeps the entries the outer loop, so every part is one range
# scan of a primary key; no bucket row reaches Python, and the GIL is free while SQLite works.
_COLUMNS: Final = ", ".join(f"t.{flow}" for flow in ENERGY_FLOWS)
_SUM_BY_ENTRY: Final = f"""
    WITH part (i, lo, a, b, hi) AS (
        SELECT CAST(key AS INTEGER), json_extract(value, '$[0]'), json_extract(value, '$[1]'),
               json_extract(value, '$[2]'), json_extract(value, '$[3]')
        FROM json_each(?1)
    )
    SELECT i, {", ".join(f"sum({flow})" for flow in ENERGY_FLOWS)} FROM (
        SELECT part.i AS i, {_COLUMNS} FROM part CROSS JOIN energy_5min AS t
        WHERE t.site_id = ?2 AND t.start >= part.lo AND t.start < part.a
        UNION ALL
        SELECT part.i, {_COLUMNS} FROM part CROSS JOIN energy_1h AS t
        WHERE t.site_id = ?2 AND t.hour >= part.a AND t.hour < part.b
        UNION ALL
        SELECT part.i, {_COLUMNS} FROM part CROSS JOIN energy_5min AS t
        WHERE t.site_id = ?2 AND t.start >= part.b AND t.start < part.hi
    ) GROUP BY i
"""  # noqa: S608 - built from constants only


def _hour_split(lo: float, hi: float) -> tuple[float, float, float, float]:
    """``[lo, a, b, hi]``: the whole UTC hours ``[a, b)`` inside ``[lo, hi)`` and its ragged ends.

    Without a whole hour inside, ``a == b == hi`` and the 5-minute rows cover all of it.
    """
    a = math.ceil(lo / 3600) * 3600
    b = math.floor(hi / 3600) * 3600
    return (lo, a, b, hi) if a < b else (lo, hi, hi, hi)


def _ts(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("history timestamps must be timezone-aware")
    return at.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class HistoryStore:
    """Energy buckets and outage events per site, in the storage.

    Writes go through the storage's writer, in order, each in one transaction; queries run on
    its read-only connection. Datetimes in are aware; datetimes out are UTC. ``site_id`` is
    stored as text, so ``1001`` and ``"1001"`` are the same site.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def add_buckets(self, site_id: int | str, buckets: Iterable[Bucket]) -> None:
        """Add each bucket's energy (Wh) to the stored bucket with the same start (or insert it).

        Raises:
            ValueError: a bucket start that is naive or not aligned to 5 minutes.
        """
        await self.add_many({site_id: buckets})

    async def add_many(self, by_site: Mapping[int | str, Iterable[Bucket]]) -> None:
        """``add_buckets`` for several sites in one transaction."""
        size = int(BUCKET.total_seconds())
        rows = []
        hours = []  # the same energy added to its UTC hour, in the same transaction
        for site_id, buckets in by_site.items():
            for b in buckets:
                start = _ts(b.start)
                if start % size:
                    raise ValueError(f"bucket start {b.start.isoformat()} is not 5-minute aligned")
                values = b.energy.values()
                rows.append((str(site_id), int(start), *values))
                hours.append((str(site_id), int(start - start % 3600), *values))
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.executemany(_UPSERT_ADD, rows)
                conn.executemany(_UPSERT_ADD_HOUR, hours)

        await self._storage.write(write)

    async def buckets(
        self, site_id: int | str, start_utc: datetime, end_utc: datetime
    ) -> list[Bucket]:
        """Stored buckets of ``site_id`` starting in ``[start_utc, end_utc)``, oldest first."""
        args = (str(site_id), _ts(start_utc), _ts(end_utc))

        def query(conn: sqlite3.Connection) -> list[tuple[float, ...]]:
            return conn.execute(_SELECT_BUCKETS, args).fetchall()

        rows = await self._storage.read(query)
        return [Bucket(_dt(row[0]), FlowEnergy(*row[1:])) for row in rows]

    async def first_bucket_start(self, site_id: int | str) -> datetime | None:
        """Start of the site's oldest stored bucket (None without any); one index lookup."""
        args = (str(site_id),)

        def query(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT min(start) FROM energy_5min WHERE site_id = ?", args)
            value: float | None = row.fetchone()[0]
            return value

        first = await self._storage.read(query)
        return None if first is None else _dt(first)

    async def energy_by_entry(
        self, site_id: int | str, edges: Sequence[datetime]
    ) -> list[FlowEnergy]:
        """Stored energy per entry: entry ``i`` sums the buckets starting in ``[edges[i], edges[i+1])``.

        Summed in SQL from hourly totals (5-minute rows only at edges inside an hour), so the
        cost is a few index range scans per entry plus one row per hour, and the memory is one
        row per entry, however many buckets the entries hold.

        Args:
            site_id: the site.
            edges: increasing aware instants, one more than the entries.
        """
        stamps = [_ts(edge) for edge in edges]
        payload = json.dumps([_hour_split(lo, hi) for lo, hi in itertools.pairwise(stamps)])
        args = (payload, str(site_id))
        count = max(len(edges) - 1, 0)

        def query(conn: sqlite3.Connection) -> list[FlowEnergy]:
            sums = [FlowEnergy()] * count
            for index, *values in conn.execute(_SUM_BY_ENTRY, args):
                sums[index] = FlowEnergy(*values)
            return sums

        return await self._storage.read(query)

    async def open_outage(self, site_id: int | str, start: datetime) -> bool:
        """Record that the grid went down at ``start``.

        Returns:
            False when the site already has an open outage (it is kept as it is).
        """
        args = (str(site_id), _ts(start))

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO outages (site_id, started_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                args,
            )
            return cur.rowcount == 1

        return await self._storage.write(write)

    async def close_outage(self, site_id: int | str, end: datetime) -> bool:
        """Record that the grid came back at ``end``.

        Returns:
            False when the site had no open outage.
        """
        args = (_ts(end), str(site_id))

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE outages SET ended_at = max(started_at, ?) "
                "WHERE site_id = ? AND ended_at IS NULL",
                args,
            )
            return cur.rowcount == 1

        return await self._storage.write(write)

    async def current_outage(self, site_id: int | str) -> Outage | None:
        """The site's open outage, e.g. to resume an ``OutageTracker`` after a restart."""
        args = (str(site_id),)

        def query(conn: sqlite3.Connection) -> tuple[float] | None:
            row: tuple[float] | None = conn.execute(
                "SELECT started_at FROM outages WHERE site_id = ? AND ended_at IS NULL", args
            ).fetchone()
            return row

        row = await self._storage.read(query)
        return None if row is None else Outage(start=_dt(row[0]))

    async def outages(self, site_id: int | str, start: datetime, end: datetime) -> list[Outage]:
        """Outages of ``site_id`` overlapping ``[start, end)`` (open ones too), oldest first."""
        args = (str(site_id), _ts(end), _ts(start))

        def query(conn: sqlite3.Connection) -> list[tuple[float, float | None]]:
            return conn.execute(
                "SELECT started_at, ended_at FROM outages WHERE site_id = ? AND started_at < ? "
                "AND (ended_at IS NULL OR ended_at > ?) ORDER BY started_at",
                args,
            ).fetchall()

        rows = await self._storage.read(query)
        return [Outage(start=_dt(s), end=None if e is None else _dt(e)) for s, e in rows]

    async def outages_started(
        self, site_id: int | str, start: datetime | None, end: datetime, *, limit: int
    ) -> list[Outage]:
        """The first ``limit`` outages of ``site_id`` starting in ``[start, end)``, oldest first.

        ``start`` None means from the first outage. One index range scan that stops after
        ``limit`` rows, so asking for one more than an answer may list tells whether it fits.
        """
        lower = "" if start is None else "AND started_at >= ? "
        args = (str(site_id), *(() if start is None else (_ts(start),)), _ts(end), limit)
        sql = (
            f"SELECT started_at, ended_at FROM outages WHERE site_id = ? {lower}"  # noqa: S608
            "AND started_at < ? ORDER BY started_at LIMIT ?"
        )

        def query(conn: sqlite3.Connection) -> list[tuple[float, float | None]]:
            return conn.execute(sql, args).fetchall()

        rows = await self._storage.read(query)
        return [Outage(start=_dt(s), end=None if e is None else _dt(e)) for s, e in rows]
