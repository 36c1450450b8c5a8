"""Token issuing and verification, scopes and site access."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from gateway.web.auth import (
    COMMAND_SCOPE,
    MAX_TTL_S,
    READ_SCOPE,
    bearer,
    issue_token,
    parse_ttl,
    sign,
    token_claims,
    verify_token,
)
from gateway.web.errors import MissingScopes, NotFound, TokenExpired, Unauthenticated

SECRET = "unit-test-secret-0123456789abcdef"


def test_round_trip_carries_scopes_sites_and_plan() -> None:
    token = issue_token(SECRET, sub="app", scopes=[READ_SCOPE], sites=[1001], ttl_s=60,
                        now_s=time.time(), plan="small")
    who = verify_token(SECRET, token)
    assert who.sub == "app"
    assert who.scopes == {READ_SCOPE}
    assert who.can_reach(1001)
    assert not who.can_reach(1002)
    assert who.plan == "small"
    who.require(READ_SCOPE)
    with pytest.raises(MissingScopes):
        who.require(COMMAND_SCOPE)
    with pytest.raises(NotFound):
        who.require_site(1002)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scp"] == [READ_SCOPE]
    assert claims["ou_code"] == "NA"


def test_all_sites_token() -> None:
    token = issue_token(SECRET, sub="app", scopes=[READ_SCOPE, COMMAND_SCOPE], sites=None,
                        ttl_s=60, now_s=time.time())
    who = verify_token(SECRET, token)
    assert who.sites is None
    assert who.can_reach(123456789)


def test_expired_and_forged_tokens_are_401() -> None:
    expired = issue_token(SECRET, sub="a", scopes=[READ_SCOPE], sites=None, ttl_s=10,
                          now_s=time.time() - 100)
    with pytest.raises(TokenExpired):
        verify_token(SECRET, expired)
    forged = issue_token("another-secret-0123456789abcdef-long", sub="a", scopes=[READ_SCOPE],
                         sites=None, ttl_s=60, now_s=time.time())
    with pytest.raises(Unauthenticated):
        verify_token(SECRET, forged)
    with pytest.raises(Unauthenticated):
        verify_token(SECRET, "not-a-jwt")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer"])
def test_bad_authorization_headers(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        bearer(header)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 2_592_000), ("12h", 43_200), ("90m", 5400),
                                               ("45s", 45), ("120", 120), ("2w", 1_209_600)])
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "-1d", "3y", "abc", "9" * 5000])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid ttl"):
        parse_ttl(text)


def test_unknown_scope_refused_at_issue() -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        issue_token(SECRET, sub="a", scopes=["energy_everything"], sites=None, ttl_s=60,
                    now_s=time.time())


def test_verifier_caches_but_still_expires_tokens() -> None:
    from gateway.web.auth import TokenVerifier

    now = time.time()
    verifier = TokenVerifier(SECRET, max_entries=2)
    short = issue_token(SECRET, sub="a", scopes=[READ_SCOPE], sites=None, ttl_s=10, now_s=now)
    first = verifier.verify(short, now)
    assert verifier.verify(short, now + 1) is first  # served from the cache
    with pytest.raises(TokenExpired):
        verifier.verify(short, now + 11)
    with pytest.raises(Unauthenticated):
        verifier.verify("garbage", now)
    for i in range(5):  # bounded: never grows past max_entries
        verifier.verify(issue_token(SECRET, sub=str(i), scopes=[READ_SCOPE], sites=None,
                                    ttl_s=60, now_s=now), now)
    assert len(verifier._cache) <= 2


@pytest.mark.parametrize("text", ["366d", "53w", "100000d", "31536001"])
def test_parse_ttl_refuses_more_than_a_year_and_says_the_limit(text: str) -> None:
    with pytest.raises(ValueError, match=r"the longest is 365d \(1 year\)"):
        parse_ttl(text)
    assert parse_ttl("365d") == MAX_TTL_S


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": []}, "at least one scope; known scopes: energy_cmds, energy_device_data"),
        ({"sites": []}, "at least one site"),
        ({"ttl_s": 0}, "outside 1 s to 365 days"),
        ({"ttl_s": 10 * 365 * 86_400}, "outside 1 s to 365 days"),
    ],
)
def test_issue_refuses_tokens_that_reach_nothing_or_live_too_long(
        kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"sub": "a", "scopes": [READ_SCOPE], "sites": None, "ttl_s": 60,
                            "now_s": time.time(), **kwargs}
    with pytest.raises(ValueError, match=message):
        issue_token(SECRET, **args)


def test_verifier_refuses_revoked_tokens_even_when_cached() -> None:
    from gateway.web.auth import TokenVerifier

    now = time.time()
    verifier = TokenVerifier(SECRET)
    claims = token_claims(sub="a", scopes=[READ_SCOPE], sites=None, ttl_s=60, now_s=now)
    kept = issue_token(SECRET, sub="b", scopes=[READ_SCOPE], sites=None, ttl_s=60, now_s=now)
    revoked = sign(SECRET, claims)
    assert verifier.verify(revoked, now).sub == "a"  # now in the cache
    verifier.set_revoked(frozenset({claims["jti"]}))
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(revoked, now)
    assert verifier.verify(kept, now).sub == "b"
    verifier.set_revoked(frozenset())
    assert verifier.verify(revoked, now).sub == "a"
