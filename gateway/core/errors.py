"""Domain errors: what went wrong in the domain's words, with no HTTP status (web/errors.py maps them)."""

from __future__ import annotations

from drivers.errors import CapabilityMissing as DriverCapabilityMissing
from drivers.errors import DeviceRejected, DriverError

ECHO_MAX_CHARS = 40  # how much of a client's bad value an error description quotes back


class GatewayError(Exception):
    """Base of every domain error; ``description`` says what happened in words a client can act on."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidInput(GatewayError, ValueError):
    """A request parameter or body field is wrong; ``field`` names it (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SiteOffline(GatewayError):
    """A device of the site has no data younger than its stale limit."""


class NotConfirmed(GatewayError):
    """The devices did not confirm the setpoints within the command deadline."""


class Rejected(GatewayError):
    """The site refused the request (the devices cannot or will not take it)."""


class CapabilityMissing(GatewayError):
    """The site has no device that can honour what was asked."""


class Unavailable(GatewayError):
    """The gateway cannot do it now: its own storage failed (nothing was changed)."""


class DeviceFailed(GatewayError):
    """A device failed while the site talked to it; ``cause`` is the driver's error."""

    def __init__(self, device: str, cause: DriverError) -> None:
        super().__init__(f"device {device}: {cause}")
        self.device = device
        self.cause = cause


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` means the device or site refused a command (it then changes nothing)."""
    if isinstance(exc, DeviceFailed):
        return isinstance(exc.cause, DeviceRejected | DriverCapabilityMissing)
    return isinstance(exc, Rejected | CapabilityMissing)


def clip(text: str, limit: int = ECHO_MAX_CHARS) -> str:
    """``text`` cut to ``limit`` chars, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def echo(value: object, limit: int = ECHO_MAX_CHARS) -> str:
    """A client's value for an error description: its repr, clipped.

    A body may hold a 309-digit number or a megabyte string; the answer quotes only its start.
    """
    try:
        return clip(repr(value), limit)
    except ValueError:  # an int beyond Python's str-conversion limit
        return "<a number too large to show>"
