"""The one error taxonomy of the device side; gateway/web/errors.py maps each class to a Fleet status."""

from __future__ import annotations

from typing import Any


class DriverError(Exception):
    """Base of every failure a driver reports."""


class DeviceUnreachable(DriverError):
    """The device did not answer (refused, dropped, timed out). Transient: retried with backoff.

    The only transient class: the transports' one retry layer retries exactly this.
    """


class DeviceRejected(DriverError):
    """The device answered with an error (Modbus exception code, MQTT reason). Permanent."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotConfirmed(DriverError):
    """A write was acknowledged but the read-back does not show it (within the deadline)."""

    def __init__(self, message: str, *, expected: Any = None, actual: Any = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class CapabilityMissing(DriverError):
    """The device cannot honour what was asked of it."""


class ConfigurationError(DriverError):
    """The device does not look like what the configuration says (e.g. no SunSpec map found)."""
