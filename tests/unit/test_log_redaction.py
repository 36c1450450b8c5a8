"""Secrets never reach a log line: tracebacks without locals, and redaction of every event."""

from __future__ import annotations

import logging
import time

import pytest
import structlog

from gateway.runtime.logs import REDACTED, LogFormat, add_redacted_secret, redact_text
from gateway.web.auth import READ_SCOPE, issue_token
from tests.log_capture import real_logging

SECRET = "unit-log-secret-0123456789abcdef-xyz"
TOKEN = issue_token(SECRET, sub="canary", scopes=[READ_SCOPE], sites=None, ttl_s=60,
                    now_s=time.time())
SIGNATURE = TOKEN.rsplit(".", 1)[1]
FORMATS: list[LogFormat] = ["json", "console"]


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {TOKEN}\r\nHost: x",  # raw HTTP
    f"<CIMultiDictProxy('Host': 'x', 'Authorization': 'Bearer {TOKEN}')>",  # a header mapping
    f"raw_headers=((b'Host', b'x'), (b'Authorization', b'Bearer {TOKEN}'))",  # aiohttp's message
    f"Got more than 8190 bytes when reading: b'Bearer {TOKEN[:90]}...'.",  # aiohttp LineTooLong
    f'{{"token": "{TOKEN}"}}',  # a bare JWT
    f"authorization=Bearer {TOKEN} level=info",  # key=value
])
def test_bearer_credentials_and_jwts_are_redacted(text: str) -> None:
    redacted = redact_text(text)
    assert SIGNATURE not in redacted
    assert TOKEN[:90] not in redacted
    assert REDACTED in redacted


def test_other_authorization_schemes_and_secrets_are_redacted() -> None:
    assert redact_text("'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='") == \
        f"'Authorization': '{REDACTED}'"
    assert redact_text(f"config secret={SECRET}!", {SECRET}) == f"config secret={REDACTED}!"


@pytest.mark.parametrize("text", [
    "invalid bearer token",
    "Authorization must be 'Bearer <token>'",
    "missing Authorization header",
    "structlog.processors.JSONRenderer in gateway.api.commands",
    "site 1001: device offline: inverter (never read; no data yet)",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text, {SECRET}) == text


def _raise_with_secrets_in_locals() -> None:
    authorization = f"Bearer {TOKEN}"
    headers = {"Authorization": authorization, "X-Locals-Canary": "locals-canary-4711"}
    raise RuntimeError(f"failed with {len(headers)} headers")


@pytest.mark.parametrize("log_format", FORMATS)
def test_tracebacks_carry_no_locals(log_format: LogFormat) -> None:
    with real_logging(log_format) as out:
        try:
            _raise_with_secrets_in_locals()
        except RuntimeError:
            structlog.get_logger("test").exception("request.crashed")
            logging.getLogger("aiohttp.server").exception("Error handling request")
    text = out.getvalue()
    assert text.count("failed with 2 headers") == 2  # both tracebacks were rendered
    assert "_raise_with_secrets_in_locals" in text
    assert "locals-canary-4711" not in text  # no local variable shown, redacted or not
    assert SIGNATURE not in text


@pytest.mark.parametrize("log_format", FORMATS)
def test_secrets_are_scrubbed_from_structlog_and_stdlib_events(log_format: LogFormat) -> None:
    add_redacted_secret(SECRET)
    with real_logging(log_format) as out:
        log = structlog.get_logger("test")
        log.info("event.with.secrets", header=f"Bearer {TOKEN}", nested={"deep": [SECRET, TOKEN]},
                 odd=_Holder(), quoted=f'say "{SECRET}"')
        logging.getLogger("aiohttp.server").warning("header %s and secret %s", TOKEN, SECRET)
        try:
            _raise_quoting_secrets()
        except ValueError:
            log.exception("request.crashed")
            logging.getLogger("asyncio").exception("Task exception was never retrieved")
    text = out.getvalue()
    assert "event.with.secrets" in text
    assert "Task exception was never retrieved" in text
    assert text.count("ValueError") >= 2
    assert SIGNATURE not in text
    assert SECRET not in text
    assert REDACTED in text


def _raise_quoting_secrets() -> None:
    raise ValueError(f"bad header b'Bearer {TOKEN}' with {SECRET}")


class _Holder:
    """An object whose repr holds a secret, as a header mapping's does."""

    def __repr__(self) -> str:
        return f"<Holder {SECRET} {TOKEN}>"
