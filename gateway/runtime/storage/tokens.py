"""Token rows of the storage: issued tokens (never the tokens themselves) and their revocation."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import orjson
import structlog

from gateway.runtime.storage.db import DB_NAME, Storage

log = structlog.get_logger("gateway.runtime.storage")

__all__ = ["DB_NAME", "REFRESH_S", "IssuedToken", "TokenRegistry", "record", "revoke",
           "unexpired", "watch_revocations"]

T = TypeVar("T")
REFRESH_S: Final = 2.0  # how soon a running gateway honours `token revoke`
_COLUMNS: Final = "jti, sub, scopes, sites, plan, issued_at, expires_at, revoked_at, env"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the gateway remembers of a token it issued: its claims, not its signature."""

    jti: str
    sub: str
    scopes: tuple[str, ...]
    sites: tuple[int, ...] | None  # None: every site
    plan: str | None
    issued_at: int  # unix seconds
    expires_at: int
    revoked_at: int | None = None
    env: str = "live"  # or "test": a sandbox token (docs/api.md "Sandbox sites")

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> IssuedToken:
        """The record of a token with these claims (as built by ``auth.token_claims``)."""
        sites = claims["sites"]
        return cls(jti=str(claims["jti"]), sub=str(claims["sub"]), scopes=tuple(claims["scp"]),
                   sites=None if sites == "*" else tuple(sites), plan=claims.get("plan"),
                   issued_at=int(claims["iat"]), expires_at=int(claims["exp"]),
                   env=str(claims.get("env", "live")))


def _row(row: tuple[Any, ...]) -> IssuedToken:
    jti, sub, scopes, sites, plan, issued_at, expires_at, revoked_at, env = row
    site_list = orjson.loads(sites)
    return IssuedToken(jti=jti, sub=sub, scopes=tuple(orjson.loads(scopes)),
                       sites=None if site_list == "*" else tuple(site_list), plan=plan,
                       issued_at=issued_at, expires_at=expires_at, revoked_at=revoked_at,
                       env=env)


class RevokedSource(Protocol):
    """Where the deny-list comes from: the gateway's ``TokenRegistry``, the hub's store."""

    async def revoked_jtis(self, now_s: float) -> frozenset[str]:
        """Revoked tokens that would otherwise still verify."""
        ...


class TokenRegistry:
    """Issued tokens and the deny-list, in the storage (the CLI writes, the gateway reads)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def record(self, token: IssuedToken) -> None:
        """Remember an issued token."""
        sites = "*" if token.sites is None else list(token.sites)
        args = (token.jti, token.sub, orjson.dumps(list(token.scopes)).decode(),
                orjson.dumps(sites).decode(), token.plan, token.issued_at, token.expires_at,
                token.env)

        def insert(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO issued_tokens ({_COLUMNS}) "  # noqa: S608 - constant columns
                       "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)", args)

        await self._storage.write(insert)

    async def revoke(self, jti: str, now_s: float) -> IssuedToken | None:
        """Mark a token revoked; returns its record, or None when this registry never issued it."""

        def update(db: sqlite3.Connection) -> tuple[Any, ...] | None:
            db.execute("UPDATE issued_tokens SET revoked_at = COALESCE(revoked_at, ?) "
                       "WHERE jti = ?", (int(now_s), jti))
            row: tuple[Any, ...] | None = db.execute(
                f"SELECT {_COLUMNS} FROM issued_tokens WHERE jti = ?", (jti,)).fetchone()  # noqa: S608
            return row

        row = await self._storage.write(update)
        return None if row is None else _row(row)

    async def unexpired(self, now_s: float) -> list[IssuedToken]:
        """Tokens that have not expired yet (revoked ones included), soonest expiry first."""

        def query(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(
                f"SELECT {_COLUMNS} FROM issued_tokens WHERE expires_at > ? "  # noqa: S608
                "ORDER BY expires_at, jti", (int(now_s),)).fetchall()

        return [_row(r) for r in await self._storage.write(query)]

    async def revoked_jtis(self, now_s: float) -> frozenset[str]:
        """The deny-list: revoked tokens that would otherwise still verify."""

        def query(db: sqlite3.Connection) -> list[tuple[str]]:
            return db.execute("SELECT jti FROM issued_tokens WHERE revoked_at IS NOT NULL "
                              "AND expires_at > ?", (int(now_s),)).fetchall()

        return frozenset(r[0] for r in await self._storage.write(query))


@contextlib.asynccontextmanager
async def watch_revocations(
    registry: RevokedSource, apply: Callable[[frozenset[str]], None], *,
    clock: Callable[[], float], interval_s: float = REFRESH_S,
    errors: tuple[type[Exception], ...] = (sqlite3.Error,),
) -> AsyncIterator[None]:
    """Load the deny-list before serving, then refresh it every ``interval_s`` in the background.

    One small query per interval (the gateway's SQLite, the hub's PostgreSQL), instead of one per
    request; a query that fails with one of ``errors`` keeps the last list.
    """
    apply(await registry.revoked_jtis(clock()))

    async def refresh() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                apply(await registry.revoked_jtis(clock()))
            except errors as exc:  # keep the last list; a locked file or a lost link clears up
                log.warning("tokens.refresh_failed", error=str(exc))

    task = asyncio.create_task(refresh(), name="token-revocations")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- for a process without an event loop (the CLI): open the storage, one call, close -------


def _once(data_dir: Path, call: Callable[[TokenRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        async with Storage.in_data_dir(data_dir) as storage:
            return await call(TokenRegistry(storage))

    return asyncio.run(run())


def record(data_dir: Path, token: IssuedToken) -> None:
    """Remember an issued token in the storage of ``data_dir`` (created when missing)."""
    _once(data_dir, lambda registry: registry.record(token))


def revoke(data_dir: Path, jti: str, now_s: float) -> IssuedToken | None:
    """Revoke a token in the storage of ``data_dir``; None when it was never issued there."""
    if not (data_dir / DB_NAME).exists():  # nothing issued: create nothing
        return None
    return _once(data_dir, lambda registry: registry.revoke(jti, now_s))


def unexpired(data_dir: Path, now_s: float) -> list[IssuedToken]:
    """The unexpired tokens in the storage of ``data_dir`` (none when it does not exist)."""
    if not (data_dir / DB_NAME).exists():
        return []
    return _once(data_dir, lambda registry: registry.unexpired(now_s))

