"""Pure transaction planner: which reads and writes cover a set of points in the fewest requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.profile.schema import Point

__all__ = ["Read", "Write", "plan_reads", "plan_writes", "slice_point"]


@dataclass(frozen=True, slots=True)
class Read:
    """One read request: ``count`` registers of ``table`` from ``address``, and the points it covers."""

    table: str
    address: int
    count: int
    points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Write:
    """One write request (FC6 for one register, FC16 for more) and the points it carries."""

    address: int
    values: tuple[int, ...]
    points: tuple[str, ...]


def plan_reads(
    points: Mapping[str, Point], names: Iterable[str], *, max_registers: int, max_gap: int
) -> list[Read]:
    """The fewest reads that cover ``names``: per table, sorted by address, neighbours merged
    while the span stays within ``max_registers`` and the hole between them within ``max_gap``
    registers (devices that refuse undefined registers take ``max_gap: 0``).

    Raises:
        ValueError: a single point is longer than ``max_registers``.
    """
    wanted = sorted({(points[n].table, points[n].address, n) for n in names})
    reads: list[Read] = []
    current: tuple[str, int, int, list[str]] | None = None  # table, start, end, names
    for table, address, name in wanted:
        end = points[name].end
        if end - address > max_registers:
            raise ValueError(f"point {name} ({end - address} registers) exceeds {max_registers}")
        if current is not None:
            c_table, c_start, c_end, c_names = current
            if (
                table == c_table
                and address - c_end <= max_gap
                and max(end, c_end) - c_start <= max_registers
            ):
                current = (c_table, c_start, max(end, c_end), [*c_names, name])
                continue
            reads.append(Read(c_table, c_start, c_end - c_start, tuple(c_names)))
        current = (table, address, end, [name])
    if current is not None:
        c_table, c_start, c_end, c_names = current
        reads.append(Read(c_table, c_start, c_end - c_start, tuple(c_names)))
    return reads


def slice_point(read: Read, registers: Sequence[int], point: Point) -> list[int]:
    """The registers of ``point`` inside the answer to ``read``."""
    offset = point.address - read.address
    return list(registers[offset : offset + point.count])


def plan_writes(
    points: Mapping[str, Point], values: Sequence[tuple[str, Sequence[int]]], *, max_registers: int
) -> list[Write]:
    """The fewest writes for ``values`` (point, registers) in the given order: a run of points
    that sit back to back in ascending order is joined into one FC16 of at most
    ``max_registers``; otherwise each point is its own write (order kept, so the mode register a
    profile lists last is written last)."""
    writes: list[Write] = []
    for name, regs in values:
        point = points[name]
        if writes:
            last = writes[-1]
            if (
                last.address + len(last.values) == point.address
                and len(last.values) + len(regs) <= max_registers
            ):
                writes[-1] = Write(last.address, (*last.values, *regs), (*last.points, name))
                continue
        writes.append(Write(point.address, tuple(regs), (name,)))
    return writes
