"""Shared Modbus TCP connections: one per endpoint, one transaction at a time, commands first."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Sequence
from enum import IntEnum
from typing import Any

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.background import spawn, stop
from drivers.errors import DeviceRejected, DeviceUnreachable
from drivers.transport.backoff import reconnect
from drivers.transport.shared import SharedConnections

__all__ = ["ModbusEndpoint", "ModbusPool", "Priority"]

_log = structlog.get_logger("drivers.transport.modbus")


class Priority(IntEnum):
    """Queue order of a transaction on its endpoint; lower runs first."""

    COMMAND = 0
    POLL = 1


class _PriorityGate:
    """A lock whose waiters are served by (priority, arrival) instead of arrival alone."""

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (int(priority), next(self._seq), fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # We were handed the gate just as we got cancelled: pass it on.
                self._release()
            elif entry in self._waiters:
                # A release may already have popped (and skipped) our cancelled future.
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())

    def _release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # ownership passes straight to the waiter; _busy stays True
                return
        self._busy = False


class ModbusEndpoint:
    """One device endpoint (host, port): a single pymodbus client shared by every unit id behind it.

    Transactions run one at a time; waiting commands go before waiting polls. Each transaction has
    ``timeout_s``. When the connection is down a background task reconnects with
    ``drivers.transport.backoff.reconnect`` (the only retry layer: the pymodbus client has
    ``retries=0`` and its own reconnect disabled). Failures raise ``DeviceUnreachable``; Modbus
    exception replies raise ``DeviceRejected`` carrying the exception code.
    """

    def __init__(self, host: str, port: int, *, timeout_s: float, backoff_max_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self._gate = _PriorityGate()
        self._client: AsyncModbusTcpClient | None = None
        self._up = asyncio.Event()
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False
        self._connected_at = 0.0
        self._log = _log.bind(endpoint=f"{host}:{port}")

    @property
    def connected(self) -> bool:
        """True while the TCP connection is open."""
        return self._client is not None and bool(self._client.connected)

    @property
    def queued(self) -> int:
        """Transactions waiting for their turn (the one in flight not included)."""
        return self._gate.waiting

    def __repr__(self) -> str:
        return f"ModbusEndpoint({self.host}:{self.port}, connected={self.connected})"

    async def connection_age(self, timeout_s: float | None = None) -> float:
        """Seconds since the current connection opened, connecting first when there is none.

        For devices that ignore requests for a while after a connect (their profile's settle).

        Raises:
            DeviceUnreachable: not connected within ``timeout_s``.
        """
        await self._wait_connected(self.timeout_s if timeout_s is None else timeout_s)
        return asyncio.get_running_loop().time() - self._connected_at

    async def read_holding(
        self,
        unit_id: int,
        address: int,
        count: int,
        *,
        priority: Priority = Priority.POLL,
        timeout_s: float | None = None,
    ) -> list[int]:
        """Read ``count`` holding registers (FC3) from ``address`` of unit ``unit_id``.

        ``timeout_s`` overrides the pool's per-request timeout for this call.

        Raises:
            DeviceUnreachable: refused, dropped or no answer within ``timeout_s``.
            DeviceRejected: the device answered with a Modbus exception (``code``).
        """
        return await self._read(3, unit_id, address, count, priority, timeout_s)

    async def read_input(
        self,
        unit_id: int,
        address: int,
        count: int,
        *,
        priority: Priority = Priority.POLL,
        timeout_s: float | None = None,
    ) -> list[int]:
        """Read ``count`` input registers (FC4) from ``address`` of unit ``unit_id``.

        Raises:
            DeviceUnreachable: refused, dropped or no answer within ``timeout_s``.
            DeviceRejected: the device answered with a Modbus exception (``code``).
        """
        return await self._read(4, unit_id, address, count, priority, timeout_s)

    async def _read(  # noqa: PLR0917 - one private helper of the two read calls
        self, function: int, unit_id: int, address: int, count: int, priority: Priority,
        timeout_s: float | None,
    ) -> list[int]:
        what = f"read {count} @ {address} unit {unit_id} (FC{function})"
        async with self._transaction(priority, what, timeout_s) as client:
            if function == 4:
                response = await client.read_input_registers(address, count=count, device_id=unit_id)
            else:
                response = await client.read_holding_registers(address, count=count, device_id=unit_id)
        registers = list(self._checked(response, what).registers)
        if len(registers) != count:
            raise DeviceUnreachable(
                f"{self.host}:{self.port}: asked {count} registers at {address}, got {len(registers)}"
            )
        return registers

    async def write(
        self,
        unit_id: int,
        address: int,
        values: Sequence[int],
        *,
        priority: Priority = Priority.COMMAND,
        timeout_s: float | None = None,
    ) -> None:
        """Write registers from ``address`` of unit ``unit_id``: FC6 for one value, FC16 for more.

        ``timeout_s`` overrides the pool's per-request timeout for this call.

        Raises:
            DeviceUnreachable: refused, dropped or no answer within ``timeout_s``.
            DeviceRejected: the device answered with a Modbus exception (``code``).
        """
        if not values:
            raise ValueError("nothing to write")
        what = f"write {list(values)} @ {address} unit {unit_id}"
        async with self._transaction(priority, what, timeout_s) as client:
            if len(values) == 1:
                response = await client.write_register(address, values[0], device_id=unit_id)
            else:
                response = await client.write_registers(address, list(values), device_id=unit_id)
        self._checked(response, what)

    @contextlib.asynccontextmanager
    async def _transaction(
        self, priority: Priority, what: str, timeout_s: float | None
    ) -> AsyncIterator[AsyncModbusTcpClient]:
        # Wait for a connection before queueing, so requests to a dead device fail side by side
        # instead of one timeout after another.
        timeout = self.timeout_s if timeout_s is None else timeout_s
        await self._wait_connected(timeout)
        async with self._gate.hold(priority):
            client = await self._wait_connected(timeout)
            try:
                async with asyncio.timeout(timeout):
                    yield client
            except TimeoutError as exc:
                # A late answer would be taken for the next transaction's: start afresh.
                self._drop("timeout")
                raise DeviceUnreachable(
                    f"{self.host}:{self.port}: no answer to {what} within {timeout} s"
                ) from exc
            except (ModbusException, OSError) as exc:
                self._drop(type(exc).__name__)
                raise DeviceUnreachable(f"{self.host}:{self.port}: {what} failed: {exc}") from exc
            # pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 drops a
            # cancellation that races the answer; deliver it here or the caller never stops.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError

    def _checked(self, response: Any, what: str) -> Any:
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise DeviceRejected(
                f"{self.host}:{self.port}: {what} rejected with Modbus exception {code}", code=code
            )
        return response

    async def _wait_connected(self, wait_s: float) -> AsyncModbusTcpClient:
        if self._closed:
            raise DeviceUnreachable(f"{self.host}:{self.port}: endpoint closed")
        if self._client is not None and self._client.connected:
            return self._client
        self._up.clear()
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = spawn(
                self._reconnect_loop(), name=f"modbus reconnect {self.host}:{self.port}"
            )
        try:
            async with asyncio.timeout(wait_s):
                await self._up.wait()
        except TimeoutError as exc:
            raise DeviceUnreachable(f"{self.host}:{self.port}: not connected within {wait_s} s") from exc
        if self._client is None or not self._client.connected:
            raise DeviceUnreachable(f"{self.host}:{self.port}: connection lost")
        return self._client

    async def _reconnect_loop(self) -> None:
        try:
            await reconnect(
                self._connect_once, retry_on=DeviceUnreachable, backoff_max_s=self.backoff_max_s,
                closed=lambda: self._closed, what=f"{self.host}:{self.port}",
            )  # fmt: skip
        except DeviceUnreachable:
            return  # stopped because the endpoint closed
        except Exception:
            # Waiters time out with DeviceUnreachable; the next request starts a new loop.
            self._log.exception("modbus.reconnect_failed")
            return
        self._up.set()

    async def _connect_once(self) -> None:
        if self._client is not None:
            self._client.close()
        # retries=0 and reconnect_delay=0: reconnect() is the one retry layer, and pymodbus
        # must not spawn its own reconnect task behind our back. Its own request timeout is a
        # backstop only: asyncio.timeout in _transaction (per-call overridable) fires first.
        self._client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=max(2 * self.timeout_s, 10.0),
            retries=0,
            reconnect_delay=0,
        )
        if not await self._client.connect():
            raise DeviceUnreachable(f"{self.host}:{self.port}: connect failed")
        self._connected_at = asyncio.get_running_loop().time()
        self._log.info("modbus.connected")

    def _drop(self, reason: str) -> None:
        if self._client is not None:
            self._log.warning("modbus.connection_dropped", reason=reason)
            self._client.close()
        self._up.clear()

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting; later requests raise DeviceUnreachable."""
        self._closed = True
        task, self._reconnect = self._reconnect, None
        await stop(task)
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusPool(SharedConnections[ModbusEndpoint]):
    """Ref-counted Modbus TCP endpoints, one per (host, port) for the whole process.

    Args:
        timeout_s: per-transaction deadline in seconds (also the wait for a connection).
        backoff_max_s: cap of the reconnect backoff in seconds.
    """

    def __init__(self, *, timeout_s: float = 1.0, backoff_max_s: float = 10.0) -> None:
        super().__init__(self._endpoint)
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s

    def _endpoint(self, host: str, port: int) -> ModbusEndpoint:
        return ModbusEndpoint(host, port, timeout_s=self.timeout_s, backoff_max_s=self.backoff_max_s)
