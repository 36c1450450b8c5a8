"""The HTTP edge against malformed and hostile requests: Fleet envelopes, no secret in any log.

Requests go over raw sockets (an HTTP client would refuse to send most of them) to the real app
served by GatewayRunner, with the production logging configuration writing to a buffer.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.runtime.logs import LogFormat
from gateway.web.app import create_app
from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, issue_token
from gateway.web.errors import SERVER
from gateway.web.keys import CONFIG, SITES
from gateway.web.server import GatewayRunner
from simulator import Simulator
from tests.helpers import SECRET, SITE_ID, eventually, gateway_config, token
from tests.log_capture import real_logging

BACKUP = f"/api/1/energy_sites/{SITE_ID}/backup"
CRASH_LOCALS = f"/api/1/energy_sites/{SITE_ID}/test_crash_locals"
CRASH_MESSAGE = f"/api/1/energy_sites/{SITE_ID}/test_crash_message"


@dataclass
class Answer:
    """One raw HTTP response."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw: bytes

    def envelope(self) -> dict[str, object]:
        assert self.headers.get("content-type", "").startswith("application/json"), self.raw[:300]
        body = orjson.loads(self.body)
        assert isinstance(body, dict)
        assert set(body) == {"response", "error", "error_description"}
        assert body["response"] is None
        return body


async def exchange(port: int, request: bytes) -> Answer:
    """Send ``request`` as is on a new connection and read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(10):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
        await writer.wait_closed()
    return Answer(int(lines[0].split()[1]), headers, body, head + body)


def http(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A well-formed HTTP/1.1 request (whatever its header values say)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _crash_with_secrets_in_locals(request: web.Request) -> web.Response:
    authorization = request.headers["Authorization"]
    headers = dict(request.headers)
    secret = request.app[CONFIG].jwt_secret()
    if authorization and headers and secret:  # the locals a careless traceback would print
        raise RuntimeError("test-only handler bug")
    return web.Response()


async def _crash_with_the_token_in_the_message(request: web.Request) -> web.Response:
    raise RuntimeError(f"test-only bug while handling {request.headers['Authorization']}")


@dataclass
class Edge:
    port: int
    sim: Simulator


@asynccontextmanager
async def serve(sim: Simulator, data_dir: Path) -> AsyncIterator[Edge]:
    """The real app plus two test-only routes that crash, served by GatewayRunner."""
    app = create_app(gateway_config(sim, data_dir))
    app.router.add_post(CRASH_LOCALS, _crash_with_secrets_in_locals)
    app.router.add_post(CRASH_MESSAGE, _crash_with_the_token_in_the_message)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await eventually(lambda: app[SITES][SITE_ID].applied is not None)
        yield Edge(runner.addresses[0][1], sim)
    finally:
        await runner.cleanup()


@pytest.fixture(params=["json", "console"])
def log_format(request: pytest.FixtureRequest) -> LogFormat:
    fmt: LogFormat = request.param
    return fmt


@pytest.fixture
def log_output(log_format: LogFormat) -> Iterator[io.StringIO]:
    """Everything logged during the test, through the production configuration."""
    with real_logging(log_format) as buffer:
        yield buffer


def _secrets(*tokens: str) -> list[str]:
    """What must never be shown: the JWT secret, each token, and each token's signed part."""
    shown = [SECRET]
    for tok in tokens:
        _header, _, rest = tok.partition(".")
        payload, _, signature = rest.partition(".")
        shown += [tok, payload[:40]] + ([signature] if len(signature) > 8 else [])
    return shown


def _malformed_requests(tok: str, forged: str, expired: str) -> list[tuple[str, bytes, int]]:
    """Every malformed request of the hardening issue, each carrying a token: (name, bytes, status)."""
    auth = {"Authorization": f"Bearer {tok}"}
    body = b'{"backup_reserve_percent": 53}'
    header, payload, signature = tok.split(".")
    json_type = {"Content-Type": "application/json"}
    chunked_garbage = (f"POST {BACKUP} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                       "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n").encode()
    return [
        ("gzip header, plain body", http("POST", BACKUP, {
            **auth, **json_type, "Content-Encoding": "gzip"}, body), 415),
        ("gzip body", http("POST", BACKUP, {
            **auth, **json_type, "Content-Encoding": "gzip"}, gzip.compress(body)), 415),
        ("truncated gzip body", http("POST", BACKUP, {
            **auth, "Content-Encoding": "gzip"}, gzip.compress(body)[:12]), 415),
        ("brotli", http("POST", BACKUP, {**auth, "Content-Encoding": "br"}, body), 415),
        ("unknown coding", http("POST", BACKUP, {**auth, "Content-Encoding": "x-bogus"}, body),
         415),
        ("bogus charset", http("POST", BACKUP, {
            **auth, "Content-Type": "application/json; charset=bogus"}, body), 415),
        ("utf-16 body", http("POST", BACKUP, {
            **auth, "Content-Type": "application/json; charset=utf-16"},
            body.decode().encode("utf-16")), 415),
        ("invalid utf-8", http("POST", BACKUP, {**auth, **json_type},
                               b'{"backup_reserve_percent": "\xff\xfe"}'), 400),
        ("huge number", http("POST", BACKUP, {**auth, **json_type},
                             b'{"backup_reserve_percent": 1e308}'), 400),
        ("broken chunked framing", chunked_garbage, 400),
        ("Authorization over 8 KB", http("GET", "/api/1/products", {
            "Authorization": f"Bearer {tok}{'A' * 9000}"}), 400),
        ("request line over 8 KB", http("GET", f"/api/1/products?access_token={tok}"
                                        + "A" * 9000, {}), 400),
        ("header without a colon", (f"GET /api/1/products HTTP/1.1\r\nHost: x\r\n"
                                    f"Authorization Bearer {tok}\r\n\r\n").encode(), 400),
        ("NUL in the Authorization header", (f"GET /api/1/products HTTP/1.1\r\nHost: x\r\n"
                                             f"Authorization: Bearer {tok}\x00\r\n\r\n").encode(),
         400),
        ("not HTTP", f"GARBAGE {tok}\r\n\r\n".encode(), 400),
        ("garbage token", http("GET", "/api/1/products", {
            "Authorization": f"Bearer {tok}{'%' * 3000}"}), 401),
        ("bad header padding", http("GET", "/api/1/products", {
            "Authorization": f"Bearer {header[:-1]}.{payload}.{signature}"}), 401),
        ("token in the Basic scheme", http("GET", "/api/1/products", {
            "Authorization": f"Basic {tok}"}), 401),
        ("forged token", http("GET", "/api/1/products", {"Authorization": f"Bearer {forged}"}),
         401),
        ("expired token", http("GET", "/api/1/products", {"Authorization": f"Bearer {expired}"}),
         401),
        ("crash with secrets in locals", http("POST", CRASH_LOCALS, auth, body), 500),
        ("crash quoting the token", http("POST", CRASH_MESSAGE, auth, body), 500),
    ]


async def test_no_secret_reaches_a_log_line_or_an_answer(
    sim: Simulator, tmp_path: Path, log_output: io.StringIO
) -> None:
    """Issue 9 defect 2: every malformed request answers in the Fleet envelope (4xx for the
    client's faults), and neither its token nor the JWT secret is ever logged or answered."""
    tok = issue_token(SECRET, sub="canary", scopes=[READ_SCOPE, COMMAND_SCOPE], sites=None,
                      ttl_s=600, now_s=time.time())
    forged = issue_token("forger-secret-0123456789abcdef-0123", sub="canary",
                         scopes=[READ_SCOPE, COMMAND_SCOPE], sites=None, ttl_s=600,
                         now_s=time.time())
    expired = issue_token(SECRET, sub="canary", scopes=[READ_SCOPE], sites=None, ttl_s=10,
                          now_s=time.time() - 100)
    never_shown = _secrets(tok, forged, expired)
    home = sim.homes["home-1001"]
    async with serve(sim, tmp_path / "data") as edge:
        reserve_before = home.truth().reserve_pct
        for name, request, status in _malformed_requests(tok, forged, expired):
            answer = await exchange(edge.port, request)
            assert answer.status == status, (name, answer.raw[:500])
            answer.envelope()
            assert answer.headers["server"] == SERVER, name
            for secret in never_shown:
                assert secret not in answer.raw.decode("latin-1"), (name, secret)
        assert home.truth().reserve_pct == reserve_before  # none of them reached the device
    text = log_output.getvalue()
    # the log did render what happened, tracebacks included, so its silence below means something
    assert text.count("request.crashed") == 2
    assert "test-only handler bug" in text
    assert "test-only bug while handling" in text
    assert "request.malformed" in text
    for secret in never_shown:
        assert secret not in text, secret


async def test_a_crash_is_logged_with_its_route_only(sim: Simulator, tmp_path: Path) -> None:
    """request.crashed carries path and method and the exception; no header, body or query."""
    tok = token()
    async with serve(sim, tmp_path / "data") as edge:
        with capture_logs() as events:
            answer = await exchange(edge.port, http(
                "POST", CRASH_LOCALS + "?q=1", {"Authorization": f"Bearer {tok}"}, b"{}"))
    assert answer.status == 500
    assert answer.envelope() == {"response": None, "error": "upstream internal error",
                                 "error_description": "internal error"}
    crashed = [e for e in events if e["event"] == "request.crashed"]
    assert len(crashed) == 1
    assert crashed[0] == {"event": "request.crashed", "log_level": "error", "exc_info": True,
                          "path": CRASH_LOCALS, "method": "POST"}


async def test_every_answer_names_no_versions_and_every_401_challenges(
    sim: Simulator, tmp_path: Path
) -> None:
    """Point 10: the Server header names no Python or aiohttp version, on any answer; a 401
    always carries an RFC 6750 challenge, with invalid_token only when a token was sent."""
    tok = token()
    auth = {"Authorization": f"Bearer {tok}"}
    forged = jwt.encode({"sub": "x", "scp": [READ_SCOPE], "exp": time.time() + 60},
                        "forger-secret-0123456789abcdef-0123", algorithm="HS256")
    challenge = 'Bearer realm="energy-gateway"'
    cases: list[tuple[bytes, int, str | None]] = [
        (http("GET", "/status", {}), 200, None),
        (http("GET", "/openapi.json", {}), 200, None),
        (http("GET", f"/api/1/energy_sites/{SITE_ID}/live_status", auth), 200, None),
        (http("GET", "//api/1/products", auth), 308, None),
        (http("GET", "/nowhere", auth), 404, None),
        (http("DELETE", BACKUP, auth), 405, None),
        (http("POST", BACKUP, {**auth, "Content-Encoding": "gzip"}, b"{}"), 415, None),
        (http("POST", CRASH_LOCALS, auth, b"{}"), 500, None),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, None),
        (http("GET", "/api/1/products", {}), 401, challenge),
        (http("GET", "/api/1/products", {"Authorization": "Basic dXNlcjpwYXNz"}), 401, challenge),
        (http("GET", "/api/1/products", {"Authorization": f"Bearer {forged}"}), 401,
         challenge + ', error="invalid_token"'),
        (http("GET", "/api/1/products", {"Authorization": "Bearer x.y.z"}), 401,
         challenge + ', error="invalid_token"'),
    ]
    async with serve(sim, tmp_path / "data") as edge:
        for request, status, www_authenticate in cases:
            answer = await exchange(edge.port, request)
            assert answer.status == status, answer.raw[:300]
            assert answer.headers["server"] == SERVER
            assert answer.headers.get("www-authenticate") == www_authenticate
            if status == 401:
                description = str(answer.envelope()["error_description"])
                assert "padding" not in description
                assert "Signature" not in description


async def test_bad_values_are_quoted_back_short(sim: Simulator, tmp_path: Path) -> None:
    """Point 10: a 309-digit number or a long string is quoted back in a few dozen chars."""
    auth = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    bodies = [b'{"backup_reserve_percent": 1e308}',
              b'{"backup_reserve_percent": "' + b"9" * 50_000 + b'"}',
              b'{"backup_reserve_percent": 50, "' + b"k" * 50_000 + b'": 1}']
    async with serve(sim, tmp_path / "data") as edge:
        for body in bodies:
            answer = await exchange(edge.port, http("POST", BACKUP, auth, body))
            assert answer.status == 400
            description = str(answer.envelope()["error_description"])
            assert len(description) < 120, description
            assert "\u2026" in description
