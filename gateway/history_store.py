"""SQLite persistence of 5-minute energy buckets and grid outages, off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

from gateway.history import BUCKET, Bucket, FlowEnergy, Outage

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
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_UPSERT_ADD: Final = """
    INSERT INTO energy_5min (site_id, start, solar_to_home, solar_to_battery, solar_to_grid,
                             battery_to_home, battery_to_grid, grid_to_home, grid_to_battery)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (site_id, start) DO UPDATE SET
        solar_to_home = solar_to_home + excluded.solar_to_home,
        solar_to_battery = solar_to_battery + excluded.solar_to_battery,
        solar_to_grid = solar_to_grid + excluded.solar_to_grid,
        battery_to_home = battery_to_home + excluded.battery_to_home,
        battery_to_grid = battery_to_grid + excluded.battery_to_grid,
        grid_to_home = grid_to_home + excluded.grid_to_home,
        grid_to_battery = grid_to_battery + excluded.grid_to_battery
"""
_SELECT_BUCKETS: Final = """
    SELECT start, solar_to_home, solar_to_battery, solar_to_grid,
           battery_to_home, battery_to_grid, grid_to_home, grid_to_battery
    FROM energy_5min WHERE site_id = ? AND start >= ? AND start < ? ORDER BY start
"""


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
        for b in buckets:
            start = _ts(b.start)
            if start % size:
                raise ValueError(f"bucket start {b.start.isoformat()} is not 5-minute aligned")
            rows.append((str(site_id), int(start), *b.energy.values()))
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                conn.executemany(_UPSERT_ADD, rows)

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
