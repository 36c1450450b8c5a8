"""The entries of an energy answer: which local hours, days, months or years, and their sums."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from gateway.core.history.buckets import Bucket
from gateway.core.history.flows import FlowEnergy
from gateway.core.history.windows import (
    PERIODS,
    HistoryQueryError,
    Period,
    Window,
    clip_window,
    local_start,
    next_day,
    next_month,
    next_year,
    parse_period,
)

# The most entries one energy answer holds (~8 MB of JSON), counted after the window is clipped
# to the site's data; more is refused with a 400 that says how to ask.
MAX_ENTRIES: Final = 10_000

# What one entry of each period covers, and their order from fine to coarse.
_ENTRY_WORD: Final[dict[Period, str]] = {
    "day": "hourly", "week": "daily", "month": "daily", "year": "monthly", "lifetime": "yearly",
}  # fmt: skip
_ENTRY_RANK: Final[dict[Period, int]] = {"day": 0, "week": 1, "month": 1, "year": 2, "lifetime": 3}


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """The entries one energy answer reports.

    Attributes:
        window: the window clipped to the site's data (``start`` is set).
        period: the requested period.
        starts: UTC start of each entry, oldest first (the entry's ``timestamp``).
        edges: ``len(starts) + 1`` instants; entry ``i`` counts the buckets starting in
            ``[edges[i], edges[i + 1])``, so nothing outside the window is counted.
    """

    window: Window
    period: Period
    starts: tuple[datetime, ...]
    edges: tuple[datetime, ...]


def plan_energy(
    window: Window, period: str, first_data: datetime | None, *, max_entries: int = MAX_ENTRIES
) -> EntryPlan:
    """The entries answering ``window`` (pure; work grows with the entries, not the window).

    Entries: ``day`` → local hours (23/25 on DST days), ``week``/``month`` → local days,
    ``year`` → local months, ``lifetime`` → local years. The window is first clipped to the
    site's data (``clip_window``); the first entry is the one holding its start, so the series
    is never empty (even for a window in the future), and later entries stop at the one holding
    ``window.now``: a client importing hourly statistics must not see future hours.

    Args:
        window: from ``resolve_window``.
        period: the requested period.
        first_data: start of the site's oldest bucket, None when it has none.
        max_entries: the most entries one answer may hold.

    Raises:
        HistoryQueryError: an unknown ``period``; or more than ``max_entries`` entries, naming
            ``start_date``, the limit and how to ask instead.
    """
    per = parse_period(period)
    clipped = clip_window(window, first_data)
    begin = clipped.start
    if begin is None:  # pragma: no cover - clip_window always sets it
        raise AssertionError("clip_window left the start open")
    bounds = _entry_bounds(begin, per, clipped.tz)
    starts = [next(bounds)]
    for boundary in bounds:
        if boundary >= clipped.end or boundary > clipped.now:
            edges = (begin, *starts[1:], min(boundary, clipped.end))
            return EntryPlan(clipped, per, tuple(starts), edges)
        if len(starts) == max_entries:
            raise _too_many_entries(per, max_entries)
        starts.append(boundary)
    raise AssertionError("entry bounds never end")  # pragma: no cover


def sum_by_entry(
    buckets: Iterable[Bucket], edges: Sequence[datetime], base: Sequence[FlowEnergy] = ()
) -> list[FlowEnergy]:
    """Bucket energy per entry: entry ``i`` sums the buckets starting in ``[edges[i], edges[i+1])``.

    Buckets outside the edges are ignored; buckets with equal starts add up.

    Args:
        buckets: the buckets to count.
        edges: increasing instants, one more than the entries.
        base: sums to add to, one per entry (e.g. the stored energy); zeros when empty.
    """
    sums = list(base) if base else [FlowEnergy()] * (len(edges) - 1)
    for b in buckets:
        if edges[0] <= b.start < edges[-1]:
            sums[bisect.bisect_right(edges, b.start) - 1] += b.energy
    return sums


def _too_many_entries(period: Period, limit: int) -> HistoryQueryError:
    coarser = [p for p in PERIODS if _ENTRY_RANK[p] > _ENTRY_RANK[period]]
    instead = f", or a coarser period ({', '.join(coarser)})" if coarser else ""
    return HistoryQueryError(
        "start_date",
        f"the window holds more than {limit} {_ENTRY_WORD[period]} entries for period={period} "
        f"(counted from the later of start_date and the site's first data, up to now); one "
        f"answer holds at most {limit}: ask for a later start_date or an earlier end_date"
        f"{instead}",
    )


def _entry_bounds(begin: datetime, period: Period, tz: ZoneInfo) -> Iterator[datetime]:
    """UTC starts of successive local entries, from the one holding ``begin`` on (endless)."""
    local = begin.astimezone(tz)
    if period == "day":
        cursor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while True:
            yield cursor
            cursor += timedelta(hours=1)
    if period in ("week", "month"):
        day, step = local.date(), next_day
    elif period == "year":
        day, step = local.date().replace(day=1), next_month
    else:
        day, step = date(local.year, 1, 1), next_year
    while True:
        yield local_start(day, tz)
        day = step(day)
