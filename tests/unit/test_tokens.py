"""The token registry: issued tokens recorded without the token, revocation, the gateway's refresh."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from gateway.runtime.storage import Storage, tokens
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, token_claims
from tests.helpers import eventually


def _issued(sub: str, ttl_s: int, now: float, sites: list[int] | None = None) -> tokens.IssuedToken:
    return tokens.IssuedToken.from_claims(token_claims(
        sub=sub, scopes=[COMMAND_SCOPE, READ_SCOPE], sites=sites, ttl_s=ttl_s, now_s=now,
        plan="small"))


async def test_record_list_and_revoke(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    long = _issued("ha", 3600, now, sites=[1002, 1001])
    short = _issued("logger", 60, now)
    old = _issued("gone", 10, now - 100)
    async with Storage.in_data_dir(tmp_path) as storage:
        registry = tokens.TokenRegistry(storage)
        for t in (long, short, old):
            await registry.record(t)
        listed = await registry.unexpired(now)
        assert listed == [short, long]  # soonest expiry first; the expired one is left out
        assert listed[1].sites == (1001, 1002)
        assert listed[1].scopes == (COMMAND_SCOPE, READ_SCOPE)
        assert await registry.revoked_jtis(now) == frozenset()

        found = await registry.revoke(long.jti, now + 5)
        assert found is not None
        assert (found.sub, found.revoked_at) == ("ha", int(now + 5))
        assert await registry.revoked_jtis(now) == {long.jti}
        # expired: no longer listed
        assert await registry.revoked_jtis(now + 4000) == frozenset()
        assert await registry.revoke("no-such-jti", now) is None


def test_the_cli_calls_record_list_and_revoke_in_the_data_dir(tmp_path: Path) -> None:
    now = time.time()
    issued = _issued("ha", 60, now)
    tokens.record(tmp_path, issued)
    assert tokens.unexpired(tmp_path, now) == [issued]
    revoked = tokens.revoke(tmp_path, issued.jti, now)
    assert revoked is not None
    assert revoked.revoked_at == int(now)


def test_the_registry_never_holds_a_token_or_signature(tmp_path: Path) -> None:
    now = time.time()
    tokens.record(tmp_path, _issued("ha", 60, now))
    with sqlite3.connect(tmp_path / tokens.DB_NAME) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(issued_tokens)")]
    db.close()
    assert columns == ["jti", "sub", "scopes", "sites", "plan", "issued_at", "expires_at",
                       "revoked_at", "env"]


def test_reading_an_absent_registry_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert tokens.unexpired(missing, time.time()) == []
    assert tokens.revoke(missing, "abc", time.time()) is None
    assert not missing.exists()


async def test_watch_loads_before_serving_then_follows_revocations(tmp_path: Path) -> None:
    now = time.time()
    first, second = _issued("a", 600, now), _issued("b", 600, now)
    async with Storage.in_data_dir(tmp_path) as storage:
        registry = tokens.TokenRegistry(storage)
        await registry.record(first)
        await registry.record(second)
        await registry.revoke(first.jti, now)
        seen: list[frozenset[str]] = []
        async with tokens.watch_revocations(registry, seen.append, clock=time.time,
                                            interval_s=0.05):
            assert seen == [{first.jti}]  # loaded before the gateway serves its first request
            # the CLI, another process, revokes in the same file
            await asyncio.to_thread(tokens.revoke, tmp_path, second.jti, now)
            await eventually(lambda: seen[-1] == {first.jti, second.jti})
