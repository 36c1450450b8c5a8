"""Fault injection plan and connection counters of a simulated device (pure data, no I/O).

A `FaultPlan` says how a device misbehaves towards its clients. It is validated on every change
(constructor, attribute assignment, `update`) and may be changed while the device serves: the
device observes it (`subscribe`) and acts at once, e.g. closes its listener when
`refuse_connections` becomes true. One-shot faults are device methods, not plan fields, because
they are events rather than states:

- `await device.drop_connections()` closes every client connection now;
- `await device.reboot()` drops connections, restores factory settings, and leaves the port
  closed for `plan.reboot_s` real seconds;
- `await device.broker_restart()` (Victron GX only) restarts the embedded MQTT broker.

Which fields apply where: every field applies to a Modbus TCP face (a SunSpec device, the Victron
GX's optional Modbus face); the MQTT faces take only the one-shots above.

Example (pytest, a started `SunSpecDevice` `dev`)::

    dev.faults.exception_code = 6         # every request answers DEVICE_BUSY
    dev.faults.update(exception_code=None, delay_s=0.2)
    await dev.apply_faults(refuse_connections=False)  # returns once the port listens again
    assert dev.stats.accepted == 1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: Modbus exception codes a device may answer with (ILLEGAL_FUNCTION .. GATEWAY_NO_RESPONSE).
MODBUS_EXCEPTION_CODES: frozenset[int] = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 11})

#: Longest delay or reboot a plan accepts, in real seconds (a typo guard, not a physical limit).
MAX_FAULT_S = 3600.0

_BOOL_FIELDS = frozenset({"refuse_connections", "half_open", "ignore_writes", "single_client"})
_SECONDS_FIELDS = frozenset({"delay_s", "reboot_s"})

PlanObserver = Callable[["FaultPlan", frozenset[str]], None]


class FaultPlanError(ValueError):
    """A fault plan field or value is invalid; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _check(name: str, value: object) -> None:
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise FaultPlanError(name, f"must be a bool, not {value!r}")
    elif name in _SECONDS_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FaultPlanError(name, f"must be a number of seconds, not {value!r}")
        if not math.isfinite(value) or not 0 <= value <= MAX_FAULT_S:
            raise FaultPlanError(name, f"must be within 0..{MAX_FAULT_S:g} s, not {value!r}")
    elif name == "exception_code":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value not in MODBUS_EXCEPTION_CODES
        ):
            codes = ", ".join(str(c) for c in sorted(MODBUS_EXCEPTION_CODES))
            raise FaultPlanError(name, f"must be null or a Modbus exception code ({codes}), not {value!r}")
    else:
        raise FaultPlanError(name, "unknown fault")


@dataclass(slots=True)
class FaultPlan:
    """Misbehaviour a device shows to its clients; validated, mutable while the device serves.

    Attributes:
        refuse_connections: The listener is closed: connecting fails with "connection refused".
            Open connections stay (combine with `drop_connections()` for a device gone dark).
            Clearing it reopens the listener on the same port.
        half_open: Connections are accepted and requests read, but nothing is ever answered.
        delay_s: Real seconds to wait before handling each request (a slow device; requests on
            one connection are handled in order, so delays add up).
        exception_code: Answer every request with this Modbus exception code (e.g. 4
            DEVICE_FAILURE, 6 DEVICE_BUSY); None = answer normally.
        ignore_writes: Acknowledge writes but neither store nor act on them.
        single_client: While one client is connected, a second TCP connection is accepted and
            closed at once (reset), as SolarEdge and Huawei inverters do.
        reboot_s: Real seconds the port stays closed during `device.reboot()`.
    """

    refuse_connections: bool = False
    half_open: bool = False
    delay_s: float = 0.0
    exception_code: int | None = None
    ignore_writes: bool = False
    single_client: bool = False
    reboot_s: float = 0.5
    _observers: list[PlanObserver] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_observers":
            object.__setattr__(self, name, value)
            return
        _check(name, value)
        object.__setattr__(self, name, value)
        self._notify(frozenset({name}))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fault field names, in declaration order."""
        return tuple(f.name for f in fields(cls) if not f.name.startswith("_"))

    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON-ready dict of every fault field."""
        return {name: getattr(self, name) for name in self.names()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultPlan:
        """A plan from a (partial) JSON object; missing fields take their defaults.

        Raises:
            FaultPlanError: an unknown field or a bad value (naming the field).
        """
        plan = cls()
        plan.update(**data)
        return plan

    def update(self, /, **changes: Any) -> FaultPlan:
        """Change several fields at once: all are validated before any is applied.

        Returns:
            The plan itself.

        Raises:
            FaultPlanError: an unknown field or a bad value; the plan is then unchanged.
        """
        for name, value in changes.items():
            _check(name, value)
        for name, value in changes.items():
            object.__setattr__(self, name, value)
        if changes:
            self._notify(frozenset(changes))
        return self

    def reset(self) -> FaultPlan:
        """Clear every fault (back to a well-behaved device); returns the plan itself."""
        defaults = FaultPlan()
        return self.update(**{name: getattr(defaults, name) for name in self.names()})

    def subscribe(self, observer: PlanObserver) -> Callable[[], None]:
        """Call `observer(plan, changed_field_names)` after every change; returns an unsubscriber."""
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def _notify(self, changed: frozenset[str]) -> None:
        # Field assignments in the dataclass __init__ run before _observers exists.
        try:
            observers = list(self._observers)
        except AttributeError:
            return
        for observer in observers:
            observer(self, changed)


@dataclass(slots=True)
class DeviceStats:
    """Connection and request counters of one device face since it was created.

    Attributes:
        accepted: TCP connections accepted (and served).
        refused: Connections closed at once by `single_client` or during shutdown. Connections
            refused by a closed listener never reach the device and are not counted.
        dropped: Connections closed by `drop_connections()` or `reboot()`.
        active: Connections open now.
        requests: Requests received (Modbus: complete MBAP frames).
        answered: Replies sent (normal and exception replies).
        reboots: Reboots so far.
    """

    accepted: int = 0
    refused: int = 0
    dropped: int = 0
    active: int = 0
    requests: int = 0
    answered: int = 0
    reboots: int = 0

    def to_json(self) -> dict[str, int]:
        """The counters as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
