"""The installer's status page: /ui (static HTML, JS, CSS) and the gateway_status JSON it reads."""

from __future__ import annotations

import time
from importlib import resources

from aiohttp import web

from gateway.web.auth import READ_SCOPE
from gateway.web.errors import InvalidRequest, ok
from gateway.web.keys import CLOCK, site_for
from gateway.web.renderers.status import gateway_status_body

routes = web.RouteTableDef()

JOURNAL_DEFAULT = 20
JOURNAL_MAX = 100

# Read once at import (files on the event loop would block it); the page is a few kilobytes.
_STATIC = resources.files("gateway.web") / "static"
_FILES: dict[str, tuple[bytes, str]] = {
    name: ((_STATIC / name).read_bytes(), ctype)
    for name, ctype in (("status.html", "text/html"), ("status.js", "text/javascript"),
                        ("status.css", "text/css"))
}
# The page's own files only: no inline script, no third party, no framing; data from this origin.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _static(name: str) -> web.Response:
    body, ctype = _FILES[name]
    response = web.Response(body=body, content_type=ctype, charset="utf-8")
    response.headers.update({
        "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})
    return response


@routes.get("/ui")
@routes.get("/ui/")
async def page(_: web.Request) -> web.Response:
    """The status page; it asks for a token and reads the API with it (no data in the HTML)."""
    return _static("status.html")


@routes.get("/ui/status.js")
async def script(_: web.Request) -> web.Response:
    return _static("status.js")


@routes.get("/ui/status.css")
async def style(_: web.Request) -> web.Response:
    return _static("status.css")


@routes.get(r"/api/1/energy_sites/{site_id:\d+}/gateway_status")
async def gateway_status(request: web.Request) -> web.Response:
    """Devices with their last poll and error, active alerts, the recent command journal."""
    site = site_for(request, READ_SCOPE)
    raw = request.query.get("journal_limit", str(JOURNAL_DEFAULT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or int(raw) > JOURNAL_MAX:
        raise InvalidRequest(f"journal_limit: a whole number from 0 to {JOURNAL_MAX}")
    journal = await site.journal(int(raw)) if int(raw) else []
    return ok(gateway_status_body(site, journal, request.app[CLOCK](), time.monotonic()))
