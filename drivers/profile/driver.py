"""The one driver of every profile device: the engine's plans run over a shared Modbus TCP endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import structlog

from drivers.background import spawn, stop
from drivers.base import SETPOINT_CAPABILITIES, Capability, DeviceInfo, DeviceTelemetry, Setpoints
from drivers.errors import ConfigurationError, DriverError, NotConfirmed
from drivers.profile.catalog import compiled
from drivers.profile.engine import (
    PointValues,
    capabilities_from,
    decode_answers,
    device_info_from,
    identifies,
    setpoints_from,
    targets_for,
    telemetry_from,
    writes_for,
)
from drivers.profile.options import ProfileOptions
from drivers.profile.planner import Read
from drivers.transport import ModbusEndpoint, Priority, Transports

if TYPE_CHECKING:
    from drivers.registry import DriverClass

__all__ = ["ProfileDriver", "ProfileOptions"]


class ProfileDriver:
    """A device whose registers a profile describes (``options.profile``), behind one endpoint.

    Layout, read plans and scale factors are fixed at connect; a command writes only the points
    whose value differs from the last poll and confirms with one read of the control points, so
    it costs the write(s) plus one read when the device takes it at once.
    ``transactions`` counts the Modbus requests this driver made (benchmarks, tests).
    """

    options_model: ClassVar[type[ProfileOptions]] = ProfileOptions

    def __init__(self, name: str, options: ProfileOptions, transports: Transports) -> None:
        self.name = name
        self.options = options
        self.compiled = compiled(options.profile)
        self.capabilities: frozenset[Capability] = frozenset()
        self.info: DeviceInfo | None = None
        self.transactions = 0
        self._values = PointValues()
        self._scale_factors: dict[str, int] = {}
        self._out_of_range: set[str] = set()  # points whose last reading was out of range
        self._transports = transports
        self._endpoint: ModbusEndpoint | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("drivers.profile").bind(
            device=name, profile=options.profile,
            endpoint=f"{options.host}:{options.port}/{options.unit}",
        )  # fmt: skip

    # ----------------------------------------------------------------------- lifecycle

    async def connect(self) -> DeviceInfo:
        """Identify the device by its identification registers, read its scale factors once and
        take a first reading of every point (which sets ``capabilities``).

        Raises:
            DeviceUnreachable: the device does not answer.
            ConfigurationError: the identification registers name no model of this family.
        """
        c = self.compiled
        ident = await self._read(c.identity_reads, Priority.POLL)
        if identifies(c, ident) is None:
            raw = ident.raw.get(c.profile.identity.match_point)
            raise ConfigurationError(
                f"{self.name}: {c.profile.identity.match_point} = {raw!r} is no "
                f"{c.profile.identity.manufacturer} {c.profile.identity.model} model"
            )
        if c.scale_reads:
            scales = await self._read(c.scale_reads, Priority.POLL)
            self._scale_factors = {n: int(v) for n, v in scales.raw.items() if isinstance(v, int)}
        values = await self._read(c.poll_reads, Priority.POLL)
        self._values = values
        info = device_info_from(c, ident)
        if info.battery_capacity_wh is None and self.options.capacity_wh is not None:
            info = replace(info, battery_capacity_wh=self.options.capacity_wh)
        self.info = info
        self.capabilities = capabilities_from(c, values)
        self._log.info(
            "profile.connected", model=info.model, serial=info.serial_number,
            capabilities=sorted(self.capabilities),
        )  # fmt: skip
        return info

    async def close(self) -> None:
        """Stop a watchdog refresh and give back this driver's share of the endpoint."""
        task, self._watchdog = self._watchdog, None
        await stop(task)
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            await self._transports.modbus.release(endpoint)

    # ----------------------------------------------------------------------- reading

    async def read(self) -> DeviceTelemetry:
        """One reading of telemetry and control points (the poll plan), with the held setpoints."""
        await self._identified()
        values = await self._read(self.compiled.poll_reads, Priority.POLL)
        self._values = self._values.merge(values)
        capacity = self.info.battery_capacity_wh if self.info else None
        telemetry = telemetry_from(self.compiled, values, now=datetime.now(UTC), capacity_wh=capacity)
        if not self.capabilities & SETPOINT_CAPABILITIES:
            return telemetry
        return replace(telemetry, held=setpoints_from(self.compiled, values, self.capabilities))

    async def read_back(self) -> Setpoints:
        """The setpoints as the device holds them now (one read of the control points)."""
        await self._identified()
        values = await self._read(self.compiled.control_reads, Priority.COMMAND)
        self._values = self._values.merge(values)
        return setpoints_from(self.compiled, self._values, self.capabilities)

    # ----------------------------------------------------------------------- writing

    async def apply(self, setpoints: Setpoints) -> None:
        """Write the points whose value differs from the last reading, then confirm them by read-back.

        The fewest transactions the device allows: the write(s) (contiguous points in one FC16)
        and one read of what was written, layout and scale factors cached from ``connect``.
        Writes go ahead of queued polls. A battery command's duration is written every time,
        and a driver-kept revert or watchdog timer restarts: re-sending a command keeps it alive.

        Raises:
            NotConfirmed: the read-back does not show the values within ``confirm_timeout_s``.
            DeviceRejected: the device refused a write (Modbus exception code in ``code``).
            DeviceUnreachable: the device does not answer.
        """
        await self._identified()
        c = self.compiled
        targets = targets_for(c, setpoints, self.capabilities, self._values, self._scale_factors)
        if not targets:
            return
        expected = dict(targets)
        # A battery command's duration is written every time: the write restarts the device's
        # revert timer, which is how the gateway's periodic re-send keeps a command alive.
        resend = self._resent_point(setpoints)
        pending = [(p, raw) for p, raw in targets if self._values.raw.get(p) != raw or p == resend]
        # Confirm what was written; the rest was right in the last poll (all of it when nothing
        # needs writing). Drift after that is the reconciliation's job, as for any device.
        confirm = dict(pending) or expected
        check = c.reads_for(dict.fromkeys(c.profile.read_back_of(p) for p in confirm))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.confirm_timeout_s
        pause = 0.02
        await self._write(pending)
        while True:
            values = await self._read(check, Priority.COMMAND)
            self._values = self._values.merge(values)
            actual = {p: values.raw.get(c.profile.read_back_of(p)) for p in confirm}
            if all(actual[p] == raw for p, raw in confirm.items()):
                break
            if loop.time() + pause > deadline:
                raise NotConfirmed(
                    f"{self.name}: device holds {actual}, expected {confirm}",
                    expected=confirm, actual=actual,
                )  # fmt: skip
            await asyncio.sleep(pause)  # the device applies writes on its own schedule
            pause = min(pause * 2, 0.25)
        if pending:
            self._log.info("profile.written", writes=dict(pending))
        self._arm_watchdog(setpoints, targets)  # a re-sent command restarts its timer, as on a device

    def _resent_point(self, setpoints: Setpoints) -> str | None:
        b = self.compiled.profile.controls.battery_power
        if b is None or setpoints.battery_w is None or Capability.BATTERY_POWER not in self.capabilities:
            return None
        return b.duration_point

    @property
    def timer_running(self) -> bool:
        """True while a battery command is being refreshed or waits for its revert."""
        return self._watchdog is not None and not self._watchdog.done()

    # ----------------------------------------------------------------------- internals

    def _arm_watchdog(self, setpoints: Setpoints, targets: Sequence[tuple[str, int | float]]) -> None:
        """After a battery command: refresh it before the device's watchdog drops it, or, on a
        device with neither a duration register nor a watchdog, write idle after ``revert_s``."""
        b = self.compiled.profile.controls.battery_power
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
        if b is None or setpoints.battery_w is None:
            return
        names = set(self.compiled.profile.control_points().get("battery_power", ()))
        if b.watchdog_s is not None:
            refresh = [(p, raw) for p, raw in targets if p in names]
            self._watchdog = spawn(
                self._refresh(refresh, b.watchdog_s, setpoints.revert_s), name=f"{self.name} watchdog"
            )
        elif b.duration_point is None and setpoints.revert_s > 0:
            idle: list[tuple[str, int | float]] = list(b.idle.items())
            self._watchdog = spawn(self._revert(idle, setpoints.revert_s), name=f"{self.name} revert")

    async def _refresh(self, writes: list[tuple[str, int | float]], every_s: float, for_s: int) -> None:
        """Re-send a battery command before the device's watchdog drops it, until it should revert."""
        loop = asyncio.get_running_loop()
        until = None if for_s <= 0 else loop.time() + for_s
        while until is None or loop.time() < until:
            await asyncio.sleep(every_s / 2)
            try:
                await self._write(writes)
            except DriverError as exc:
                self._log.warning("profile.watchdog_refresh_failed", error=str(exc))
                return

    async def _revert(self, idle: list[tuple[str, int | float]], after_s: int) -> None:
        """End a battery command the device would hold for ever (the policy sent a revert time)."""
        await asyncio.sleep(after_s)
        try:
            await self._write(idle)
        except DriverError as exc:
            self._log.warning("profile.revert_failed", error=str(exc))
        else:
            self._log.info("profile.reverted", after_s=after_s)

    async def _identified(self) -> None:
        if self.info is None:
            await self.connect()

    def _joined(self) -> ModbusEndpoint:
        if self._endpoint is None:
            self._endpoint = self._transports.modbus.acquire(self.options.host, self.options.port)
        return self._endpoint

    async def _settled(self) -> ModbusEndpoint:
        """The endpoint, once the device's settle time after a connect (Huawei: about 1 s in
        which it ignores requests) has passed; the first transaction on a connection waits."""
        endpoint = self._joined()
        # A margin: the device's clock starts when it has accepted, a moment after ours.
        settle = self.options.settle * 1.1 + 0.02 if self.options.settle > 0 else 0.0
        if settle > 0:
            age = await endpoint.connection_age(self.options.timeout_s)
            if age < settle:
                await asyncio.sleep(settle - age)
        return endpoint

    async def _read(self, reads: Sequence[Read], priority: Priority) -> PointValues:
        answers: list[tuple[Read, list[int]]] = []
        for read in reads:
            endpoint = await self._settled()
            self.transactions += 1
            timeout = self.options.timeout_s
            if read.table == "input":
                registers = await endpoint.read_input(
                    self.options.unit, read.address, read.count, priority=priority, timeout_s=timeout
                )
            else:
                registers = await endpoint.read_holding(
                    self.options.unit, read.address, read.count, priority=priority, timeout_s=timeout
                )
            answers.append((read, registers))
        values = decode_answers(self.compiled.profile, answers, self._scale_factors)
        # Logged when a point leaves its documented range and when it is back, not every poll.
        bad_now = {bad.point for bad in values.out_of_range}
        for bad in values.out_of_range:
            if bad.point not in self._out_of_range:
                self._log.warning(
                    "profile.out_of_range", point=bad.point, value=bad.value, range=list(bad.range)
                )
        covered = {name for r in reads for name in r.points}
        for name in sorted((self._out_of_range & covered) - bad_now):
            self._log.info("profile.back_in_range", point=name)
        self._out_of_range = (self._out_of_range - covered) | bad_now
        return values

    async def _write(self, targets: Sequence[tuple[str, int | float]]) -> None:
        if not targets:
            return
        for write in writes_for(self.compiled, targets):
            endpoint = await self._settled()
            self.transactions += 1
            await endpoint.write(
                self.options.unit, write.address, write.values,
                priority=Priority.COMMAND, timeout_s=self.options.timeout_s,
            )  # fmt: skip


if TYPE_CHECKING:  # mypy proves the class fits the registry's protocol; nothing runs
    _fits_registry: DriverClass = ProfileDriver
