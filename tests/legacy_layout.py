"""The two-file layout as the previous gateway wrote it: its SQL, copied verbatim, and sample rows.

gateway.sqlite3 at schema version 2 (settings, journal with ``changes``, device identities) plus
the ``issued_tokens`` table the token registry added to it, and history.sqlite3 at its own
schema version 1 or 2 (5-minute buckets and outages; 2 added hourly totals). Fixtures for the
tests that the storage takes both in, and loses nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

# ---- the old code's SQL, unchanged ------------------------------------------------------------

# gateway/runtime/store.py, SCHEMA_VERSION = 2
OLD_STORE_SCHEMA: Final = """
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
    changes TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    detail TEXT NOT NULL DEFAULT '',
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS command_journal_received ON command_journal (received_at);
CREATE TABLE IF NOT EXISTS device_identity (
    energy_site_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    identity TEXT NOT NULL,
    learned_at TEXT NOT NULL,
    PRIMARY KEY (energy_site_id, device)
);
"""
OLD_STORE_VERSION: Final = 2

# gateway/runtime/tokens.py
OLD_TOKENS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS issued_tokens (
    jti TEXT PRIMARY KEY,
    sub TEXT NOT NULL,
    scopes TEXT NOT NULL,
    sites TEXT NOT NULL,
    plan TEXT,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS issued_tokens_revoked ON issued_tokens (revoked_at, expires_at);
"""

# gateway/runtime/history_store.py, _MIGRATIONS (one script per schema version)
OLD_HISTORY_MIGRATIONS: Final = (
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
_OLD_FLOWS: Final = (
    "solar_to_home", "solar_to_battery", "solar_to_grid", "battery_to_home", "battery_to_grid",
    "grid_to_home", "grid_to_battery",
)


def _old_upsert_add(table: str, key: str) -> str:
    return (
        f"INSERT INTO {table} (site_id, {key}, {', '.join(_OLD_FLOWS)}) "  # noqa: S608
        f"VALUES (?, ?, {', '.join('?' * len(_OLD_FLOWS))}) "
        f"ON CONFLICT (site_id, {key}) DO UPDATE SET "
        + ", ".join(f"{flow} = {flow} + excluded.{flow}" for flow in _OLD_FLOWS)
    )


# ---- sample rows ----------------------------------------------------------------------------

T0: Final = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class OldRows:
    """What the old files hold, table by table, as sorted tuples (to compare with the new file)."""

    settings: list[tuple[Any, ...]]
    journal: list[tuple[Any, ...]]
    identities: list[tuple[Any, ...]]
    tokens: list[tuple[Any, ...]]
    buckets: list[tuple[Any, ...]]
    hours: list[tuple[Any, ...]]  # what the hourly totals must be (old v2 rows, or their sums)
    outages: list[tuple[Any, ...]]


def settings_rows() -> list[tuple[int, str, str]]:
    """Two sites' desired settings as the old Store wrote them (JSON text, ISO time)."""
    return [
        (1001, orjson.dumps({"backup_reserve_pct": 47, "operation_mode": "autonomous"}).decode(),
         T0.isoformat()),
        (1002, orjson.dumps({"backup_reserve_pct": 12}).decode(), T0.isoformat()),
    ]


def write_old_gateway_db(path: Path, settings: list[tuple[int, str, str]] | None = None) -> None:
    """gateway.sqlite3 of the two-file layout, written with the old code's SQL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(OLD_STORE_SCHEMA)
        db.execute("INSERT INTO schema_version VALUES (?)", (OLD_STORE_VERSION,))
        for row in settings if settings is not None else settings_rows():
            db.execute("INSERT INTO site_settings VALUES (?, ?, ?) ON CONFLICT(energy_site_id) "
                       "DO UPDATE SET settings = excluded.settings, "
                       "updated_at = excluded.updated_at", row)
        for i, (status, detail) in enumerate([("confirmed", ""), ("rejected", "refused"),
                                              ("kept", "offline"), ("pending", "")]):
            received = (T0 + timedelta(minutes=i)).astimezone(UTC).isoformat()
            cur = db.execute(
                "INSERT INTO command_journal (energy_site_id, command, changes, received_at) "
                "VALUES (?, ?, ?, ?)",
                (1001, "backup", orjson.dumps({"backup_reserve_pct": 40 + i}).decode(), received))
            if status != "pending":
                db.execute("UPDATE command_journal SET status = ?, detail = ?, finished_at = ? "
                           "WHERE id = ?", (status, detail, received, cur.lastrowid))
        for site, device in ((1001, "inverter"), (1002, "gx")):
            db.execute("INSERT INTO device_identity VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(energy_site_id, device) DO UPDATE SET "
                       "identity = excluded.identity, learned_at = excluded.learned_at",
                       (site, device, orjson.dumps({"type": "sunspec", "info": {"serial": device},
                                                    "capabilities": ["battery"]}).decode(),
                        (T0 - timedelta(days=3)).isoformat()))
        issued = int(T0.timestamp()) - 86_400 * 10
        record_old_token(db, "jti-kept", "ha", issued, issued + 86_400 * 365, None, sites="*")
        record_old_token(db, "jti-revoked", "old-phone", issued, issued + 86_400 * 365, issued,
                         sites=[1001])
    finally:
        db.close()


def record_old_token(
    db: sqlite3.Connection, jti: str, sub: str, issued_at: int, expires_at: int,
    revoked_at: int | None, *, sites: str | list[int],
) -> None:
    """An issued token as the old registry recorded (and revoked) it in gateway.sqlite3."""
    db.executescript(OLD_TOKENS_SCHEMA)
    db.execute(
        "INSERT INTO issued_tokens (jti, sub, scopes, sites, plan, issued_at, "
        "expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        (jti, sub, '["energy_device_data"]', orjson.dumps(sites).decode(), None, issued_at,
         expires_at))
    if revoked_at is not None:
        db.execute("UPDATE issued_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE jti = ?",
                   (revoked_at, jti))


def old_buckets() -> list[tuple[Any, ...]]:
    """Five-minute buckets of two sites over 30 hours, some missing, as the old store kept them."""
    rows = []
    for site in ("1001", "1002"):
        for i in range(30 * 12):
            if i % 7 == 3:
                continue  # gaps, as a gateway that was down leaves them
            start = int(T0.timestamp()) + i * 300
            rows.append((site, start, *(float(i % 13 + k) / 4 for k in range(7))))
    return rows


def write_old_history_db(path: Path, version: int, *, crashed: bool = False) -> None:
    """history.sqlite3 of the two-file layout at its schema ``version`` (1 or 2), old SQL.

    ``crashed``: the last writes are left in the file's WAL, as a killed gateway leaves them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".writing")
    db = sqlite3.connect(scratch, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # a crash copy keeps the rows in the WAL
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for done, script in enumerate(OLD_HISTORY_MIGRATIONS[:version], start=1):
            db.execute("BEGIN")
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (done,))
            db.execute("COMMIT")
        db.execute("BEGIN")
        rows = old_buckets()
        db.executemany(_old_upsert_add("energy_5min", "start"), rows)
        if version >= 2:
            db.executemany(_old_upsert_add("energy_1h", "hour"),
                           [(r[0], r[1] - r[1] % 3600, *r[2:]) for r in rows])
        for site, hours_in, minutes in (("1001", 2, 7), ("1001", 20, 45), ("1002", 5, 30)):
            started = T0.timestamp() + hours_in * 3600
            db.execute("INSERT INTO outages (site_id, started_at) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING", (site, started))
            db.execute("UPDATE outages SET ended_at = max(started_at, ?) "
                       "WHERE site_id = ? AND ended_at IS NULL", (started + minutes * 60, site))
        # the grid of site 1001 is down as the old gateway stops: an open outage
        db.execute("INSERT INTO outages (site_id, started_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   ("1001", T0.timestamp() + 29 * 3600))
        db.execute("COMMIT")
        if crashed:  # copied while the connection is open: the WAL holds the rows
            shutil.copy(scratch, path)
            shutil.copy(scratch.with_name(scratch.name + "-wal"), path.with_name(path.name + "-wal"))
    finally:
        db.close()
    if not crashed:
        scratch.rename(path)
    for leftover in (scratch, scratch.with_name(scratch.name + "-wal"),
                     scratch.with_name(scratch.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def dump(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a query against the file at ``path``, sorted."""
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute(sql).fetchall())
    finally:
        db.close()


def old_rows(gateway_db: Path, history_db: Path) -> OldRows:
    """Every row of both old files (read before the migration), table by table."""
    version = dump(history_db, "SELECT max(version) FROM schema_version")[0][0]
    flows = ", ".join(_OLD_FLOWS)
    sums = ", ".join(f"sum({flow})" for flow in _OLD_FLOWS)
    hours = (f"SELECT site_id, hour, {flows} FROM energy_1h" if version >= 2 else  # noqa: S608
             f"SELECT site_id, start - start % 3600, {sums} FROM energy_5min GROUP BY 1, 2")  # noqa: S608
    return OldRows(
        settings=dump(gateway_db, "SELECT * FROM site_settings"),
        journal=dump(gateway_db, "SELECT * FROM command_journal"),
        identities=dump(gateway_db, "SELECT * FROM device_identity"),
        tokens=dump(gateway_db, "SELECT * FROM issued_tokens"),
        buckets=dump(history_db, f"SELECT site_id, start, {flows} FROM energy_5min"),  # noqa: S608
        hours=dump(history_db, hours),
        outages=dump(history_db, "SELECT site_id, started_at, ended_at FROM outages"),
    )
