"""A small Modbus TCP server (FC3, FC4, FC6, FC16) over a device's register callbacks, with timing quirks.

The brand twins (Sungrow, Huawei) need what pymodbus's simulator has no seam for: answers
computed per request from the home's physics in two tables (holding and input), refusals with
the exception the vendor documents, requests ignored for a while after a connect, and slow
answers. The device's public port is a `ModbusFront` (connection faults) relaying to this server
on an internal loopback port, one internal connection per client, so "after a connect" is the
client's connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

log = structlog.get_logger(__name__)

_MBAP = struct.Struct(">HHH")
_MAX_LENGTH = 254

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
GATEWAY_TARGET_FAILED = 11

Table = Literal["holding", "input"]


class RegisterDevice(Protocol):
    """What a twin answers: registers computed now, or a Modbus exception code."""

    def read(self, table: Table, address: int, count: int) -> list[int] | int:
        """``count`` registers of ``table`` from ``address``, or an exception code."""
        ...

    def write(self, address: int, values: list[int]) -> int | None:
        """Store holding registers from ``address`` (all or nothing); an exception code refuses."""
        ...


@dataclass
class Timing:
    """Request timing of a device.

    Attributes:
        settle_s: Real seconds after a connect during which requests are read and ignored.
        answer_delay_s: Real seconds each answer takes (requests on a connection in order).
    """

    settle_s: float = 0.0
    answer_delay_s: float = 0.0


def answer(device: RegisterDevice, unit_id: int, frame: bytes) -> bytes:
    """The MBAP reply to one request frame (pure: no I/O, no clock)."""
    tid, _, _ = _MBAP.unpack_from(frame)
    unit, pdu = frame[6], frame[7:]
    function = pdu[0] if pdu else 0

    def reply(body: bytes) -> bytes:
        return _MBAP.pack(tid, 0, 1 + len(body)) + bytes((unit,)) + body

    def error(code: int) -> bytes:
        return reply(bytes(((function | 0x80) & 0xFF, code)))

    if unit != unit_id:
        return error(GATEWAY_TARGET_FAILED)
    if function in (3, 4):
        if len(pdu) != 5:
            return error(ILLEGAL_VALUE)
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            return error(ILLEGAL_VALUE)
        result = device.read("holding" if function == 3 else "input", address, count)
        if isinstance(result, int):
            return error(result)
        return reply(bytes((function, 2 * count)) + b"".join(v.to_bytes(2, "big") for v in result))
    if function == 6:
        if len(pdu) != 5:
            return error(ILLEGAL_VALUE)
        address, value = struct.unpack(">HH", pdu[1:5])
        code = device.write(address, [value])
        return error(code) if code is not None else reply(pdu[:5])
    if function == 16:
        if len(pdu) < 6:
            return error(ILLEGAL_VALUE)
        address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= 123 or nbytes != 2 * count or len(pdu) != 6 + nbytes:
            return error(ILLEGAL_VALUE)
        values = [int.from_bytes(pdu[6 + 2 * i : 8 + 2 * i], "big") for i in range(count)]
        code = device.write(address, values)
        return error(code) if code is not None else reply(pdu[:5])
    return error(ILLEGAL_FUNCTION)


class RegisterServer:
    """The internal Modbus TCP listener of one twin (loopback, ephemeral port).

    Args:
        device: The register callbacks.
        unit_id: The unit id it answers (others get exception 11).
        timing: Settle and answer delays (read at each request: tests may change them).
        monotonic: Real-time clock (seconds).
    """

    def __init__(
        self,
        device: RegisterDevice,
        unit_id: int,
        timing: Timing,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.unit_id = unit_id
        self.timing = timing
        self.ignored = 0  # requests dropped inside a settle window
        self._monotonic = monotonic
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str) -> int:
        """Listen on ``host`` (ephemeral port); returns the port."""
        self._server = await asyncio.start_server(self._on_client, host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        connected_at = self._monotonic()
        try:
            while True:
                header = await reader.readexactly(_MBAP.size)
                _, protocol, length = _MBAP.unpack(header)
                if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                    return
                frame = header + await reader.readexactly(length)
                if self._monotonic() - connected_at < self.timing.settle_s:
                    self.ignored += 1  # still starting its Modbus service: no answer at all
                    continue
                if self.timing.answer_delay_s > 0:
                    await asyncio.sleep(self.timing.answer_delay_s)
                writer.write(answer(self.device, self.unit_id, frame))
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # see ModbusFront._on_client: end the connection task normally
        finally:
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)
