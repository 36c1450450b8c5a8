"""Profile codecs and the read/write planner: tables of registers and points."""

from __future__ import annotations

import math
from typing import Any

import pytest

from drivers.profile.codec import decode_raw, encode_raw, raw_for, scaled, unavailable
from drivers.profile.planner import Read, Write, plan_reads, plan_writes, slice_point
from drivers.profile.schema import Point


def point(type_: str, **kw: Any) -> Point:
    return Point.model_validate({"table": "holding", "address": 0, "type": type_, **kw})


@pytest.mark.parametrize(("type_", "order", "words", "raw"), [
    ("u16", "big", [0xFFFF], 65535),
    ("s16", "big", [0xFFFF], -1),
    ("s16", "big", [0x7FFF], 32767),
    ("u32", "big", [0x0001, 0x0002], 0x00010002),
    ("u32", "little", [0x0002, 0x0001], 0x00010002),  # Sungrow: low word first
    ("s32", "big", [0xFFFF, 0xFF38], -200),
    ("s32", "little", [0xFF38, 0xFFFF], -200),
    ("u64", "big", [0, 1, 0, 2], 0x0000000100000002),
    ("f32", "big", [0x4049, 0x0FDB], pytest.approx(3.1415927)),
])  # fmt: skip
def test_decode_and_encode_round_trip(type_: str, order: str, words: list[int], raw: Any) -> None:
    p = point(type_, word_order=order)
    decoded = decode_raw(p, words)
    assert decoded == raw
    assert not isinstance(decoded, str)
    assert encode_raw(p, decoded) == words


def test_text_points_stop_at_nul_and_strip() -> None:
    p = point("str", words=4)
    assert decode_raw(p, [0x5355, 0x4E32, 0x3030, 0x0000]) == "SUN200"


@pytest.mark.parametrize(("type_", "value"), [("u16", -1), ("u16", 65536), ("s16", 32768), ("u32", 1.5)])
def test_encode_refuses_values_the_type_cannot_carry(type_: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"does not fit|whole number"):
        encode_raw(point(type_), value)


def test_decode_refuses_the_wrong_number_of_registers() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_raw(point("u32"), [1])


@pytest.mark.parametrize(("kw", "raw", "sf", "value"), [
    ({"scale": 0.1}, 505, None, 50.5),
    ({"scale": 100}, 135, None, 13500.0),
    ({"scale_point": "sf"}, 123, -1, 12.3),
    ({"scale_point": "sf"}, 5, 2, 500.0),
])  # fmt: skip
def test_scaling_fixed_and_from_a_scale_factor(
    kw: dict[str, Any], raw: int, sf: int | None, value: float
) -> None:
    p = point("u16", **kw)
    assert scaled(p, raw, sf) == pytest.approx(value)
    assert raw_for(p, value, sf) == raw


def test_sentinels_and_nan_are_unavailable() -> None:
    assert unavailable(point("u16", na=[0xFFFF]), 0xFFFF)
    assert not unavailable(point("u16", na=[0xFFFF]), 0)
    assert unavailable(point("f32"), math.nan)


POINTS = {
    "a": point("u16", address=100),
    "b": point("u32", address=101),
    "c": point("u16", address=110),
    "d": point("u16", address=300),
    "i": Point(table="input", address=100, type="u16"),
}


@pytest.mark.parametrize(("names", "max_registers", "max_gap", "reads"), [
    (["a", "b"], 100, 0, [("holding", 100, 3)]),
    (["a", "c"], 100, 9, [("holding", 100, 11)]),  # the hole 101..109 is read over
    (["a", "c"], 100, 8, [("holding", 100, 1), ("holding", 110, 1)]),  # one register too wide
    (["a", "b", "c"], 5, 20, [("holding", 100, 3), ("holding", 110, 1)]),  # span limit
    (["a", "d"], 125, 125, [("holding", 100, 1), ("holding", 300, 1)]),
    (["a", "i"], 100, 100, [("holding", 100, 1), ("input", 100, 1)]),  # tables never merge
    ([], 100, 0, []),
])  # fmt: skip
def test_reads_are_planned_into_the_fewest_requests(
    names: list[str], max_registers: int, max_gap: int, reads: list[tuple[str, int, int]]
) -> None:
    plan = plan_reads(POINTS, names, max_registers=max_registers, max_gap=max_gap)
    assert [(r.table, r.address, r.count) for r in plan] == reads
    assert sorted(n for r in plan for n in r.points) == sorted(names)


def test_a_point_longer_than_a_read_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        plan_reads({"s": point("str", words=20)}, ["s"], max_registers=10, max_gap=0)


def test_slice_point_finds_a_point_in_its_read() -> None:
    read = Read("holding", 100, 11, ("a", "b", "c"))
    registers = list(range(11))
    assert slice_point(read, registers, POINTS["b"]) == [1, 2]
    assert slice_point(read, registers, POINTS["c"]) == [10]


@pytest.mark.parametrize(("values", "max_registers", "writes"), [
    # back to back and ascending: one FC16
    ([("a", [1]), ("b", [2, 3])], 123, [Write(100, (1, 2, 3), ("a", "b"))]),
    # the order is kept: the mode register listed last is written last
    ([("b", [2, 3]), ("a", [1])], 123, [Write(101, (2, 3), ("b",)), Write(100, (1,), ("a",))]),
    ([("a", [1]), ("b", [2, 3])], 2, [Write(100, (1,), ("a",)), Write(101, (2, 3), ("b",))]),
    ([("a", [1]), ("c", [4])], 123, [Write(100, (1,), ("a",)), Write(110, (4,), ("c",))]),
])  # fmt: skip
def test_writes_join_contiguous_points(
    values: list[tuple[str, list[int]]], max_registers: int, writes: list[Write]
) -> None:
    assert plan_writes(POINTS, values, max_registers=max_registers) == writes
