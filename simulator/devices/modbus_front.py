"""The public Modbus TCP port of a simulated device: an MBAP relay in front of pymodbus that plays faults.

Why a relay: pymodbus's server owns its sockets and has no seam for refusing, dropping or
half-opening connections, nor for limiting clients, and restarting it moves nothing but its own
listener. So the device's pymodbus `ModbusTcpServer` listens on an internal loopback port, and this
front owns the public port: it accepts clients, opens one internal connection per client, and
relays whole MBAP frames both ways, applying the device's `FaultPlan` per connection and per frame:

- `refuse_connections` closes the public listener (the kernel refuses), and reopens it on the same
  port when cleared;
- `single_client` resets a second concurrent connection at once;
- `half_open` reads requests and never answers; `delay_s` holds each request before handling it;
- `exception_code` answers each request itself with that Modbus exception (nothing reaches pymodbus);
- `drop_connections()` and `reboot()` reset every open connection.

Register-level faults (`ignore_writes`) stay in the device's pymodbus access hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable

import structlog

from simulator.faults import DeviceStats, FaultPlan

log = structlog.get_logger(__name__)

_MBAP = struct.Struct(">HHH")  # transaction id, protocol id, length (unit id + PDU)
_MAX_LENGTH = 254  # unit id + the longest PDU (253 bytes)
_REBIND_TIMEOUT_S = 5.0
_REBIND_RETRY_S = 0.05


class _Closed(Exception):
    """The peer closed its side, or sent something that is not Modbus TCP."""


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    try:
        header = await reader.readexactly(_MBAP.size)
        _, protocol, length = _MBAP.unpack(header)
        if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
            raise _Closed
        return header + await reader.readexactly(length)
    except (asyncio.IncompleteReadError, OSError) as exc:
        raise _Closed from exc


def exception_frame(request: bytes, code: int) -> bytes:
    """The MBAP frame answering `request` with Modbus exception `code` (function code | 0x80)."""
    tid, protocol, _ = _MBAP.unpack_from(request)
    unit, function = request[6], request[7]
    return _MBAP.pack(tid, protocol, 3) + bytes((unit, (function | 0x80) & 0xFF, code))


def _abort(writer: asyncio.StreamWriter) -> None:
    # abort() resets at once, as a device losing power or enforcing a limit would.
    writer.transport.abort()


class _Connection:
    def __init__(self, writer: asyncio.StreamWriter, task: asyncio.Task[None] | None) -> None:
        self.writer = writer
        self.task = task


class ModbusFront:
    """The public listener of one Modbus TCP face, relaying to an internal pymodbus server.

    Args:
        host: Loopback address for both the public and the internal port.
        port: Public port; 0 = ephemeral (then `port` holds the bound one after `start`).
        plan: The fault plan to play (observed: changes apply at once).
        name: Label for logs and task names.
    """

    def __init__(self, host: str, port: int, plan: FaultPlan, name: str) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.stats = DeviceStats()
        self._plan = plan
        self._unsubscribe = plan.subscribe(self._on_plan_change)
        self._upstream_port = 0
        self._running = False
        self._rebooting = False
        self._listener: asyncio.Server | None = None
        self._opening: asyncio.Task[None] | None = None
        self._reboot_task: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()

    # --- plan ---------------------------------------------------------------------------------

    @property
    def plan(self) -> FaultPlan:
        """The fault plan in force (assign a new one to replace it)."""
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._unsubscribe()
        self._plan = plan
        self._unsubscribe = plan.subscribe(self._on_plan_change)
        self._sync_listener()

    @property
    def listening(self) -> bool:
        """True while the public port accepts connections."""
        return self._listener is not None

    def _on_plan_change(self, plan: FaultPlan, changed: frozenset[str]) -> None:
        del plan
        if "refuse_connections" in changed:
            self._sync_listener()

    async def settled(self) -> None:
        """Wait until the listener matches the plan (e.g. reopened after refusal was cleared)."""
        while self._opening is not None and not self._opening.done():
            await asyncio.shield(self._opening)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, upstream_port: int) -> None:
        """Open the public port, relaying to the internal server on `upstream_port`."""
        self._upstream_port = upstream_port
        self._running = True
        self._rebooting = False
        if not self._plan.refuse_connections:
            await self._open()
        elif self.port == 0:
            # Refusing from the start still needs a port to refuse on.
            await self._open()
            self._sync_listener()

    async def stop(self) -> None:
        """Close the public port and every connection; cancel pending reopen or reboot (idempotent)."""
        self._running = False
        for task in (self._reboot_task, self._opening):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reboot_task = self._opening = None
        self._close_listener()
        await self._drop_all(count=False)

    async def drop_connections(self) -> int:
        """Reset every open client connection now; returns how many were dropped."""
        return await self._drop_all(count=True)

    async def reboot(self, reset: Callable[[], None], *, wait: bool = True) -> None:
        """Play a reboot: port closed and connections reset, `reset()` called, port back after reboot_s.

        Args:
            reset: Restores the device's factory settings (called while the port is closed).
            wait: Return only once the port listens again (else at once; the reboot goes on).
        """
        if self._reboot_task is not None and not self._reboot_task.done():
            self._reboot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reboot_task
        self._rebooting = True
        self._sync_listener()
        await self._drop_all(count=True)
        reset()
        self.stats.reboots += 1
        task = asyncio.create_task(self._come_back(self._plan.reboot_s), name=f"{self.name}-reboot")
        self._reboot_task = task
        if wait:
            await asyncio.shield(task)

    async def _come_back(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self._rebooting = False
        self._sync_listener()
        await self.settled()

    # --- listener -----------------------------------------------------------------------------

    def _sync_listener(self) -> None:
        if not self._running:
            return
        want = not self._plan.refuse_connections and not self._rebooting
        if not want:
            self._close_listener()
        elif self._listener is None and (self._opening is None or self._opening.done()):
            self._opening = asyncio.get_running_loop().create_task(
                self._reopen(), name=f"{self.name}-listen"
            )

    def _close_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            # close() stops accepting at once; open connections are left alone.
            listener.close()

    async def _open(self) -> None:
        listener = await asyncio.start_server(self._on_client, self.host, self.port)
        self._listener = listener
        self.port = int(listener.sockets[0].getsockname()[1])

    async def _reopen(self) -> None:
        async with asyncio.timeout(_REBIND_TIMEOUT_S):
            while True:
                try:
                    await self._open()
                except OSError:
                    # The old socket may linger for a moment: same port or nothing.
                    await asyncio.sleep(_REBIND_RETRY_S)
                    continue
                break
        if self._plan.refuse_connections or self._rebooting or not self._running:
            self._close_listener()

    # --- connections --------------------------------------------------------------------------

    async def _drop_all(self, *, count: bool) -> int:
        connections = list(self._connections)
        for conn in connections:
            _abort(conn.writer)
            if conn.task is not None:
                conn.task.cancel()
        for conn in connections:
            if conn.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.task
        if count:
            self.stats.dropped += len(connections)
        return len(connections)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._running or self._rebooting or (self._plan.single_client and self._connections):
            self.stats.refused += 1
            _abort(writer)
            return
        conn = _Connection(writer, asyncio.current_task())
        self._connections.add(conn)
        self.stats.accepted += 1
        self.stats.active += 1
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # A drop, a reboot or a stop cancels this task; that is the simulator's normal life.
            # asyncio runs this coroutine as the connection's task and, on 3.11, calls
            # task.exception() when it ends, which raises for a cancelled task and is logged as
            # "Exception in callback StreamReaderProtocol.connection_made..." with a traceback:
            # end the task normally instead (nothing else awaits it but _drop_all).
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            log.debug("modbus front connection closed", device=self.name)
        finally:
            _abort(writer)
            self._connections.discard(conn)
            self.stats.active -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self._upstream_port)
        except OSError:
            log.warning("modbus front lost its internal server", device=self.name)
            return
        replies = asyncio.create_task(
            self._relay_replies(up_reader, writer), name=f"{self.name}-replies"
        )
        try:
            await self._relay_requests(reader, writer, up_writer)
        except _Closed:
            pass
        finally:
            _abort(up_writer)
            replies.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replies

    async def _relay_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        while True:
            frame = await _read_frame(reader)
            self.stats.requests += 1
            if self._plan.delay_s > 0:
                await asyncio.sleep(self._plan.delay_s)
            plan = self._plan  # as it stands once the delay is over
            if plan.half_open:
                continue
            if plan.exception_code is not None:
                writer.write(exception_frame(frame, plan.exception_code))
                self.stats.answered += 1
                continue
            upstream.write(frame)

    async def _relay_replies(self, upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await _read_frame(upstream)
                if self._plan.half_open:
                    continue
                writer.write(frame)
                self.stats.answered += 1
        except _Closed:
            # The internal server went away: the client must see its connection end too.
            _abort(writer)


class FrontedFaults:
    """The fault-plan face of a device whose Modbus TCP port is a ModbusFront (mixin)."""

    _front: ModbusFront

    @property
    def faults(self) -> FaultPlan:
        """The live fault plan of the Modbus TCP port (mutate it, or assign a new plan)."""
        return self._front.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._front.plan = plan

    @property
    def stats(self) -> DeviceStats:
        """Connection and request counters of the Modbus TCP port."""
        return self._front.stats

    async def apply_faults(self, /, **changes: object) -> FaultPlan:
        """Change fault fields (validated together) and wait until the listener follows the plan.

        Raises:
            FaultPlanError: an unknown field or a bad value; nothing changes then.
        """
        self.faults.update(**changes)
        await self._front.settled()
        return self.faults


class FrontedDevice(FrontedFaults, ABC):
    """A device whose one network face is its ModbusFront (the SunSpec device, the brand twins):
    its port, whether it listens, dropping connections and rebooting behind that front."""

    @property
    def port(self) -> int:
        """The public Modbus TCP port (the bound one once started; stable across reboots)."""
        return self._front.port

    @property
    def listening(self) -> bool:
        """True while the public port accepts connections."""
        return self._front.listening

    async def drop_connections(self) -> int:
        """Reset every client connection now; returns how many were open."""
        return await self._front.drop_connections()

    async def reboot(self, *, wait: bool = True) -> None:
        """Reboot: drop connections, restore factory settings, port closed for `faults.reboot_s`.

        Physics (the battery's SoC, the energy counters) survives: it is not a setting.

        Args:
            wait: Return once the port listens again; False = return at once.
        """
        await self._front.reboot(self.factory_reset, wait=wait)

    @abstractmethod
    def factory_reset(self) -> None:
        """Restore the device's factory settings (each device knows its own)."""
