"""Modbus TCP frames: decode requests from a byte stream (whole, byte by byte, with trailing
data) and build replies."""

from __future__ import annotations

import pytest

from drivers.transport.mbap import (
    ExceptionCode,
    FrameError,
    Rejected,
    Request,
    exception_reply,
    next_request,
    read_reply,
    write_reply,
)

CASES: list[tuple[str, bytes, Request | Rejected]] = [
    ("read holding", bytes.fromhex("0001 0000 0006 01 03 9c40 0002"),
     Request(1, 1, 3, 40000, 2)),
    ("write single", bytes.fromhex("0002 0000 0006 07 06 9ce1 0021"),
     Request(2, 7, 6, 40161, 1, (33,))),
    ("write multiple", bytes.fromhex("0003 0000 000b 01 10 9c40 0002 04 0001 0002"),
     Request(3, 1, 16, 40000, 2, (1, 2))),
    ("read input refused", bytes.fromhex("0004 0000 0006 01 04 0000 0001"),
     Rejected(4, 1, 4, ExceptionCode.ILLEGAL_FUNCTION)),
    ("read count 0", bytes.fromhex("0005 0000 0006 01 03 9c40 0000"),
     Rejected(5, 1, 3, ExceptionCode.ILLEGAL_VALUE)),
    ("read count 126", bytes.fromhex("0006 0000 0006 01 03 9c40 007e"),
     Rejected(6, 1, 3, ExceptionCode.ILLEGAL_VALUE)),
    ("fc16 byte count mismatch", bytes.fromhex("0007 0000 000b 01 10 9c40 0002 03 0001 0002"),
     Rejected(7, 1, 16, ExceptionCode.ILLEGAL_VALUE)),
]


@pytest.mark.parametrize(("name", "frame", "expected"), CASES, ids=[c[0] for c in CASES])
def test_whole_frame(name: str, frame: bytes, expected: Request | Rejected) -> None:
    assert next_request(frame) == (expected, len(frame))


@pytest.mark.parametrize(("name", "frame", "expected"), CASES, ids=[c[0] for c in CASES])
def test_byte_by_byte_then_trailing_data(name: str, frame: bytes,
                                         expected: Request | Rejected) -> None:
    for cut in range(len(frame)):
        assert next_request(frame[:cut]) == (None, 0)
    trailing = frame + bytes.fromhex("0009 0000")
    assert next_request(trailing) == (expected, len(frame))


@pytest.mark.parametrize("frame", [bytes.fromhex("0001 0001 0006 01 03 9c40 0002"),
                                   bytes.fromhex("0001 0000 0001 01 03 9c40 0002"),
                                   bytes.fromhex("0001 0000 ffff 01 03 9c40 0002")])
def test_not_modbus_tcp(frame: bytes) -> None:
    with pytest.raises(FrameError):
        next_request(frame)


def test_replies() -> None:
    read = Request(1, 1, 3, 40000, 2)
    assert read_reply(read, [0x5375, 0x6E53]) == bytes.fromhex("0001 0000 0007 01 03 04 5375 6e53")
    write = Request(2, 7, 6, 40161, 1, (33,))
    assert write_reply(write) == bytes.fromhex("0002 0000 0006 07 06 9ce1 0021")
    multiple = Request(3, 1, 16, 40000, 2, (1, 2))
    assert write_reply(multiple) == bytes.fromhex("0003 0000 0006 01 10 9c40 0002")
    assert exception_reply(4, 1, 6, 1) == bytes.fromhex("0004 0000 0003 01 86 01")
