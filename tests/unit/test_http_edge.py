"""The HTTP edge's pure rules: what a bad request is told, and how much of it is quoted back."""

from __future__ import annotations

import time

import jwt
import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, InvalidHeader, LineTooLong

from gateway.core.errors import ECHO_MAX_CHARS, echo
from gateway.web.auth import READ_SCOPE, bearer, issue_token, verify_token
from gateway.web.errors import (
    DESCRIPTION_MAX_CHARS,
    FleetError,
    InvalidField,
    TokenExpired,
    Unauthenticated,
    error_response,
)
from gateway.web.handlers.commands import BackupBody, body_decoding_error, validate
from gateway.web.server import protocol_error

SECRET = "unit-edge-secret-0123456789abcdef-xyz"


def _token(**overrides: object) -> str:
    now = time.time()
    claims: dict[str, object] = {"sub": "a", "scp": [READ_SCOPE], "iat": int(now),
                                 "exp": int(now) + 60}
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _forged_and_broken() -> list[str]:
    good = issue_token(SECRET, sub="a", scopes=[READ_SCOPE], sites=None, ttl_s=60,
                       now_s=time.time())
    header, payload, signature = good.split(".")
    return [
        header[:-1] + "." + payload + "." + signature,  # PyJWT: "Invalid header padding"
        good[:-2] + "xx",  # "Signature verification failed"
        "not-a-jwt",  # "Not enough segments"
        issue_token("another-secret-0123456789abcdef-long", sub="a", scopes=[READ_SCOPE],
                    sites=None, ttl_s=60, now_s=time.time()),
        jwt.encode({"sub": "a", "scp": [READ_SCOPE], "exp": time.time() + 60}, "",
                   algorithm="none"),
        jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"),  # "missing the exp claim"
    ]


@pytest.mark.parametrize("token", _forged_and_broken())
def test_invalid_tokens_get_one_fixed_helpful_description(token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        verify_token(SECRET, token)
    description = caught.value.description
    assert description.startswith("invalid access token: it is malformed, altered or not issued")
    assert "energy-gateway token issue" in description
    for internal in ("padding", "Signature", "segments", "claim", "alg"):
        assert internal not in description
    assert caught.value.headers() == {
        "WWW-Authenticate": 'Bearer realm="energy-gateway", error="invalid_token"'}


def test_a_token_from_the_future_says_to_check_the_clocks() -> None:
    with pytest.raises(Unauthenticated, match="not valid yet; check the clocks"):
        verify_token(SECRET, _token(iat=int(time.time()) + 3600))


def test_expired_token_challenges_with_invalid_token() -> None:
    expired = issue_token(SECRET, sub="a", scopes=[READ_SCOPE], sites=None, ttl_s=10,
                          now_s=time.time() - 100)
    with pytest.raises(TokenExpired) as caught:
        verify_token(SECRET, expired)
    assert caught.value.headers()["WWW-Authenticate"].endswith('error="invalid_token"')


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer "])
def test_no_bearer_token_challenges_without_an_error_code(header: str | None) -> None:
    """RFC 6750 §3.1: a request without a bearer token gets no error code in the challenge."""
    with pytest.raises(Unauthenticated) as caught:
        bearer(header)
    assert caught.value.headers() == {"WWW-Authenticate": 'Bearer realm="energy-gateway"'}


@pytest.mark.parametrize(("value", "shown"), [
    (10**308, "1" + "0" * (ECHO_MAX_CHARS - 2) + "\u2026"),
    ("A" * 100_000, "'" + "A" * (ECHO_MAX_CHARS - 2) + "\u2026"),
    (150, "150"),
    ("abc", "'abc'"),
])
def test_echo_is_short(value: object, shown: str) -> None:
    assert echo(value) == shown


def test_a_huge_number_is_echoed_short() -> None:
    with pytest.raises(InvalidField) as caught:
        validate(BackupBody, {"backup_reserve_percent": 1e308})
    description = caught.value.description
    assert "0" * ECHO_MAX_CHARS not in description
    assert description.endswith("\u2026)")
    assert len(description) < 120


def test_a_huge_unknown_key_is_named_short() -> None:
    with pytest.raises(InvalidField) as caught:
        validate(BackupBody, {"k" * 10_000: 1})
    assert len(caught.value.description) < 80


def test_error_bodies_are_bounded_whatever_the_description() -> None:
    response = error_response(FleetError("x" * 10_000))
    assert response.body is not None
    assert len(bytes(response.body)) < DESCRIPTION_MAX_CHARS + 100  # type: ignore[arg-type]


@pytest.mark.parametrize(("encoding", "charset"), [
    ("gzip", None), ("deflate", None), ("br", None), ("x-bogus", None), ("gzip, identity", None),
    ("", "latin-1"), ("", "utf-16"), ("", "bogus"),
])
def test_bodies_the_gateway_cannot_decode_are_415(encoding: str, charset: str | None) -> None:
    refusal = body_decoding_error(encoding, charset)
    assert refusal is not None
    assert refusal.status == 415
    assert refusal.headers() == {"Accept-Encoding": "identity"}


@pytest.mark.parametrize(("encoding", "charset"), [
    ("", None), ("identity", None), ("Identity", "UTF-8"), ("", "utf8"), ("", "us-ascii"),
])
def test_plain_utf8_bodies_are_accepted(encoding: str, charset: str | None) -> None:
    assert body_decoding_error(encoding, charset) is None


@pytest.mark.parametrize(("exc", "words"), [
    (LineTooLong(b"Bearer eyJhbGciOiJIUzI1NiJ9...", 8190), "longer than 8190 bytes"),
    (BadHttpMethod(error="Received HTTPS traffic on an HTTP port"), "not an HTTP/1.1 request"),
    (InvalidHeader(b"Authorization Bearer eyJhbGciOiJIUzI1NiJ9"), "malformed header field"),
    (BadHttpMessage("Invalid header value char"), "malformed HTTP request"),
])
def test_protocol_errors_are_described_without_the_bytes(exc: Exception, words: str) -> None:
    error = protocol_error(400, exc)
    assert error.status == 400
    assert error.error == "invalid_request"
    assert words in error.description
    assert "eyJ" not in error.description
    assert "Bearer" not in error.description


def test_a_server_fault_is_the_fleet_internal_error() -> None:
    error = protocol_error(500, RuntimeError("secret detail"))
    assert (error.status, error.error, error.description) == (
        500, "upstream internal error", "internal error")
