"""Modbus TCP (MBAP) frames, sans-IO: split a byte stream into requests and build replies."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
HEADER_LEN = _HEADER.size
MAX_READ = 125
MAX_WRITE = 123


class Function(enum.IntEnum):
    """Function codes the proxy serves (SunSpec and most inverters live in holding registers)."""

    READ_HOLDING = 3
    WRITE_SINGLE = 6
    WRITE_MULTIPLE = 16


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes sent back to clients."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4
    GATEWAY_TARGET_FAILED = 11


class FrameError(ValueError):
    """The byte stream is not Modbus TCP; the connection should be closed."""


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request. ``values`` holds the registers of a write, else is empty."""

    transaction_id: int
    unit_id: int
    function: int
    address: int
    count: int
    values: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A well-framed request that must be answered with an exception."""

    transaction_id: int
    unit_id: int
    function: int
    code: ExceptionCode


def next_request(buffer: bytes) -> tuple[Request | Rejected | None, int]:
    """Decode the first frame of ``buffer``: ``(request, bytes used)``, ``(None, 0)`` for "need more".

    Raises FrameError when the stream cannot be Modbus TCP (wrong protocol id, absurd length).
    """
    if len(buffer) < HEADER_LEN:
        return None, 0
    tid, pid, length, unit = _HEADER.unpack_from(buffer)
    if pid != 0 or not 2 <= length <= 254:
        raise FrameError(f"not a Modbus TCP frame (protocol {pid}, length {length})")
    total = HEADER_LEN - 1 + length  # length counts the unit id and the PDU
    if len(buffer) < total:
        return None, 0
    pdu = buffer[HEADER_LEN:total]
    function = pdu[0]
    return _decode_pdu(tid, unit, function, pdu[1:]), total


def _decode_pdu(tid: int, unit: int, function: int, data: bytes) -> Request | Rejected:
    def reject(code: ExceptionCode) -> Rejected:
        return Rejected(tid, unit, function, code)

    if function == Function.READ_HOLDING:
        if len(data) != 4:
            return reject(ExceptionCode.ILLEGAL_VALUE)
        address, count = struct.unpack(">HH", data)
        if not 1 <= count <= MAX_READ or address + count > 0x10000:
            return reject(ExceptionCode.ILLEGAL_VALUE)
        return Request(tid, unit, function, address, count)
    if function == Function.WRITE_SINGLE:
        if len(data) != 4:
            return reject(ExceptionCode.ILLEGAL_VALUE)
        address, value = struct.unpack(">HH", data)
        return Request(tid, unit, function, address, 1, (value,))
    if function == Function.WRITE_MULTIPLE:
        if len(data) < 5:
            return reject(ExceptionCode.ILLEGAL_VALUE)
        address, count, nbytes = struct.unpack_from(">HHB", data)
        if not 1 <= count <= MAX_WRITE or nbytes != 2 * count or len(data) != 5 + nbytes:
            return reject(ExceptionCode.ILLEGAL_VALUE)
        values = struct.unpack_from(f">{count}H", data, 5)
        return Request(tid, unit, function, address, count, values)
    return reject(ExceptionCode.ILLEGAL_FUNCTION)


def _frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return _HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu


def read_reply(request: Request, registers: list[int]) -> bytes:
    """The reply to a read: byte count and the registers."""
    body = struct.pack(f">BB{len(registers)}H", request.function, 2 * len(registers), *registers)
    return _frame(request.transaction_id, request.unit_id, body)


def write_reply(request: Request) -> bytes:
    """The reply to a write: FC6 echoes address and value, FC16 address and count."""
    second = request.values[0] if request.function == Function.WRITE_SINGLE else request.count
    body = struct.pack(">BHH", request.function, request.address, second)
    return _frame(request.transaction_id, request.unit_id, body)


def exception_reply(transaction_id: int, unit_id: int, function: int, code: int) -> bytes:
    """An exception reply (function code with the high bit set)."""
    return _frame(transaction_id, unit_id, struct.pack(">BB", (function | 0x80) & 0xFF, code))
