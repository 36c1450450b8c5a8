"""The hub's PostgreSQL state: migrations, site registry, command journal, latest state, history."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import structlog

from gateway.core.uplink.contract import ChargeEntry, HistoryBucket, OutageEntry
from gateway.runtime.storage.tokens import IssuedToken

log = structlog.get_logger("gateway.hub.db")

FLOWS: Final = ("solar_to_home", "solar_to_battery", "solar_to_grid", "battery_to_home",
                "battery_to_grid", "grid_to_home", "grid_to_battery")
_MIGRATE_LOCK: Final = 0x6567_7768  # pg_advisory_xact_lock key: replicas migrate one at a time

_FLOW_COLUMNS = ", ".join(f"{f} double precision NOT NULL DEFAULT 0" for f in FLOWS)

#: Every migration in order (the count applied is in hub_schema_version); append, never edit.
MIGRATIONS: Final[tuple[str, ...]] = (
    f"""
    CREATE TABLE hub_gateways (
        gateway_id text PRIMARY KEY,
        online boolean NOT NULL,
        sites bigint[] NOT NULL DEFAULT '{{}}',
        presence_at double precision NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE hub_sites (
        site_id bigint PRIMARY KEY,
        gateway_id text NOT NULL,
        conflict_gateway text,
        products jsonb,
        site_info jsonb,
        info_at double precision,
        live jsonb,
        live_offline text,
        live_at double precision,
        learned_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE hub_commands (
        command_id text PRIMARY KEY,
        site_id bigint NOT NULL,
        gateway_id text NOT NULL,
        command text NOT NULL,
        body jsonb NOT NULL,
        token_sub text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        expires_at double precision NOT NULL,
        status integer,
        response jsonb,
        finished_at timestamptz
    );
    CREATE INDEX hub_commands_site ON hub_commands (site_id, received_at);
    CREATE TABLE hub_energy_5min (site_id bigint NOT NULL, start double precision NOT NULL,
        {_FLOW_COLUMNS}, PRIMARY KEY (site_id, start));
    CREATE TABLE hub_energy_1h (site_id bigint NOT NULL, hour double precision NOT NULL,
        {_FLOW_COLUMNS}, PRIMARY KEY (site_id, hour))
    """,
    """
    CREATE TABLE hub_outages (site_id bigint NOT NULL, start double precision NOT NULL,
        "end" double precision, PRIMARY KEY (site_id, start))
    """,
    """
    CREATE TABLE hub_tokens (jti text PRIMARY KEY, sub text NOT NULL, scopes text[] NOT NULL,
        sites bigint[], plan text, env text NOT NULL DEFAULT 'live', issued_at bigint NOT NULL,
        expires_at bigint NOT NULL, revoked_at bigint);
    CREATE INDEX hub_tokens_revoked ON hub_tokens (expires_at) WHERE revoked_at IS NOT NULL
    """,
    """
    CREATE TABLE hub_charge_sessions (site_id bigint NOT NULL, start double precision NOT NULL,
        duration_s double precision NOT NULL, energy_wh double precision NOT NULL,
        PRIMARY KEY (site_id, start))
    """,
    """
    ALTER TABLE hub_commands ADD COLUMN swept boolean NOT NULL DEFAULT false;
    CREATE INDEX hub_commands_open ON hub_commands (expires_at) WHERE status IS NULL
    """,
)


Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class SiteRow:
    """A registered site and what the hub knows of it now."""

    site_id: int
    gateway_id: str
    conflict_gateway: str | None
    products: dict[str, Any] | None
    site_info: dict[str, Any] | None
    live: dict[str, Any] | None
    live_offline: str | None
    live_at: float | None
    gateway_online: bool
    presence_at: float | None


@dataclass(frozen=True, slots=True)
class CommandRow:
    """A command journal entry."""

    command_id: str
    site_id: int
    gateway_id: str
    command: str
    body: dict[str, Any]
    status: int | None
    response: dict[str, Any] | None


async def _json_codec(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _tls(dsn: str) -> tuple[str, ssl.SSLContext | bool]:
    """The password and TLS of ``dsn``, settled once, so that asyncpg reads no file per connection.

    asyncpg looks for ~/.pgpass and certificate files on every connect (blocking the loop) unless
    both are given: the password comes from the DSN or PGPASSWORD; TLS from the DSN's
    ``sslmode`` (``require``/``verify-ca``/``verify-full``, CA from ``sslrootcert``), off when absent.
    """
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(dsn).query))
    password = urllib.parse.unquote(urllib.parse.urlsplit(dsn).password or "") or \
        os.environ.get("PGPASSWORD", "")
    mode = query.get("sslmode", "disable")
    if mode in {"disable", "allow", "prefer"}:
        return password, False
    context = ssl.create_default_context(cafile=query.get("sslrootcert"))
    if mode != "verify-full":
        context.check_hostname = False
    if mode == "require":
        context.verify_mode = ssl.CERT_NONE
    return password, context


async def connect(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool on ``dsn`` with jsonb as Python values; migrations applied."""
    password, tls = await asyncio.to_thread(_tls, dsn)
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                                   init=_json_codec, password=password, ssl=tls)
    try:
        await migrate(pool)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the migrations the database lacks, under an advisory lock (replicas start together)."""
    applied = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS hub_schema_version (version integer NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM hub_schema_version") or 0
        if version > len(MIGRATIONS):
            raise RuntimeError(f"hub database schema {version} is newer than this hub's "
                               f"({len(MIGRATIONS)})")
        for number in range(version + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[number - 1])
            applied.append(number)
        if applied:
            await conn.execute("DELETE FROM hub_schema_version")
            await conn.execute("INSERT INTO hub_schema_version VALUES ($1)", len(MIGRATIONS))
    if applied:
        log.info("hub.db_migrated", versions=applied)
    return applied


class HubStore:
    """The hub's queries; every replica shares them through PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ---- registry and presence -----------------------------------------------------------------

    async def presence(self, gateway_id: str, *, online: bool, sites: Sequence[int],
                       at: float) -> list[tuple[int, str]]:
        """Record a gateway's presence and claim its sites; (site, owner) of sites another owns."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO hub_gateways (gateway_id, online, sites, presence_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (gateway_id) DO UPDATE SET "
                "online = excluded.online, sites = CASE WHEN excluded.online THEN excluded.sites "
                "ELSE hub_gateways.sites END, presence_at = excluded.presence_at, updated_at = now() "
                "WHERE hub_gateways.presence_at <= excluded.presence_at",
                gateway_id, online, list(sites), at)
            if not online:
                return []
            return await self._claim(conn, gateway_id, sites)

    @staticmethod
    async def _claim(conn: Conn, gateway_id: str, sites: Sequence[int]) -> list[tuple[int, str]]:
        await conn.executemany(
            "INSERT INTO hub_sites (site_id, gateway_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(s, gateway_id) for s in sites])
        rows = await conn.fetch("SELECT site_id, gateway_id FROM hub_sites WHERE site_id = ANY($1) "
                                "AND gateway_id <> $2", list(sites), gateway_id)
        taken = [(int(r["site_id"]), str(r["gateway_id"])) for r in rows]
        if taken:
            await conn.executemany(
                "UPDATE hub_sites SET conflict_gateway = $2 WHERE site_id = $1",
                [(s, gateway_id) for s, _ in taken])
        return taken

    async def resolve(self, site_id: int, gateway_id: str) -> tuple[str, str | None] | None:
        """Settle who owns a site: ``gateway_id`` (its owner or the gateway that also claimed
        it). A change of owner drops what the hub holds from the old one (products, site_info,
        live status) until the new one publishes. Returns the (owner, other claimant) it had,
        None for an unknown site; ValueError when ``gateway_id`` claimed no such site."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT gateway_id, conflict_gateway FROM hub_sites "
                                      "WHERE site_id = $1 FOR UPDATE", site_id)
            if row is None:
                return None
            before = (str(row["gateway_id"]), row["conflict_gateway"])
            if gateway_id not in before:
                raise ValueError(f"gateway {gateway_id} has not claimed site {site_id} (its "
                                 f"claimants: {', '.join(g for g in before if g)})")
            if gateway_id == before[0]:
                await conn.execute("UPDATE hub_sites SET conflict_gateway = NULL WHERE site_id = $1",
                                   site_id)
            else:
                await conn.execute(
                    "UPDATE hub_sites SET gateway_id = $2, conflict_gateway = NULL, products = NULL, "
                    "site_info = NULL, info_at = NULL, live = NULL, live_offline = NULL, "
                    "live_at = NULL, learned_at = now() WHERE site_id = $1", site_id, gateway_id)
            return before

    async def owner(self, site_id: int) -> str | None:
        """The gateway a site is registered to."""
        value: str | None = await self.pool.fetchval(
            "SELECT gateway_id FROM hub_sites WHERE site_id = $1", site_id)
        return value

    async def save_info(self, site_id: int, gateway_id: str, products: dict[str, Any],
                        site_info: dict[str, Any] | None, at: float) -> bool:
        """Store a site's description (False: the site is not this gateway's)."""
        done = await self.pool.execute(
            "UPDATE hub_sites SET products = $3, site_info = $4, info_at = $5 WHERE site_id = $1 "
            "AND gateway_id = $2 AND (info_at IS NULL OR info_at <= $5)",
            site_id, gateway_id, products, site_info, at)
        return done != "UPDATE 0" or await self.owner(site_id) == gateway_id

    async def save_live(self, site_id: int, gateway_id: str, live: dict[str, Any] | None,
                        offline: str | None, at: float) -> bool:
        """Store a site's newest live status (older ones than stored are ignored)."""
        done = await self.pool.execute(
            "UPDATE hub_sites SET live = $3, live_offline = $4, live_at = $5 WHERE site_id = $1 "
            "AND gateway_id = $2 AND (live_at IS NULL OR live_at <= $5)",
            site_id, gateway_id, live, offline, at)
        return done != "UPDATE 0" or await self.owner(site_id) == gateway_id

    async def site(self, site_id: int) -> SiteRow | None:
        """A registered site with its gateway's presence."""
        row = await self.pool.fetchrow(_SITE_SELECT + " WHERE s.site_id = $1", site_id)
        return None if row is None else _site_row(row)

    async def sites(self, ids: Sequence[int] | None = None) -> list[SiteRow]:
        """Every registered site (or those of ``ids``), by id."""
        if ids is None:
            rows = await self.pool.fetch(_SITE_SELECT + " ORDER BY s.site_id")
        else:
            rows = await self.pool.fetch(_SITE_SELECT + " WHERE s.site_id = ANY($1) ORDER BY s.site_id",
                                         list(ids))
        return [_site_row(r) for r in rows]

    async def gateways(self) -> list[dict[str, Any]]:
        """Every gateway seen: id, online, sites, presence time."""
        rows = await self.pool.fetch("SELECT gateway_id, online, sites, presence_at FROM hub_gateways "
                                     "ORDER BY gateway_id")
        return [{"gateway_id": r["gateway_id"], "online": r["online"], "sites": list(r["sites"]),
                 "presence_at": r["presence_at"]} for r in rows]

    async def conflicts(self) -> list[dict[str, Any]]:
        """Sites claimed by two gateways, until an operator resolves them."""
        rows = await self.pool.fetch("SELECT site_id, gateway_id, conflict_gateway FROM hub_sites "
                                     "WHERE conflict_gateway IS NOT NULL ORDER BY site_id")
        return [{"site_id": r["site_id"], "gateways": [r["gateway_id"], r["conflict_gateway"]]}
                for r in rows]

    # ---- the command journal -------------------------------------------------------------------

    async def journal(self, command_id: str, site_id: int, *, command: str, body: dict[str, Any],
                      token_sub: str, expires_at: float) -> tuple[SiteRow | None, CommandRow | None]:
        """Journal a command for ``site_id`` in one round trip, with the site's owner and presence.

        Returns the site (None: unknown) and, when the id was already taken, that entry. Nothing
        is journaled for an unknown site, one claimed twice or one whose gateway is offline.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_JOURNAL, command_id, site_id, command, body, token_sub,
                                      expires_at)
            if row is None:
                return None, None
            site = _site_row(row)
            if row["inserted"] or not site.gateway_online or site.conflict_gateway is not None:
                return site, None
            return site, await self._command(conn, command_id)

    async def command(self, command_id: str) -> CommandRow | None:
        """A journal entry."""
        async with self.pool.acquire() as conn:
            return await self._command(conn, command_id)

    @staticmethod
    async def _command(conn: Conn, command_id: str) -> CommandRow | None:
        row = await conn.fetchrow(
            "SELECT command_id, site_id, gateway_id, command, body, status, response "
            "FROM hub_commands WHERE command_id = $1", command_id)
        if row is None:
            return None
        return CommandRow(row["command_id"], int(row["site_id"]), row["gateway_id"], row["command"],
                          row["body"], row["status"], row["response"])

    async def reopen(self, command_id: str, status: int) -> None:
        """Clear an unsettled outcome (``UNSETTLED``) so the edge's next answer is recorded."""
        await self.pool.execute(
            "UPDATE hub_commands SET status = NULL, response = NULL, finished_at = NULL, "
            "swept = false WHERE command_id = $1 AND status = $2", command_id, status)

    async def sweep(self, before_s: float, status: int, response: dict[str, Any]) -> int:
        """Close entries nobody answered that expired before ``before_s`` (an edge drops an
        expired command unapplied) with ``status``; an outcome that still comes replaces it."""
        done: str = await self.pool.execute(
            "UPDATE hub_commands SET status = $2, response = $3, finished_at = now(), swept = true "
            "WHERE status IS NULL AND expires_at < $1", before_s, status, response)
        return int(done.rsplit(" ", 1)[-1])

    async def outcome(self, command_id: str, gateway_id: str, status: int,
                      response: dict[str, Any]) -> bool | None:
        """Record an edge's outcome: True when recorded now, False when already, None: unsolicited."""
        async with self.pool.acquire() as conn:
            # every replica takes every outcome: one round trip, the first replica records it
            row = await conn.fetchrow(
                "WITH taken AS (UPDATE hub_commands SET status = $3, response = $4, "
                "finished_at = now(), swept = false WHERE command_id = $1 AND gateway_id = $2 "
                "AND (status IS NULL OR swept) RETURNING 1) "
                "SELECT EXISTS (SELECT 1 FROM taken) AS recorded, EXISTS (SELECT 1 "
                "FROM hub_commands WHERE command_id = $1 AND gateway_id = $2) AS known",
                command_id, gateway_id, status, response)
            if row is None or not row["known"]:
                return None
            return bool(row["recorded"])

    # ---- issued tokens (never the tokens themselves) -------------------------------------------

    async def record_token(self, token: IssuedToken) -> None:
        """Remember a token `energy-gateway token issue` signed with the hub's secret."""
        await self.pool.execute(
            "INSERT INTO hub_tokens (jti, sub, scopes, sites, plan, env, issued_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", token.jti, token.sub, list(token.scopes),
            None if token.sites is None else list(token.sites), token.plan, token.env,
            token.issued_at, token.expires_at)

    async def revoke_token(self, jti: str, now_s: float) -> IssuedToken | None:
        """Mark a token revoked; its record, or None when the hub never issued it."""
        row = await self.pool.fetchrow(
            "UPDATE hub_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE jti = $1 "  # noqa: S608 - constant columns
            f"RETURNING {_TOKEN_COLUMNS}", jti, int(now_s))
        return None if row is None else _token(row)

    async def unexpired_tokens(self, now_s: float) -> list[IssuedToken]:
        """Tokens not expired yet (revoked ones included), soonest expiry first."""
        rows = await self.pool.fetch(
            f"SELECT {_TOKEN_COLUMNS} FROM hub_tokens WHERE expires_at > $1 "  # noqa: S608 - constant
            "ORDER BY expires_at, jti", int(now_s))
        return [_token(r) for r in rows]

    async def revoked_jtis(self, now_s: float) -> frozenset[str]:
        """The deny-list: revoked tokens that would otherwise still verify."""
        rows = await self.pool.fetch("SELECT jti FROM hub_tokens WHERE revoked_at IS NOT NULL "
                                     "AND expires_at > $1", int(now_s))
        return frozenset(r["jti"] for r in rows)

    # ---- charging sessions ---------------------------------------------------------------------

    async def save_charges(self, site_id: int, gateway_id: str, sessions: Sequence[ChargeEntry]) -> bool:
        """Store a site's finished charging sessions by start, replacing (False: not the owner's)."""
        return await self._save_owned(
            site_id, gateway_id,
            "INSERT INTO hub_charge_sessions (site_id, start, duration_s, energy_wh) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (site_id, start) DO UPDATE SET "
            "duration_s = excluded.duration_s, energy_wh = excluded.energy_wh",
            [(site_id, c.start, c.duration_s, c.energy_wh) for c in sessions])

    async def charge_sessions(self, site_id: int, start: float | None, end: float | None, *,
                              limit: int) -> list[tuple[float, float, float]]:
        """The first ``limit`` sessions starting in ``[start, end)``: (start, duration_s,
        energy_wh), oldest first."""
        rows = await self.pool.fetch(
            "SELECT start, duration_s, energy_wh FROM hub_charge_sessions WHERE site_id = $1 "
            "AND start >= $2 AND start < $3 ORDER BY start LIMIT $4", site_id,
            -math.inf if start is None else start, math.inf if end is None else end, limit)
        return [(float(r["start"]), float(r["duration_s"]), float(r["energy_wh"])) for r in rows]

    # ---- outages -------------------------------------------------------------------------------

    async def save_outages(self, site_id: int, gateway_id: str, outages: Sequence[OutageEntry]) -> bool:
        """Store a site's outages by start, replacing their ends (False: not the owner's)."""
        return await self._save_owned(
            site_id, gateway_id,
            'INSERT INTO hub_outages (site_id, start, "end") VALUES ($1, $2, $3) '
            'ON CONFLICT (site_id, start) DO UPDATE SET "end" = excluded."end"',
            [(site_id, o.start, o.end) for o in outages])

    async def _save_owned(self, site_id: int, gateway_id: str, upsert: str,
                          rows: Sequence[tuple[Any, ...]]) -> bool:
        """Run ``upsert`` over ``rows`` when ``gateway_id`` owns the site (else False)."""
        if await self.owner(site_id) != gateway_id:
            return False
        if rows:
            await self.pool.executemany(upsert, rows)
        return True

    async def outages_started(self, site_id: int, start: float | None, end: float, *,
                              limit: int) -> list[tuple[float, float | None]]:
        """The first ``limit`` outages starting in ``[start, end)``: (start, end), oldest first."""
        rows = await self.pool.fetch(
            'SELECT start, "end" FROM hub_outages WHERE site_id = $1 AND start >= $2 AND start < $3 '
            "ORDER BY start LIMIT $4", site_id, -math.inf if start is None else start, end, limit)
        return [(float(r["start"]), None if r["end"] is None else float(r["end"])) for r in rows]

    # ---- history -------------------------------------------------------------------------------

    async def add_history(self, site_id: int, gateway_id: str, buckets: Sequence[HistoryBucket]) -> bool:
        """Store closed buckets by start (replacing: idempotent) and re-sum their hours."""
        if await self.owner(site_id) != gateway_id:
            return False
        columns = ", ".join(FLOWS)
        params = ", ".join(f"${i + 3}" for i in range(len(FLOWS)))
        updates = ", ".join(f"{f} = excluded.{f}" for f in FLOWS)
        hours = sorted({b.start - b.start % 3600 for b in buckets})
        sums = ", ".join(f"sum({f})" for f in FLOWS)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO hub_energy_5min (site_id, start, {columns}) VALUES ($1, $2, {params}) "  # noqa: S608 - names from FLOWS
                f"ON CONFLICT (site_id, start) DO UPDATE SET {updates}",
                [(site_id, b.start, *(getattr(b, f) for f in FLOWS)) for b in buckets])
            await conn.execute(
                f"INSERT INTO hub_energy_1h (site_id, hour, {columns}) "  # noqa: S608 - names from FLOWS
                f"SELECT site_id, start - start::bigint % 3600, {sums} FROM hub_energy_5min "
                "WHERE site_id = $1 AND start - start::bigint % 3600 = ANY($2) "
                "GROUP BY site_id, start - start::bigint % 3600 "
                f"ON CONFLICT (site_id, hour) DO UPDATE SET {updates}",
                site_id, hours)
        return True

    async def first_bucket(self, site_id: int) -> float | None:
        """Start of the site's oldest stored bucket (unix seconds)."""
        value: float | None = await self.pool.fetchval(
            "SELECT min(start) FROM hub_energy_5min WHERE site_id = $1", site_id)
        return value

    async def energy_by_entry(self, site_id: int, stamps: Sequence[float]) -> list[tuple[float, ...]]:
        """Energy per entry ``[stamps[i], stamps[i+1])``: whole hours from the hourly rollup, the
        ragged ends from 5-minute rows (one query however many entries)."""
        count = len(stamps) - 1
        if count < 1:
            return []
        splits = [_hour_split(lo, hi) for lo, hi in itertools.pairwise(stamps)]
        sums = ", ".join(f"coalesce(sum(x.{f}), 0)" for f in FLOWS)
        columns = ", ".join(FLOWS)
        rows = await self.pool.fetch(
            f"WITH e AS (SELECT * FROM unnest($2::int[], $3::float8[], $4::float8[], $5::float8[], "  # noqa: S608 - names from FLOWS
            "$6::float8[]) AS e(i, lo, a, b, hi)) "
            f"SELECT e.i, {sums} FROM e JOIN LATERAL ("
            f"SELECT {columns} FROM hub_energy_1h WHERE site_id = $1 AND hour >= e.a AND hour < e.b "
            f"UNION ALL SELECT {columns} FROM hub_energy_5min WHERE site_id = $1 AND "
            "((start >= e.lo AND start < e.a) OR (start >= e.b AND start < e.hi))"
            ") x ON true GROUP BY e.i",
            site_id, list(range(count)), *(list(column) for column in zip(*splits, strict=True)))
        out: list[tuple[float, ...]] = [(0.0,) * len(FLOWS)] * count
        for row in rows:
            out[row[0]] = tuple(float(v) for v in row[1:])
        return out

    async def bucket_count(self, site_id: int) -> int:
        """Stored 5-minute buckets of a site."""
        value: int = await self.pool.fetchval(
            "SELECT count(*) FROM hub_energy_5min WHERE site_id = $1", site_id)
        return value


def _hour_split(lo: float, hi: float) -> tuple[float, float, float, float]:
    """``(lo, a, b, hi)``: whole UTC hours ``[a, b)`` inside ``[lo, hi)`` and its ragged ends."""
    a = math.ceil(lo / 3600) * 3600
    b = math.floor(hi / 3600) * 3600
    return (lo, a, b, hi) if a < b else (lo, hi, hi, hi)


_TOKEN_COLUMNS: Final = "jti, sub, scopes, sites, plan, env, issued_at, expires_at, revoked_at"  # noqa: S105


def _token(row: asyncpg.Record) -> IssuedToken:
    sites = row["sites"]
    return IssuedToken(jti=row["jti"], sub=row["sub"], scopes=tuple(row["scopes"]),
                       sites=None if sites is None else tuple(int(s) for s in sites),
                       plan=row["plan"], issued_at=int(row["issued_at"]),
                       expires_at=int(row["expires_at"]),
                       revoked_at=None if row["revoked_at"] is None else int(row["revoked_at"]),
                       env=row["env"])


# The site's owner and presence, and the command journaled when the site can take it.
_JOURNAL: Final = """
WITH site AS (
    SELECT s.site_id, s.gateway_id, s.conflict_gateway, coalesce(g.online, false) AS online,
           g.presence_at
    FROM hub_sites s LEFT JOIN hub_gateways g ON g.gateway_id = s.gateway_id
    WHERE s.site_id = $2),
taken AS (
    INSERT INTO hub_commands (command_id, site_id, gateway_id, command, body, token_sub, expires_at)
    SELECT $1, site_id, gateway_id, $3, $4, $5, $6 FROM site
    WHERE online AND conflict_gateway IS NULL
    ON CONFLICT DO NOTHING RETURNING 1)
SELECT site_id, gateway_id, conflict_gateway, NULL::jsonb AS products, NULL::jsonb AS site_info,
       NULL::jsonb AS live, NULL::text AS live_offline, NULL::double precision AS live_at, online,
       presence_at, EXISTS (SELECT 1 FROM taken) AS inserted
FROM site
"""

_SITE_SELECT = (
    "SELECT s.site_id, s.gateway_id, s.conflict_gateway, s.products, s.site_info, s.live, "
    "s.live_offline, s.live_at, coalesce(g.online, false) AS online, g.presence_at "
    "FROM hub_sites s LEFT JOIN hub_gateways g ON g.gateway_id = s.gateway_id"
)


def _site_row(row: asyncpg.Record) -> SiteRow:
    return SiteRow(int(row["site_id"]), row["gateway_id"], row["conflict_gateway"], row["products"],
                   row["site_info"], row["live"], row["live_offline"], row["live_at"],
                   bool(row["online"]), row["presence_at"])
