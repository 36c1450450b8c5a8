"""Pure register codecs of the profile engine: words <-> raw values <-> scaled values."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from drivers.profile.schema import Point

__all__ = ["decode_raw", "encode_raw", "raw_for", "scaled", "unavailable"]

_SIGNED_BITS = {"s16": 16, "s32": 32}


def _ordered(words: Sequence[int], word_order: str) -> list[int]:
    # Registers arrive high word first on big-endian devices; "little" devices (Sungrow) send
    # the low word first.
    return list(words) if word_order == "big" else list(reversed(words))


def decode_raw(point: Point, words: Sequence[int]) -> int | float | str:
    """The raw value of ``point`` from its registers (integer, float for f32, text for str).

    Raises:
        ValueError: not exactly ``point.count`` registers, or a register outside 0..65535.
    """
    if len(words) != point.count:
        raise ValueError(f"{point.type} needs {point.count} registers, got {len(words)}")
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"registers out of 0..65535: {list(words)}")
    if point.type == "str":
        data = b"".join(w.to_bytes(2, "big") for w in words)
        return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
    value = 0
    for word in _ordered(words, point.word_order):
        value = (value << 16) | word
    if point.type == "f32":
        return float(struct.unpack(">f", value.to_bytes(4, "big"))[0])
    bits = _SIGNED_BITS.get(point.type)
    if bits is not None and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def encode_raw(point: Point, raw: int | float) -> list[int]:
    """The registers that carry ``raw`` for ``point`` (in the device's word order).

    Raises:
        ValueError: the value does not fit the point's type.
    """
    if point.type == "str":
        raise ValueError("str points are not written")
    if point.type == "f32":
        (value,) = struct.unpack(">I", struct.pack(">f", float(raw)))
    else:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError(f"{raw} is not a whole number for {point.type}")
        value = int(raw)
        bits = 16 * point.count
        signed = point.type in _SIGNED_BITS
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit {point.type}")
        value &= (1 << bits) - 1
    words = [(value >> (16 * i)) & 0xFFFF for i in reversed(range(point.count))]
    return _ordered(words, point.word_order)


def unavailable(point: Point, raw: int | float | str) -> bool:
    """Whether ``raw`` is one of the point's documented "not available" values (or a NaN)."""
    if isinstance(raw, float):
        return not math.isfinite(raw)
    return isinstance(raw, int) and raw in point.na


def scaled(point: Point, raw: int | float, sf: int | None = None) -> float:
    """The value in the point's unit: raw x scale, or raw x 10^sf for a scale-factor point."""
    factor = point.scale if point.scale_point is None else 10.0 ** (sf or 0)
    return float(raw) * factor


def raw_for(point: Point, value: float, sf: int | None = None) -> int | float:
    """The raw value that makes ``scaled`` give ``value`` (rounded to the device's resolution)."""
    factor = point.scale if point.scale_point is None else 10.0 ** (sf or 0)
    raw = value / factor
    return raw if point.type == "f32" else round(raw)
