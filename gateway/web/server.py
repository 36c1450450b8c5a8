"""GatewayRunner: aiohttp's AppRunner whose connections answer unparseable requests the Fleet way."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from gateway.web.errors import SERVER, FleetError, InvalidRequest, error_response

log = structlog.get_logger("gateway.web.server")


def protocol_error(status: int, exc: BaseException | None) -> FleetError:
    """The Fleet error for a request aiohttp could not parse or serve.

    The description is fixed per kind of fault: aiohttp's own text quotes the offending bytes,
    which may be an Authorization header.
    """
    if status >= 500:
        error = FleetError("internal error", error="upstream internal error")
        error.status = status
        return error
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        size = f"{limit} bytes" if limit is not None else "the limit"
        description = f"the request line or a header field is longer than {size}"
    elif isinstance(exc, BadHttpMethod):
        description = "not an HTTP/1.1 request (TLS to a plain-HTTP port, or a malformed method)"
    elif isinstance(exc, InvalidURLError):
        description = "malformed request target (URL)"
    elif isinstance(exc, BadStatusLine):
        description = "malformed request line"
    elif isinstance(exc, InvalidHeader):
        description = "malformed header field"
    elif isinstance(exc, (ContentLengthError, TransferEncodingError)):
        description = "malformed body framing (Content-Length or Transfer-Encoding)"
    else:
        description = "malformed HTTP request"
    error = InvalidRequest(f"bad request: {description}")
    error.status = status
    return error


class _FleetRequestHandler(web.RequestHandler):
    """One connection; only the answer to a request aiohttp rejects itself differs."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The Fleet envelope instead of aiohttp's plain text (which echoes the bad bytes).

        Logged without aiohttp's message either; a 5xx keeps its traceback (never its locals).
        """
        error = protocol_error(status, exc)
        if status >= 500:
            log.error("request.crashed", status=status, exc_info=exc)
        elif isinstance(exc, BadHttpMethod) and self._request_count == 1:
            # what port scanners and TLS clients send: not worth more than a debug line
            log.debug("request.malformed", status=status, reason=error.description)
        else:
            log.info("request.malformed", status=status, reason=error.description)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started, cannot send the error")
        response = error_response(error)
        response.headers["Server"] = SERVER
        response.force_close()
        return response


class _FleetServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        # as web.Server.__call__, with the handler class swapped
        return _FleetRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """web.AppRunner for the gateway app: a request line or header aiohttp's parser rejects
    (too long, not HTTP, malformed) gets the Fleet JSON envelope and no version banner."""

    async def _make_server(self) -> web.Server:
        standard = await super()._make_server()  # starts the app; builds aiohttp's own server
        return _FleetServer(
            standard.request_handler, request_factory=standard.request_factory,
            handler_cancellation=standard.handler_cancellation,
            loop=standard._loop, **standard._kwargs,
        )
