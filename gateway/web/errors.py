"""Fleet envelopes and the one table mapping each error class to an HTTP status and error."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from drivers.errors import CapabilityMissing as DriverCapabilityMissing
from drivers.errors import ConfigurationError, DeviceRejected, DeviceUnreachable, DriverError
from drivers.errors import NotConfirmed as DriverNotConfirmed
from gateway.core.errors import (
    CapabilityMissing,
    DeviceFailed,
    GatewayError,
    InvalidInput,
    NotConfirmed,
    Rejected,
    SiteOffline,
    Unavailable,
    clip,
)

JSON = "application/json"
SERVER = "energy-gateway"  # the Server header: names the product, never Python's or aiohttp's version
REALM = "energy-gateway"  # RFC 6750 realm of the bearer challenge
DESCRIPTION_MAX_CHARS = 400  # backstop for descriptions that quote client input


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


class UnsupportedBody(FleetError):
    """A body the gateway cannot decode as sent: a content coding or a charset it does not take."""

    status, error = 415, "invalid_request"

    def headers(self) -> dict[str, str]:
        return {"Accept-Encoding": "identity"}  # RFC 7694 §3: the codings a 415 would accept


class InvalidCommand(FleetError):
    status, error = 400, "invalid_command"


def bearer_challenge(*, token_presented: bool) -> dict[str, str]:
    """RFC 6750 §3: every 401 names the scheme; ``invalid_token`` only when a token was sent."""
    challenge = f'Bearer realm="{REALM}"'
    if token_presented:
        challenge += ', error="invalid_token"'
    return {"WWW-Authenticate": challenge}


class Unauthenticated(FleetError):
    status, error = 401, "invalid bearer token"

    def __init__(self, description: str = "", *, token_presented: bool = True) -> None:
        super().__init__(description)
        self.token_presented = token_presented

    def headers(self) -> dict[str, str]:
        return bearer_challenge(token_presented=self.token_presented)


class TokenExpired(FleetError):
    status, error = 401, "token expired (401)"

    def headers(self) -> dict[str, str]:
        return bearer_challenge(token_presented=True)


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


#: The one table from domain and driver errors to Fleet answers (docs/api.md, "Envelopes and
#: statuses"); the first row whose class matches wins. A ``DeviceFailed`` is answered by the
#: row of the driver error it carries.
ERRORS: tuple[tuple[type[Exception], type[FleetError]], ...] = (
    (InvalidInput, InvalidField),
    (SiteOffline, DeviceOffline),
    (NotConfirmed, DeviceNotConfirmed),
    (Rejected, DeviceRejectedCommand),
    (CapabilityMissing, InvalidCommand),
    (Unavailable, ServiceUnavailable),
    (DeviceUnreachable, DeviceOffline),
    (DriverNotConfirmed, DeviceNotConfirmed),
    (DeviceRejected, DeviceRejectedCommand),
    (DriverCapabilityMissing, InvalidCommand),
    (ConfigurationError, ServiceUnavailable),
    (DriverError, ServiceUnavailable),
    (GatewayError, ServiceUnavailable),
)


def to_fleet(exc: GatewayError | DriverError) -> FleetError:
    """The Fleet error a client sees for a domain or driver error (its description kept)."""
    key: Exception = exc.cause if isinstance(exc, DeviceFailed) else exc
    description = exc.description if isinstance(exc, GatewayError) else str(exc)
    for cls, fleet_cls in ERRORS:
        if isinstance(key, cls):
            return fleet_cls(description)
    raise AssertionError("GatewayError and DriverError are rows")  # pragma: no cover


class ErrorEnvelope(BaseModel):
    """Every error answer: ``{"response": null, "error": ..., "error_description": ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    response: None
    error: str
    error_description: str


def dumps(value: Any) -> bytes:
    """Serialise plain JSON data (the OpenAPI document); bodies are models, see ``to_json``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def to_json(body: BaseModel) -> bytes:
    """The JSON of a response model, serialised by its own schema (docs/api.md "Bodies")."""
    return body.__pydantic_serializer__.to_json(body)


def ok(body: BaseModel) -> web.Response:
    """HTTP 200 with a response model's JSON (``{"response": ...}`` on every /api/1 path)."""
    return web.Response(body=to_json(body), content_type=JSON)


def error_response(exc: FleetError) -> web.Response:
    """The Fleet error envelope for ``exc``, always ``application/json``."""
    body = ErrorEnvelope.model_construct(
        response=None, error=exc.error,
        error_description=clip(exc.description, DESCRIPTION_MAX_CHARS))
    return web.Response(
        status=exc.status, body=to_json(body), content_type=JSON, headers=exc.headers()
    )
