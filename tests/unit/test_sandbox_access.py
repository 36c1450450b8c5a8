"""Test and live tokens: which sites each reaches, and the env claim as verified."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.web.auth import issue_token, token_claims, verify_token
from gateway.web.errors import NotFound, Unauthenticated

SECRET = "unit-test-secret-0123456789-0123456789"


def _token(env: str, sites: list[int] | None = None) -> str:
    return issue_token(SECRET, sub="t", scopes=["energy_device_data"], sites=sites, ttl_s=60,
                       now_s=time.time(), env=env)


@pytest.mark.parametrize(("env", "sites", "site", "sandbox", "reaches"), [
    ("live", None, 1001, False, True),
    ("live", None, 9001, True, False),  # a live token never reaches a sandbox site
    ("test", None, 9001, True, True),
    ("test", None, 1001, False, False),  # a test token never reaches a real one
    ("test", [1001], 1001, False, False),  # not even when it names it
    ("test", [9002], 9001, True, False),  # and only the sandbox sites it names
])
def test_which_sites_a_token_reaches(
    env: str, sites: list[int] | None, site: int, sandbox: bool, reaches: bool,
) -> None:
    who = verify_token(SECRET, _token(env, sites))
    assert who.sandbox == (env == "test")
    assert who.reaches(site, sandbox=sandbox) is reaches
    if not reaches:
        with pytest.raises(NotFound):
            who.require_site(site, sandbox=sandbox)


def test_live_tokens_carry_no_env_claim_and_test_tokens_say_test() -> None:
    live = token_claims(sub="t", scopes=["energy_device_data"], sites=None, ttl_s=60, now_s=0)
    test = token_claims(sub="t", scopes=["energy_device_data"], sites=None, ttl_s=60, now_s=0,
                        env="test")
    assert "env" not in live
    assert test["env"] == "test"
    with pytest.raises(ValueError, match="unknown env"):
        token_claims(sub="t", scopes=["energy_device_data"], sites=None, ttl_s=60, now_s=0,
                     env="prod")


@pytest.mark.parametrize("env", ["prod", "", 1, None, ["test"]])
def test_an_unknown_env_claim_is_refused(env: object) -> None:
    claims = token_claims(sub="t", scopes=["energy_device_data"], sites=None, ttl_s=60,
                          now_s=time.time())
    claims["env"] = env
    with pytest.raises(Unauthenticated, match="env must be"):
        verify_token(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"))
