"""Storm watch rows of the storage: each source's latest alerts per site, and storm-mode episodes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import orjson

from gateway.core.storm import (
    FeedError,
    StormAlert,
    StormEpisode,
    alerts_from_json,
    alerts_to_json,
)
from gateway.runtime.storage.db import Storage


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _episode(row: tuple[float, float | None, str, str, float | None, float | None]) -> StormEpisode:
    start, end, event, source, onset, ends = row
    return StormEpisode(datetime.fromtimestamp(start, UTC), _dt(end), event, source, _dt(onset),
                        _dt(ends))


_COLUMNS = ("SELECT started_at, ended_at, event, source, alert_onset, alert_ends "
            "FROM storm_episodes ")


class StormStore:
    """Storm watch state on the storage's writer (each call one short statement)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def save_source(
        self, site_id: int, source: str, alerts: tuple[StormAlert, ...], now: datetime,
    ) -> None:
        """Keep a source's latest alerts (replacing what it said before)."""
        blob = orjson.dumps(alerts_to_json(alerts)).decode()

        def _save(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO storm_sources VALUES (?, ?, ?, ?) ON CONFLICT(site_id, source) "
                "DO UPDATE SET alerts = excluded.alerts, updated_at = excluded.updated_at",
                (site_id, source, blob, now.astimezone(UTC).isoformat()))

        await self._storage.write(_save)

    async def load_sources(self, site_id: int) -> dict[str, tuple[StormAlert, ...]]:
        """Every source's last alerts for the site (a row that cannot be read is left out)."""

        def _load(db: sqlite3.Connection) -> list[tuple[str, str]]:
            return db.execute("SELECT source, alerts FROM storm_sources WHERE site_id = ?",
                              (site_id,)).fetchall()

        out: dict[str, tuple[StormAlert, ...]] = {}
        for source, blob in await self._storage.write(_load):
            try:
                out[source] = alerts_from_json(orjson.loads(blob))
            except (orjson.JSONDecodeError, FeedError):
                continue
        return out

    async def open_episode(self, site_id: int, episode: StormEpisode) -> None:
        """Record that storm mode became active (a no-op while one is open)."""

        def _open(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO storm_episodes (site_id, started_at, event, source, alert_onset, "
                "alert_ends) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (site_id, episode.start.timestamp(), episode.event, episode.source,
                 _ts(episode.alert_onset), _ts(episode.alert_ends)))

        await self._storage.write(_open)

    async def close_episode(self, site_id: int, end: datetime) -> None:
        """Record that storm mode ended."""

        def _close(db: sqlite3.Connection) -> None:
            db.execute("UPDATE storm_episodes SET ended_at = max(started_at, ?) "
                       "WHERE site_id = ? AND ended_at IS NULL", (end.timestamp(), site_id))

        await self._storage.write(_close)

    async def open_episode_of(self, site_id: int) -> StormEpisode | None:
        """The site's episode still open (to resume after a restart)."""
        found = await self.episodes(site_id, None, None, open_only=True)
        return found[0] if found else None

    async def recent_episodes(self, site_id: int, count: int) -> list[StormEpisode]:
        """The site's last ``count`` episodes, newest first."""

        def _query(db: sqlite3.Connection) -> list[tuple[float, float | None, str, str,
                                                         float | None, float | None]]:
            return db.execute(_COLUMNS + "WHERE site_id = ? ORDER BY started_at DESC LIMIT ?",
                              (site_id, count)).fetchall()

        return [_episode(row) for row in await self._storage.read(_query)]

    async def episodes(
        self, site_id: int, start: datetime | None, end: datetime | None, *,
        open_only: bool = False, limit: int = 10_000,
    ) -> list[StormEpisode]:
        """Episodes overlapping ``[start, end)`` (None: unbounded), oldest first, at most ``limit``."""
        lo = float("-inf") if start is None else start.timestamp()
        hi = float("inf") if end is None else end.timestamp()

        def _query(db: sqlite3.Connection) -> list[tuple[float, float | None, str, str,
                                                         float | None, float | None]]:
            if open_only:
                return db.execute(_COLUMNS + "WHERE site_id = ? AND ended_at IS NULL LIMIT 1",
                                  (site_id,)).fetchall()
            return db.execute(
                _COLUMNS + "WHERE site_id = ? AND started_at < ? "
                "AND (ended_at IS NULL OR ended_at >= ?) ORDER BY started_at LIMIT ?",
                (site_id, hi, lo, limit)).fetchall()

        return [_episode(row) for row in await self._storage.read(_query)]
