"""The token registry: issued tokens (never the tokens themselves) and their revocation, in SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("gateway.runtime.tokens")

DB_NAME = "gateway.sqlite3"  # the gateway's own database (gateway/store.py), a table of its own
REFRESH_S = 2.0  # how soon a running gateway honours `token revoke`
_SCHEMA = """
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
_COLUMNS = "jti, sub, scopes, sites, plan, issued_at, expires_at, revoked_at"


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

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> IssuedToken:
        """The record of a token with these claims (as built by ``auth.token_claims``)."""
        sites = claims["sites"]
        return cls(jti=str(claims["jti"]), sub=str(claims["sub"]), scopes=tuple(claims["scp"]),
                   sites=None if sites == "*" else tuple(sites), plan=claims.get("plan"),
                   issued_at=int(claims["iat"]), expires_at=int(claims["exp"]))


def _row(row: tuple[Any, ...]) -> IssuedToken:
    jti, sub, scopes, sites, plan, issued_at, expires_at, revoked_at = row
    site_list = orjson.loads(sites)
    return IssuedToken(jti=jti, sub=sub, scopes=tuple(orjson.loads(scopes)),
                       sites=None if site_list == "*" else tuple(site_list), plan=plan,
                       issued_at=issued_at, expires_at=expires_at, revoked_at=revoked_at)


@contextlib.contextmanager
def _connect(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection: the CLI and the gateway process share the file (WAL)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / DB_NAME, timeout=5.0, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        yield db
    finally:
        db.close()


def record(data_dir: Path, token: IssuedToken) -> None:
    """Remember an issued token."""
    sites = "*" if token.sites is None else list(token.sites)
    with _connect(data_dir) as db:
        db.execute(
            f"INSERT INTO issued_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",  # noqa: S608 - constant column list
            (token.jti, token.sub, orjson.dumps(list(token.scopes)).decode(),
             orjson.dumps(sites).decode(), token.plan, token.issued_at, token.expires_at),
        )


def revoke(data_dir: Path, jti: str, now_s: float) -> IssuedToken | None:
    """Mark a token revoked; returns its record, or None when this registry never issued it."""
    if not (data_dir / DB_NAME).exists():
        return None
    with _connect(data_dir) as db:
        db.execute("UPDATE issued_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE jti = ?",
                   (int(now_s), jti))
        row = db.execute(f"SELECT {_COLUMNS} FROM issued_tokens WHERE jti = ?",  # noqa: S608
                         (jti,)).fetchone()
    return None if row is None else _row(row)


def unexpired(data_dir: Path, now_s: float) -> list[IssuedToken]:
    """Tokens that have not expired yet (revoked ones included), soonest expiry first."""
    if not (data_dir / DB_NAME).exists():
        return []
    with _connect(data_dir) as db:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM issued_tokens WHERE expires_at > ? "  # noqa: S608
            "ORDER BY expires_at, jti", (int(now_s),)).fetchall()
    return [_row(r) for r in rows]


def revoked_jtis(data_dir: Path, now_s: float) -> frozenset[str]:
    """The deny-list: revoked tokens that would otherwise still verify."""
    with _connect(data_dir) as db:
        rows = db.execute("SELECT jti FROM issued_tokens WHERE revoked_at IS NOT NULL "
                          "AND expires_at > ?", (int(now_s),)).fetchall()
    return frozenset(r[0] for r in rows)


@contextlib.asynccontextmanager
async def watch_revocations(
    data_dir: Path, apply: Callable[[frozenset[str]], None], *,
    clock: Callable[[], float], interval_s: float = REFRESH_S,
) -> AsyncIterator[None]:
    """Load the deny-list before serving, then refresh it every ``interval_s`` in the background.

    One small query per interval, off the event loop, instead of one per request.
    """
    apply(await asyncio.to_thread(revoked_jtis, data_dir, clock()))

    async def refresh() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                apply(await asyncio.to_thread(revoked_jtis, data_dir, clock()))
            except sqlite3.Error as exc:  # keep the last list; a locked file clears up
                log.warning("tokens.refresh_failed", error=str(exc))

    task = asyncio.create_task(refresh(), name="token-revocations")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
