"""An in-memory device behind the Driver protocol, scripted per test, for unit tests without sockets."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel

from drivers.base import Capability, DeviceInfo, DeviceTelemetry, Setpoints, holds
from drivers.errors import DeviceRejected, DeviceUnreachable, NotConfirmed
from gateway.core.config import DeviceConfig, SiteConfig


class Writes(enum.Enum):
    """What the device does with the next write."""

    ACCEPT = "accept"  # takes it; read_back shows it (once ``gate`` is open, when one is set)
    REJECT = "reject"  # answers with an error (a Modbus exception), holds what it held
    IGNORE = "ignore"  # acknowledges it but never holds it: read_back keeps the old values
    HANG = "hang"  # never answers


#: What the device holds out of the box, and again after a reboot.
FACTORY = Setpoints(reserve_pct=10, grid_charging=True, export_limit_w=None)
#: A battery inverter that takes the three self-consumption setpoints.
BATTERY_SINK = frozenset({
    Capability.BATTERY, Capability.BACKUP_RESERVE, Capability.GRID_CHARGING, Capability.EXPORT_LIMIT,
})

_CONFIRM_POLL_S = 0.005


class _MemoryOptions(BaseModel):
    """An in-memory device has no options."""


_NO_OPTIONS = _MemoryOptions()


def device_config(name: str, *, poll_interval_s: float = 0.05,
                  stale_after_s: float | None = None) -> DeviceConfig:
    """A site's config entry for an in-memory device.

    Built without validation: ``memory`` is no registered driver type (validation checks the
    options of the real families). The site and the poller read only the name, the poll
    interval and the stale limit.
    """
    return DeviceConfig.model_construct(name=name, type="memory", poll_interval_s=poll_interval_s,
                                        stale_after_s=stale_after_s, options=_NO_OPTIONS)


def site_config(energy_site_id: int, devices: list[DeviceConfig]) -> SiteConfig:
    """A site of in-memory devices (unvalidated for the same reason as ``device_config``)."""
    return SiteConfig.model_construct(energy_site_id=energy_site_id, name="Home",
                                      time_zone="Europe/Berlin", devices=devices)


class MemoryDriver:
    """One device and its driver in memory; a test sets what it does and reads what was asked.

    ``calls`` records every call as ``"<name>.<method>"``; pass one list to several devices to
    see the order across them. ``apply`` behaves like the real drivers: write, then read back
    until the device holds the setpoints (``NotConfirmed`` after ``confirm_timeout_s``).
    """

    def __init__(
        self, name: str, *, calls: list[str] | None = None,
        capabilities: frozenset[Capability] = BATTERY_SINK, confirm_timeout_s: float = 1.0,
        reports_held: bool = False,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.calls: list[str] = [] if calls is None else calls
        self.confirm_timeout_s = confirm_timeout_s
        self.reports_held = reports_held  # telemetry carries the held setpoints (as SunSpec's does)
        self.holding = FACTORY
        self.info = DeviceInfo(manufacturer="Memory", model="M1", serial_number=f"{name}-1",
                               firmware_version="1.0", max_charge_w=5000.0, max_discharge_w=5000.0)
        self.reachable = True
        self.reads_hang = False
        self.read_error: Exception | None = None  # raised by the next reads (a driver bug, say)
        self.writes = Writes.ACCEPT
        self.script: list[Writes] = []  # the next writes' behaviours, before ``writes`` applies
        self.gate: asyncio.Event | None = None  # an accepted write shows only once this is set
        self.before_write: Callable[[Setpoints], Awaitable[None]] | None = None  # a test's probe
        self.written: list[Setpoints] = []  # every apply's setpoints, in order
        self.read_at: list[float] = []  # monotonic time of every read
        self.connect_at: list[float] = []  # monotonic time of every connect attempt
        self.connects = 0  # connects that succeeded
        self._pending: Setpoints | None = None

    def reboot(self) -> None:
        """The device restarts with its factory setpoints (the connection may survive it)."""
        self._pending = None
        self.holding = FACTORY

    def _record(self, call: str) -> None:
        self.calls.append(f"{self.name}.{call}")
        if not self.reachable:
            raise DeviceUnreachable(f"{self.name}: connection refused")

    async def connect(self) -> DeviceInfo:
        self.connect_at.append(time.monotonic())
        self._record("connect")
        self.connects += 1
        return self.info

    async def read(self) -> DeviceTelemetry:
        self._record("read")
        self.read_at.append(time.monotonic())
        if self.read_error is not None:
            raise self.read_error
        if self.reads_hang:
            await asyncio.Event().wait()
        return DeviceTelemetry(
            taken_at=datetime.now(UTC), solar_w=1200.0, battery_w=-300.0, grid_w=100.0,
            soc_pct=55.0, capacity_wh=10_000.0, grid_up=True,
            held=self._held() if self.reports_held else None,
        )

    async def read_back(self) -> Setpoints:
        self._record("read_back")
        return self._held()

    async def apply(self, setpoints: Setpoints) -> None:
        self._record("apply")
        self.written.append(setpoints)
        if self.before_write is not None:
            await self.before_write(setpoints)
        behaviour = self.script.pop(0) if self.script else self.writes
        if behaviour is Writes.REJECT:
            raise DeviceRejected(f"{self.name}: illegal data value", code=3)
        if behaviour is Writes.HANG:
            await asyncio.Event().wait()
        if behaviour is Writes.ACCEPT:
            self._pending = setpoints
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            held = await self.read_back()
            if holds(held, setpoints, self.capabilities):
                return
            if time.monotonic() > deadline:
                raise NotConfirmed(f"{self.name}: read-back does not show the write",
                                   expected=setpoints, actual=held)
            await asyncio.sleep(_CONFIRM_POLL_S)

    async def close(self) -> None:
        self.calls.append(f"{self.name}.close")

    def _held(self) -> Setpoints:
        if self._pending is not None and (self.gate is None or self.gate.is_set()):
            self.holding, self._pending = self._pending, None
        return self.holding
