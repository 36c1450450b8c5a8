"""Storage: the one SQLite file, its connection owner (one writer thread, one reader) and its meta."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

from gateway.runtime.storage.legacy import LegacyError, TakenIn, take_in_history_file
from gateway.runtime.storage.schema import (
    SCHEMA_VERSION,
    NewerSchema,
    migrate,
    schema_version,
    write_transaction,
)

T = TypeVar("T")
#: The gateway's database, in ``gateway.data_dir``.
DB_NAME: Final = "gateway.sqlite3"
_FIRST_STARTED = "first_started_at"


class StorageError(RuntimeError):
    """The storage cannot be used: not open, or its file is newer than this gateway."""


class _Connection:
    """One sqlite3 connection and the one thread that ever touches it (jobs run in order)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        try:
            self._db = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db, executor = self._db, self._executor
        if db is None or executor is None:
            raise StorageError("storage is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, db)

    async def close(self) -> None:
        db, executor = self._db, self._executor
        self._db = self._executor = None
        if db is not None and executor is not None:
            # queued after every job already asked for: those finish first
            await asyncio.get_running_loop().run_in_executor(executor, db.close)
        if executor is not None:
            executor.shutdown(wait=False)


class Storage:
    """The gateway's one SQLite file (WAL): settings, journal, identities, tokens, history, meta.

    Every write runs on one worker thread that owns the writing connection, in the order the
    writes were asked for; short reads run there too. Long history reads run on a second,
    read-only connection with a thread of its own, so a command's settings write never queues
    behind a year of energy being summed (WAL lets the reader see every committed write and
    never blocks the writer). ``open`` applies the schema migrations and takes in a
    ``history.sqlite3`` left by the two-file layout. Other processes (the CLI) open the same
    file with a ``Storage`` of their own.
    """

    def __init__(self, path: Path) -> None:
        """Prepare the storage at ``path`` (created with its directory on ``open``)."""
        self.path = path
        self._writer = _Connection("storage")
        self._reader = _Connection("storage-read")
        #: the schema versions ``open`` applied, and what it took in from an old history file
        #: (the caller logs them: the CLI keeps its output to what it was asked for)
        self.migrated: list[int] = []
        self.taken_in: TakenIn | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Storage:
        """The storage of a gateway whose ``gateway.data_dir`` is ``data_dir``."""
        return cls(data_dir / DB_NAME)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open (creating, migrating, taking in the old history file); opening twice is a no-op.

        Raises:
            StorageError: the file was written by a newer gateway, or an old history file in
                the data directory is not one this gateway knows.
        """
        if self._writer.is_open:
            return
        await self._writer.open(self._connect_writer)
        try:
            await self._reader.open(self._connect_reader)
        except BaseException:
            await self._writer.close()
            raise

    def _connect_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            _enable_wal(db, timeout_s=5.0)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            try:
                self.migrated = migrate(db)
            except NewerSchema as exc:
                raise StorageError(
                    f"{self.path} has schema version {exc.version}, newer than this gateway's "
                    f"({SCHEMA_VERSION}): it was written by a newer energy-gateway; run that "
                    "version, or restore a backup made for this one") from None
            try:
                self.taken_in = take_in_history_file(db, self.path.parent)
            except LegacyError as exc:
                raise StorageError(str(exc)) from None
        except BaseException:
            db.close()
            raise
        return db

    def _connect_reader(self) -> sqlite3.Connection:
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA query_only=ON")  # belt and braces: this connection never writes
        return db

    async def close(self) -> None:
        """Finish the work already asked for, then close; the storage can be opened again."""
        await self._reader.close()
        await self._writer.close()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writing connection's thread, after everything asked before it.

        Raises:
            StorageError: the storage is not open.
        """
        return await self._writer.run(fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn`` on the reading connection (it sees every finished write).

        For reads that may take long (history); they run one at a time, beside the writes.

        Raises:
            StorageError: the storage is not open.
        """
        return await self._reader.run(fn)

    async def schema_version(self) -> int:
        """The number of schema migrations the file has had."""
        return await self._writer.run(schema_version)

    async def note_start(self, now: datetime) -> datetime:
        """Record the gateway's first start unless one is recorded; returns the recorded one.

        A file that already holds data without a record (taken over from an older gateway, or
        tokens issued before the first start) counts its oldest stored fact as the first start:
        the install is at least that old.
        """

        def note(db: sqlite3.Connection) -> str:
            with write_transaction(db):
                row = db.execute("SELECT value FROM meta WHERE key = ?", (_FIRST_STARTED,))
                found = row.fetchone()
                if found is not None:
                    return str(found[0])
                first = min([now, *_oldest_facts(db)]).astimezone(UTC)
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                           (_FIRST_STARTED, first.isoformat()))
                return first.isoformat()

        return datetime.fromisoformat(await self._writer.run(note))

    async def first_started_at(self) -> datetime | None:
        """When the gateway first started on this storage (UTC), or None before its first start."""

        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_FIRST_STARTED,)).fetchone()
            return None if row is None else str(row[0])

        value = await self._writer.run(query)
        return None if value is None else datetime.fromisoformat(value)


def _enable_wal(db: sqlite3.Connection, *, timeout_s: float) -> None:
    """Switch the file to WAL, waiting (on this worker thread) while another process holds it.

    Changing the journal mode needs the file to itself and SQLite answers "database is locked"
    at once rather than after its busy timeout: a CLI and a starting gateway opening a new file
    together would otherwise fail one of the two.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        else:
            return


def _oldest_facts(db: sqlite3.Connection) -> list[datetime]:
    """The earliest instant each table holds (for a first start that predates the record)."""
    texts = [  # ISO 8601: the journal's and identities' in UTC, settings' in any offset
        db.execute("SELECT min(received_at) FROM command_journal").fetchone()[0],
        db.execute("SELECT min(learned_at) FROM device_identity").fetchone()[0],
        *(row[0] for row in db.execute("SELECT updated_at FROM site_settings")),
    ]
    stamps = [  # unix seconds
        db.execute("SELECT min(issued_at) FROM issued_tokens").fetchone()[0],
        db.execute("SELECT min(start) FROM energy_5min").fetchone()[0],
        db.execute("SELECT min(started_at) FROM outages").fetchone()[0],
    ]
    found = [datetime.fromtimestamp(s, UTC) for s in stamps if s is not None]
    for text in texts:
        with contextlib.suppress(TypeError, ValueError):
            found.append(datetime.fromisoformat(text))
    return [f for f in found if f.tzinfo is not None]
