"""The storage's schema: one ordered list of migrations, applied in order, each all or nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Final

#: A journal entry's recorded changes never exceed this (they are summaries, not request bodies).
JOURNAL_CHANGES_MAX_BYTES: Final = 1024

Migration = Callable[[sqlite3.Connection], None]


def _script(db: sqlite3.Connection, script: str) -> None:
    # statement by statement: executescript would commit the migration's transaction first
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


# Versions 1 and 2 are the ones gateway.sqlite3 had before it held everything: a database of
# that era carries its number in the same schema_version table and continues from there. Their
# tables are created "IF NOT EXISTS" because a database of that era may hold some of them
# already (`token issue` created issued_tokens in a file of its own making).


def _v1_settings_and_journal(db: sqlite3.Connection) -> None:
    """Desired settings per site and the command journal (as first kept: whole bodies)."""
    _script(db, """
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
        )
    """)


def _v2_bounded_journal_and_identities(db: sqlite3.Connection) -> None:
    """The journal keeps bounded ``changes`` instead of bodies; learned device identities."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(command_journal)")}
    if "body" in columns:
        db.execute("ALTER TABLE command_journal RENAME COLUMN body TO changes")
        db.execute(
            "UPDATE command_journal SET changes = '{\"dropped_bytes\": ' || length(changes) || '}' "
            "WHERE length(changes) > ?", (JOURNAL_CHANGES_MAX_BYTES,))
    _script(db, """
        CREATE TABLE IF NOT EXISTS site_settings (
            energy_site_id INTEGER PRIMARY KEY,
            settings TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS command_journal_received ON command_journal (received_at);
        CREATE TABLE IF NOT EXISTS device_identity (
            energy_site_id INTEGER NOT NULL,
            device TEXT NOT NULL,
            identity TEXT NOT NULL,
            learned_at TEXT NOT NULL,
            PRIMARY KEY (energy_site_id, device)
        )
    """)


def _v3_issued_tokens(db: sqlite3.Connection) -> None:
    """Issued tokens (their claims, never the token) and their revocation."""
    _script(db, """
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
        CREATE INDEX IF NOT EXISTS issued_tokens_revoked ON issued_tokens (revoked_at, expires_at)
    """)


ENERGY_FLOWS: Final = (
    "solar_to_home", "solar_to_battery", "solar_to_grid", "battery_to_home", "battery_to_grid",
    "grid_to_home", "grid_to_battery",
)


def _energy_table(name: str, key: str) -> str:
    flows = ",\n".join(f"{flow} REAL NOT NULL DEFAULT 0" for flow in ENERGY_FLOWS)
    return (f"CREATE TABLE {name} (site_id TEXT NOT NULL, {key} INTEGER NOT NULL, {flows}, "
            f"PRIMARY KEY (site_id, {key})) WITHOUT ROWID")


def _v4_history(db: sqlite3.Connection) -> None:
    """Energy per 5-minute bucket and per UTC hour, and grid outages (history.sqlite3 until now).

    The hourly table holds the same energy as the 5-minute one, kept with every bucket write, so
    a day, month or lifetime of history is summed from 12x fewer rows.
    """
    db.execute(_energy_table("energy_5min", "start"))
    db.execute(_energy_table("energy_1h", "hour"))
    _script(db, """
        CREATE TABLE outages (
            id INTEGER PRIMARY KEY,
            site_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE INDEX outages_by_start ON outages (site_id, started_at);
        CREATE UNIQUE INDEX outages_one_open ON outages (site_id) WHERE ended_at IS NULL
    """)


def _v5_meta(db: sqlite3.Connection) -> None:
    """Facts about the storage itself: the first start, a history file already taken in."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")


def _v6_token_env(db: sqlite3.Connection) -> None:
    """Which environment an issued token is for: live (every token before) or test (sandbox)."""
    db.execute("ALTER TABLE issued_tokens ADD COLUMN env TEXT NOT NULL DEFAULT 'live'")
def _v7_charge_sessions(db: sqlite3.Connection) -> None:
    """OCPP transactions of the sites' chargers: open ones (no ``stopped_at``) and finished
    sessions; ``id`` is the transactionId the central system hands out (never reused)."""
    _script(db, """
        CREATE TABLE charge_sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            site_id TEXT NOT NULL,
            charge_point_id TEXT NOT NULL,
            connector_id INTEGER NOT NULL,
            id_tag TEXT NOT NULL,
            stamped_start TEXT NOT NULL,
            started_at REAL NOT NULL,
            meter_start_wh REAL NOT NULL,
            stopped_at REAL,
            meter_stop_wh REAL,
            stop_reason TEXT
        );
        CREATE UNIQUE INDEX charge_sessions_replay
            ON charge_sessions (charge_point_id, connector_id, stamped_start, meter_start_wh);
        CREATE INDEX charge_sessions_site_start ON charge_sessions (site_id, started_at)
    """)


def _v8_storm_watch(db: sqlite3.Connection) -> None:
    """Storm watch: each alert source's latest alerts per site (a restart mid-storm keeps them),
    and the episodes storm mode was active (the backup history shows them with outages)."""
    _script(db, """
        CREATE TABLE storm_sources (
            site_id INTEGER NOT NULL,
            source TEXT NOT NULL,
            alerts TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (site_id, source)
        ) WITHOUT ROWID;
        CREATE TABLE storm_episodes (
            id INTEGER PRIMARY KEY,
            site_id INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            event TEXT NOT NULL,
            source TEXT NOT NULL,
            alert_onset REAL,
            alert_ends REAL
        );
        CREATE INDEX storm_episodes_by_start ON storm_episodes (site_id, started_at);
        CREATE UNIQUE INDEX storm_episodes_one_open ON storm_episodes (site_id)
            WHERE ended_at IS NULL
    """)


def _v9_uplink(db: sqlite3.Connection) -> None:
    """The uplink's memory: command ids it has seen (and their outcome), history sent per site."""
    _script(db, """
        CREATE TABLE uplink_commands (
            command_id TEXT PRIMARY KEY,
            site_id INTEGER NOT NULL,
            command TEXT NOT NULL,
            received_at REAL NOT NULL,
            status INTEGER,
            body TEXT,
            published INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX uplink_commands_received ON uplink_commands (received_at);
        CREATE TABLE uplink_history_sent (
            site_id INTEGER PRIMARY KEY,
            sent_until REAL NOT NULL
        )
    """)


def _v10_planner_state(db: sqlite3.Connection) -> None:
    """What each site's planner learned (load and PV profiles, PV correction), kept across restarts."""
    _script(db, """
        CREATE TABLE planner_state (
            site_id INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            saved_at REAL NOT NULL
        )
    """)


#: Every migration in order; a database records how many it has had (``schema_version``).
MIGRATIONS: Final[tuple[Migration, ...]] = (
    _v1_settings_and_journal,
    _v2_bounded_journal_and_identities,
    _v3_issued_tokens,
    _v4_history,
    _v5_meta,
    _v6_token_env,
    _v7_charge_sessions,
    _v8_storm_watch,
    _v9_uplink,
    _v10_planner_state,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class NewerSchema(Exception):
    """The database was written by a gateway that knows more migrations than this one."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def schema_version(db: sqlite3.Connection) -> int:
    """The number of migrations the database has had (0: none, or no database yet)."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = 'schema_version'").fetchone()
    if exists is None:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return 0 if row[0] is None else int(row[0])


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction that holds the write lock from its start (other processes wait)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> list[int]:
    """Apply the migrations the database lacks, each in its own write transaction.

    Safe against a second process opening the same file at the same moment (the CLI beside a
    starting gateway): each step takes the write lock, then re-reads the version.

    Returns:
        The versions applied (empty when the database was current).

    Raises:
        NewerSchema: the database has more migrations than this code knows.
    """
    applied: list[int] = []
    while True:
        with write_transaction(db):
            version = schema_version(db)
            if version > SCHEMA_VERSION:
                raise NewerSchema(version)
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](db)
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
        if version == SCHEMA_VERSION:
            return applied
        applied.append(version + 1)
