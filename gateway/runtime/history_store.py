"""SQLite persistence of 5-minute energy buckets and grid outages, off the event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

from gateway.core.history import BUCKET, Bucket, FlowEnergy, Outage

_T = TypeVar("_T")

# One script per schema version; the database records how many have been applied.
_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE energy_5min (
        site_id TEXT NOT NULL,
        start INTEGER NOT NULL,
        solar_to_home REAL NOT NULL DEFAULT 0,
        solar_to_battery REAL NOT NULL DEFAULT 0,
        solar_to_grid REAL NOT NULL DEFAULT 0,
        battery_to_home REAL NOT NULL DEFAULT 0,
        battery_to_grid REAL NOT NULL DEFAULT 0,
        grid_to_home REAL NOT NULL DEFAULT 0,
        grid_to_battery REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (site_id, start)
    ) WITHOUT ROWID;
    CREATE TABLE outages (
        id INTEGER PRIMARY KEY,
        site_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL
    );
    CREATE INDEX outages_by_start ON outages (site_id, started_at);
    CREATE UNIQUE INDEX outages_one_open ON outages (site_id) WHERE ended_at IS NULL;
    """,
    # The same energy per UTC hour, kept with every bucket write, so a day, month or lifetime
    # of history is summed from 12x fewer rows. floor(start / 3600) also for starts before 1970.
    """
    CREATE TABLE energy_1h (
        site_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        solar_to_home REAL NOT NULL DEFAULT 0,
        solar_to_battery REAL NOT NULL DEFAULT 0,
        solar_to_grid REAL NOT NULL DEFAULT 0,
        battery_to_home REAL NOT NULL DEFAULT 0,
        battery_to_grid REAL NOT NULL DEFAULT 0,
        grid_to_home REAL NOT NULL DEFAULT 0,
        grid_to_battery REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (site_id, hour)
    ) WITHOUT ROWID;
    INSERT INTO energy_1h
    SELECT site_id, start - ((start % 3600) + 3600) % 3600, sum(solar_to_home),
           sum(solar_to_battery), sum(solar_to_grid), sum(battery_to_home),
           sum(battery_to_grid), sum(grid_to_home), sum(grid_to_battery)
    FROM energy_5min GROUP BY 1, 2
    """,
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_FLOWS: Final = (
    "solar_to_home", "solar_to_battery", "solar_to_grid", "battery_to_home", "battery_to_grid",
    "grid_to_home", "grid_to_battery",
)


def _upsert_add(table: str, key: str) -> str:
    """Insert a row of energy, or add it to the row with the same key."""
    return (
        f"INSERT INTO {table} (site_id, {key}, {', '.join(_FLOWS)}) "  # noqa: S608 - constants
        f"VALUES (?, ?, {', '.join('?' * len(_FLOWS))}) "
        f"ON CONFLICT (site_id, {key}) DO UPDATE SET "
        + ", ".join(f"{flow} = {flow} + excluded.{flow}" for flow in _FLOWS)
    )


_UPSERT_ADD: Final = _upsert_add("energy_5min", "start")
_UPSERT_ADD_HOUR: Final = _upsert_add("energy_1h", "hour")
_SELECT_BUCKETS: Final = """
    SELECT start, solar_to_home, solar_to_battery, solar_to_grid,
           battery_to_home, battery_to_grid, grid_to_home, grid_to_battery
    FROM energy_5min WHERE site_id = ? AND start >= ? AND start < ? ORDER BY start
"""
# Energy per entry, summed inside SQLite. Each entry arrives as [lo, a, b, hi] in one JSON
# array: its whole UTC hours [a, b) come from energy_1h, the ragged ends [lo, a) and [b, hi)
# from energy_5min. CROSS JOIN keeps the entries the outer loop, so every part is one range
# scan of a primary key; no bucket row reaches Python, and the GIL is free while SQLite works.
_COLUMNS: Final = ", ".join(f"t.{flow}" for flow in _FLOWS)
_SUM_BY_ENTRY: Final = f"""
    WITH part (i, lo, a, b, hi) AS (
        SELECT CAST(key AS INTEGER), json_extract(value, '$[0]'), json_extract(value, '$[1]'),
               json_extract(value, '$[2]'), json_extract(value, '$[3]')
        FROM json_each(?1)
    )
    SELECT i, {", ".join(f"sum({flow})" for flow in _FLOWS)} FROM (
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


class HistoryStoreError(RuntimeError):
    """The history database cannot be used (closed, or written by a newer gateway)."""


def _ts(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("history timestamps must be timezone-aware")
    return at.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    version = int(row[0]) if row[0] is not None else 0
    if version > SCHEMA_VERSION:
        raise HistoryStoreError(
            f"{path}: schema version {version} is newer than this gateway's ({SCHEMA_VERSION})"
        )
    for script in _MIGRATIONS[version:]:
        version += 1
        with conn:  # one transaction per migration: all of it or none of it
            conn.execute("BEGIN")
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


class HistoryStore:
    """Energy buckets and outage events per site in one SQLite file (WAL mode).

    Every sqlite call runs in a worker thread (``asyncio.to_thread``), one at a time under a
    lock taken inside that thread, so the event loop never blocks on disk and a cancelled caller
    cannot let a second thread onto the connection while its call is still running. Datetimes
    in are aware; datetimes out are UTC. ``site_id`` is stored as text, so ``1001`` and
    ``"1001"`` are the same site.
    """

    def __init__(self, path: Path) -> None:
        """Prepare a store on ``path`` (created with its parent directory on ``open``)."""
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _locked(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            if self._conn is None:
                raise HistoryStoreError("history store is not open")
            return fn(self._conn)

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.to_thread(self._locked, fn)

    async def open(self) -> None:
        """Open (creating or migrating) the database.

        Raises:
            HistoryStoreError: the file was written by a newer schema version.
        """

        def connect() -> None:
            with self._lock:
                if self._conn is None:
                    self._conn = self._connect(self.path)

        await asyncio.to_thread(connect)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Worker threads take turns on this connection under the store's lock.
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Close the database; the store can be opened again."""

        def disconnect() -> None:
            with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

        await asyncio.to_thread(disconnect)

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""

        def query(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT max(version) FROM schema_version").fetchone()[0])

        return await self._run(query)

    async def add_buckets(self, site_id: int | str, buckets: Iterable[Bucket]) -> None:
        """Add each bucket's energy (Wh) to the stored bucket with the same start (or insert it).

        Raises:
            ValueError: a bucket start that is naive or not aligned to 5 minutes.
        """
        size = int(BUCKET.total_seconds())
        rows = []
        hours = []  # the same energy added to its UTC hour, in the same transaction
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
            with conn:
                conn.execute("BEGIN")
                conn.executemany(_UPSERT_ADD, rows)
                conn.executemany(_UPSERT_ADD_HOUR, hours)

        await self._run(write)

    async def buckets(
        self, site_id: int | str, start_utc: datetime, end_utc: datetime
    ) -> list[Bucket]:
        """Stored buckets of ``site_id`` starting in ``[start_utc, end_utc)``, oldest first."""
        args = (str(site_id), _ts(start_utc), _ts(end_utc))

        def query(conn: sqlite3.Connection) -> list[tuple[float, ...]]:
            return conn.execute(_SELECT_BUCKETS, args).fetchall()

        rows = await self._run(query)
        return [Bucket(_dt(row[0]), FlowEnergy(*row[1:])) for row in rows]

    async def first_bucket_start(self, site_id: int | str) -> datetime | None:
        """Start of the site's oldest stored bucket (None without any); one index lookup."""
        args = (str(site_id),)

        def query(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT min(start) FROM energy_5min WHERE site_id = ?", args)
            value: float | None = row.fetchone()[0]
            return value

        first = await self._run(query)
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

        return await self._run(query)

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

        return await self._run(write)

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

        return await self._run(write)

    async def current_outage(self, site_id: int | str) -> Outage | None:
        """The site's open outage, e.g. to resume an ``OutageTracker`` after a restart."""
        args = (str(site_id),)

        def query(conn: sqlite3.Connection) -> tuple[float] | None:
            row: tuple[float] | None = conn.execute(
                "SELECT started_at FROM outages WHERE site_id = ? AND ended_at IS NULL", args
            ).fetchone()
            return row

        row = await self._run(query)
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

        rows = await self._run(query)
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

        rows = await self._run(query)
        return [Outage(start=_dt(s), end=None if e is None else _dt(e)) for s, e in rows]
