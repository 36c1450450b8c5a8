"""Fleet envelopes and the one table mapping each error class to an HTTP status and error."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from drivers.errors import (
    CapabilityMissing,
    ConfigurationError,
    DeviceRejected,
    DeviceUnreachable,
    DriverError,
    NotConfirmed,
)

JSON = "application/json"
COMMAND_OK: dict[str, Any] = {"code": 201, "message": "Updated"}


class FleetError(Exception):
    """An error answered in the Fleet envelope: status, short error string, description."""

    status = 500
    error = "internal_error"

    def __init__(self, description: str = "", *, error: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error

    def headers(self) -> dict[str, str]:
        """Extra response headers this error carries."""
        return {}


class InvalidField(FleetError):
    status, error = 400, "invalid_field"


class InvalidRequest(FleetError):
    status, error = 400, "invalid_request"


class InvalidCommand(FleetError):
    status, error = 400, "invalid_command"


class Unauthenticated(FleetError):
    status, error = 401, "invalid bearer token"


class TokenExpired(FleetError):
    status, error = 401, "token expired (401)"


class MissingScopes(FleetError):
    status, error = 403, "Unauthorized missing scopes"


class NotFound(FleetError):
    status, error = 404, "not_found"


class MethodNotAllowed(FleetError):
    status, error = 405, "invalid_method"


class DeviceOffline(FleetError):
    status, error = 408, "device offline"


class RateLimited(FleetError):
    status, error = 429, "rate_limited"

    def __init__(self, description: str, *, retry_after_s: int) -> None:
        super().__init__(description)
        self.retry_after_s = max(1, retry_after_s)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class DeviceNotConfirmed(FleetError):
    status, error = 504, "device did not confirm"


class DeviceRejectedCommand(FleetError):
    status, error = 540, "device rejected"


class ServiceUnavailable(FleetError):
    status, error = 503, "service_unavailable"


# The one mapping of device-side failures onto Fleet answers (DESIGN §4 step 6).
DRIVER_ERRORS: tuple[tuple[type[DriverError], type[FleetError]], ...] = (
    (DeviceUnreachable, DeviceOffline),
    (NotConfirmed, DeviceNotConfirmed),
    (DeviceRejected, DeviceRejectedCommand),
    (CapabilityMissing, InvalidCommand),
    (ConfigurationError, ServiceUnavailable),
    (DriverError, ServiceUnavailable),
)


def from_driver_error(exc: DriverError, context: str = "") -> FleetError:
    """Translate a driver error into the Fleet error the client sees."""
    for driver_cls, fleet_cls in DRIVER_ERRORS:
        if isinstance(exc, driver_cls):
            description = f"{context}: {exc}" if context else str(exc)
            return fleet_cls(description)
    raise AssertionError("DriverError is the last row")  # pragma: no cover


def dumps(value: Any) -> bytes:
    """Serialise a response body (orjson: the hot path of live_status)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def ok(response: Any, **extra: Any) -> web.Response:
    """HTTP 200 with ``{"response": ...}`` (plus top-level extras such as ``count``)."""
    return web.Response(body=dumps({"response": response, **extra}), content_type=JSON)


def error_response(exc: FleetError) -> web.Response:
    """The Fleet error envelope for ``exc``, always ``application/json``."""
    body = {"response": None, "error": exc.error, "error_description": exc.description}
    return web.Response(
        status=exc.status, body=dumps(body), content_type=JSON, headers=exc.headers()
    )
