"""Taking in the history file of the two-file layout (history.sqlite3) and putting it aside."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.runtime.storage.schema import ENERGY_FLOWS, write_transaction

#: The history database of gateways that kept two files, and what it is renamed to once taken in.
HISTORY_FILE: Final = "history.sqlite3"
MIGRATED_SUFFIX: Final = ".migrated"
_KNOWN_VERSIONS: Final = (1, 2)  # its own numbering: 2 added the hourly totals
_MARK: Final = "history_file_taken_in"
_FLOWS: Final = ", ".join(ENERGY_FLOWS)
_ADD: Final = ", ".join(f"{flow} = {flow} + excluded.{flow}" for flow in ENERGY_FLOWS)


class LegacyError(Exception):
    """The old history file cannot be taken in (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class TakenIn:
    """What was taken in from the old history file, and where the file went."""

    buckets: int
    hours: int
    outages: int
    renamed_to: Path


def _fingerprint(path: Path) -> tuple[int, str]:
    """The old file's version and a summary of its rows (to recognise it after a crash)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        try:
            if old.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                return 0, "empty"  # created, never written (a gateway stopped as it started)
            version = int(old.execute("SELECT max(version) FROM schema_version").fetchone()[0])
            buckets = old.execute("SELECT count(*), max(start) FROM energy_5min").fetchone()
            outages = old.execute("SELECT count(*), max(id) FROM outages").fetchone()
        except (sqlite3.Error, TypeError) as exc:
            raise LegacyError(f"{path} is not a history database this gateway knows ({exc}); "
                              f"move it out of gateway.data_dir to start without it") from None
        # Closing the last connection folds its WAL (a crashed gateway's last writes) into the
        # file, so the file alone holds everything when it is renamed.
    if version not in _KNOWN_VERSIONS:
        raise LegacyError(f"{path} has history schema version {version}, which this gateway "
                          f"does not know (it knows {' and '.join(map(str, _KNOWN_VERSIONS))}); "
                          "move it out of gateway.data_dir to start without it")
    return version, f"v{version}:{buckets[0]}:{buckets[1]}:{outages[0]}:{outages[1]}"


def _free_name(path: Path) -> Path:
    target = path.with_name(path.name + MIGRATED_SUFFIX)
    n = 1
    while target.exists():  # an earlier migration's file is kept as it is
        target = path.with_name(f"{path.name}{MIGRATED_SUFFIX}.{n}")
        n += 1
    return target


def take_in_history_file(db: sqlite3.Connection, data_dir: Path) -> TakenIn | None:
    """Copy every row of ``data_dir/history.sqlite3`` into ``db``, then rename that file.

    The copy is one transaction, marked in ``meta`` with the file's fingerprint: a crash before
    the rename leaves the mark, and the next start renames the file without adding it twice.
    Energy is added to rows already there (the upsert the history writes use), so a history
    file that a downgraded gateway wrote after a first migration is taken in too.

    Returns:
        What was taken in, or None without an old history file.

    Raises:
        LegacyError: the file is not a history database of a known version.
    """
    path = data_dir / HISTORY_FILE
    if not path.exists():
        return None
    version, fingerprint = _fingerprint(path)
    counts = (0, 0, 0)
    db.execute("ATTACH DATABASE ? AS legacy", (str(path),))
    try:
        with write_transaction(db):
            mark = db.execute("SELECT value FROM meta WHERE key = ?", (_MARK,)).fetchone()
            if version and (mark is None or mark[0] != fingerprint):
                counts = _copy(db, version)
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                           "DO UPDATE SET value = excluded.value", (_MARK, fingerprint))
    finally:
        db.execute("DETACH DATABASE legacy")
    target = _free_name(path)
    path.rename(target)
    for extra in ("-wal", "-shm"):  # left only if the old file could not be checkpointed
        side = path.with_name(path.name + extra)
        if side.exists():
            side.rename(target.with_name(target.name + extra))
    return TakenIn(*counts, renamed_to=target)


def _copy(db: sqlite3.Connection, version: int) -> tuple[int, int, int]:
    """The old rows into the new tables (inside the caller's transaction); rows copied."""
    # "WHERE true": an INSERT ... SELECT with an upsert needs a WHERE to parse unambiguously
    buckets = db.execute(
        f"INSERT INTO energy_5min (site_id, start, {_FLOWS}) "  # noqa: S608 - constants
        f"SELECT site_id, start, {_FLOWS} FROM legacy.energy_5min WHERE true "
        f"ON CONFLICT (site_id, start) DO UPDATE SET {_ADD}").rowcount
    if version >= 2:
        hours_from = f"SELECT site_id, hour, {_FLOWS} FROM legacy.energy_1h WHERE true"  # noqa: S608
    else:  # version 1 had no hourly totals: sum them now; floor(start / 3600) before 1970 too
        sums = ", ".join(f"sum({flow})" for flow in ENERGY_FLOWS)
        hours_from = (f"SELECT site_id, start - ((start % 3600) + 3600) % 3600, {sums} "  # noqa: S608
                      "FROM legacy.energy_5min WHERE true GROUP BY 1, 2")
    hours = db.execute(
        f"INSERT INTO energy_1h (site_id, hour, {_FLOWS}) {hours_from} "
        f"ON CONFLICT (site_id, hour) DO UPDATE SET {_ADD}").rowcount
    # an open outage the new file already has for a site wins over the old file's one
    outages = db.execute(
        "INSERT INTO outages (site_id, started_at, ended_at) SELECT site_id, started_at, "
        "ended_at FROM legacy.outages WHERE true ORDER BY id ON CONFLICT DO NOTHING").rowcount
    return buckets, hours, outages
